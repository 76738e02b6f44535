"""Paying supplier invoices through the flaky payments service (``demo.service``).

``declare_payments(app, dependency)`` adds the steps and the ``pay_invoice`` workflow to
an app; the demo and the console's browser tests use the same code. Each failure class
shows up for a reason a reader can see in the console:

* 429 and 503 answers are ``transient``: retried with backoff, dead-lettered when they last;
* a 422 answer is ``data``: a person edits the step's inputs (the account) and retries;
* an amount over the limit is ``policy``: a person approves or rejects;
* an answer that times out after the payment was sent is ``ambiguous``: the service has
  no lookup by key, so a person says whether the payment happened.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx

import surefoot as sf

APPROVAL_LIMIT = Decimal("5000")


@dataclass
class Dependency:
    """Where the payments service listens (set once the service has started)."""

    url: str = ""
    connect_timeout_s: float = 1.0
    read_timeout_s: float = 1.0


@dataclass(frozen=True)
class Payments:
    """The declared workflow, to start runs with ``app.start(payments.pay_invoice, ...)``."""

    pay_invoice: Callable[..., str]


def declare_payments(app: sf.App, dependency: Dependency, *, queue: str = "payments") -> Payments:
    # Steps are named by their qualified name unless told otherwise; these are declared in
    # a function, so they get plain names.
    @app.step(name="check_invoice", idempotent=True)
    def check_invoice(invoice: dict[str, Any]) -> dict[str, Any]:
        errors = [f"{name} is missing" for name in ("vendor", "account") if not invoice.get(name)]
        if errors:
            raise sf.DataError(f"invoice {invoice.get('invoice_id')} is incomplete", errors=errors)
        amount = Decimal(str(invoice["amount"]))
        sf.require_approval(
            "amount-over-limit",
            when=amount > APPROVAL_LIMIT,
            message=f"amount {amount} is over the approval limit of {APPROVAL_LIMIT}",
        )
        return invoice

    @app.step(
        name="submit_payment",
        retry=sf.Retry(max_attempts=4, initial_delay_s=0.3, max_delay_s=1.5),
    )
    def submit_payment(invoice: dict[str, Any]) -> dict[str, Any]:
        """POST the payment; the same idempotency key on every attempt."""
        timeout = httpx.Timeout(dependency.read_timeout_s, connect=dependency.connect_timeout_s)
        response = httpx.post(
            f"{dependency.url}/payments",
            json=invoice,
            headers={"Idempotency-Key": sf.current_step().idempotency_key},
            timeout=timeout,
        )
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        return answer

    @app.step(name="record_payment", idempotent=True)
    def record_payment(invoice_id: str, payment_id: str) -> str:
        return f"invoice {invoice_id} paid as {payment_id}"

    @app.workflow(queue=queue)
    def pay_invoice(
        ctx: sf.WorkflowContext, invoice_id: str, vendor: str, amount: str, account: str
    ) -> str:
        invoice = {"invoice_id": invoice_id, "vendor": vendor, "amount": amount, "account": account}
        checked = check_invoice(invoice)
        ctx.sleep(0.2)  # a durable pause before paying: the run holds no thread meanwhile
        payment = submit_payment(checked)
        return record_payment(invoice_id, payment["payment_id"])

    return Payments(pay_invoice)
