"""The demo app: fetch an invoice, validate it, post it to a flaky ledger, notify.

Every failure class shows up: flaky fetches (transient, retried), invoices that fail
validation (data: parked for a person), large amounts (policy: approval), and postings
that commit but time out (ambiguous: reconciled by idempotency key, never re-sent).
"""

from __future__ import annotations

import os
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import surefoot as sf
from surefoot.demo.ledger import FlakyLedger

STORE = os.environ.get("SUREFOOT_STORE_URL", "sqlite:///surefoot-demo.db")
app = sf.App("accounts-payable", store=STORE)
ledger = FlakyLedger(Path(os.environ.get("SUREFOOT_DEMO_LEDGER", "surefoot-demo-ledger.jsonl")))
APPROVAL_LIMIT = Decimal("5000")


@app.step(retry=sf.Retry(max_attempts=4, initial_delay_s=0.2, max_delay_s=1.0), idempotent=True)
def fetch_invoice(invoice_id: str) -> dict[str, Any]:
    number = int(invoice_id.rsplit("-", 1)[-1])
    if random.random() < 0.3:  # noqa: S311 - the demo's flakiness
        raise sf.TransientError("document service busy", retry_after_s=0.2)
    amount = Decimal(120 + (number * 37) % 900) if number % 10 else Decimal(7200)
    vendor = "ACME" if number % 13 else ""
    return {"invoice_id": invoice_id, "vendor": vendor, "amount": str(amount)}


@app.step
def validate(invoice: dict[str, Any]) -> dict[str, Any]:
    errors = []
    if not invoice["vendor"]:
        errors.append("vendor is missing")
    if Decimal(invoice["amount"]) <= 0:
        errors.append("amount must be positive")
    if errors:
        raise sf.DataError(f"invoice {invoice['invoice_id']} is invalid", errors=errors)
    sf.require_approval(
        "amount-over-limit",
        when=Decimal(invoice["amount"]) > APPROVAL_LIMIT,
        message=f"amount {invoice['amount']} is over {APPROVAL_LIMIT}",
    )
    return invoice


def find_posting(_step: sf.StepContext, idempotency_key: str) -> sf.Found | sf.NotFound:
    posting = ledger.find(idempotency_key)
    return sf.Found(posting) if posting is not None else sf.NotFound()


@app.step(
    retry=sf.Retry(max_attempts=5, initial_delay_s=0.1, max_delay_s=0.5), reconcile=find_posting
)
def post_to_ledger(invoice: dict[str, Any]) -> dict[str, Any]:
    return ledger.post(sf.current_step().idempotency_key, invoice)


@app.step(idempotent=True)
def notify(invoice_id: str, posting_id: str) -> str:
    return f"invoice {invoice_id} posted as {posting_id}"


@app.workflow(queue="invoices")
def process_invoice(ctx: sf.WorkflowContext, invoice_id: str) -> str:
    invoice = fetch_invoice(invoice_id)
    checked = validate(invoice)
    ctx.sleep(0.5)  # a durable pause: the run holds no thread meanwhile
    posting = post_to_ledger(checked)
    return notify(invoice_id, posting["posting_id"])
