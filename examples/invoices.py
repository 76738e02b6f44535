"""Pay supplier invoices: fetch, ask a person above a limit, hold, pay exactly once.

From the directory that contains the ``examples`` package:

    surefoot start examples.invoices:app pay_invoice --input '{"invoice_id": "INV-1"}'
    surefoot worker examples.invoices:app
    surefoot runs show examples.invoices:app RUN_ID

The store is ``$SUREFOOT_STORE_URL`` (default ``sqlite:///surefoot.db``). The "bank"
is a JSON-lines file (``$INVOICES_BANK_FILE``, default ``invoices-bank.jsonl``) so
that payments outlive a killed worker, as a real bank's would.
"""

from __future__ import annotations

import json
import os
import random
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

import surefoot as sf

app = sf.App("invoices", store=os.environ.get("SUREFOOT_STORE_URL", "sqlite:///surefoot.db"))

APPROVAL_LIMIT_CENTS = 500_000  # a person approves anything over 5,000.00
INVOICES = {  # stands in for the document service
    "INV-1": ("ACME Ltd", 42_000),
    "INV-2": ("Globex", 750_000),
    "INV-3": ("Initech", 9_900),
}


@dataclass(frozen=True)
class Invoice:
    invoice_id: str
    vendor: str
    amount_cents: int


@dataclass(frozen=True)
class Payment:
    payment_id: str
    reference: str
    invoice_id: str
    amount_cents: int


class Bank:
    """A payment rail that does *not* dedupe: sending twice pays twice. Payments can be
    looked up by the reference sent with them, which is what reconciliation needs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def pay(self, reference: str, invoice: Invoice) -> Payment:
        payment = Payment(
            uuid.uuid4().hex[:12], reference, invoice.invoice_id, invoice.amount_cents
        )
        with self._lock, self.path.open("a") as ledger:
            ledger.write(json.dumps(payment.__dict__) + "\n")
        return payment

    def find(self, reference: str) -> Payment | None:
        if not self.path.exists():
            return None
        for line in self.path.read_text().splitlines():
            if line.strip() and json.loads(line)["reference"] == reference:
                return Payment(**json.loads(line))
        return None


bank = Bank(Path(os.environ.get("INVOICES_BANK_FILE", "invoices-bank.jsonl")))


@app.step(retry=sf.Retry(max_attempts=5, initial_delay_s=0.5), idempotent=True)
def fetch_invoice(invoice_id: str) -> Invoice:
    """A read: safe to repeat, so it is declared idempotent and retried when busy."""
    if random.random() < 0.2:
        raise sf.TransientError("document service busy", retry_after_s=1)
    if invoice_id not in INVOICES:
        raise sf.DataError(f"no invoice {invoice_id}", errors=["unknown invoice_id"])
    vendor, amount_cents = INVOICES[invoice_id]
    return Invoice(invoice_id, vendor, amount_cents)


def find_payment(_step: sf.StepContext, idempotency_key: str) -> sf.Found | sf.NotFound:
    """Did an interrupted ``pay`` reach the bank? Look the payment up by its reference."""
    payment = bank.find(idempotency_key)
    return sf.Found(payment) if payment is not None else sf.NotFound()


@app.step(reconcile=find_payment)
def pay(invoice: Invoice) -> Payment:
    """Not idempotent: never re-sent blindly. The key is the same on every attempt."""
    return bank.pay(sf.current_step().idempotency_key, invoice)


@app.workflow(queue="invoices")
def pay_invoice(ctx: sf.WorkflowContext, invoice_id: str, hold_s: float = 2.0) -> str:
    invoice = fetch_invoice(invoice_id)
    if invoice.amount_cents > APPROVAL_LIMIT_CENTS:
        decision = ctx.review(
            "payment-approval",
            payload=invoice.__dict__,
            actions=["approve", "reject"],
            title=f"Pay {invoice.vendor} {invoice.amount_cents / 100:.2f} for {invoice_id}?",
        )
        if decision.action != "approve":
            return f"{invoice_id} rejected by {decision.decided_by}"
    ctx.sleep(hold_s)  # durable: the run holds no thread while it waits
    payment = pay(invoice)
    return f"{invoice_id} paid as {payment.payment_id}"
