"""The app the CLI end-to-end tests drive, as ``tests.e2e.cli_app:app``.

Its store comes from ``SUREFOOT_STORE_URL`` (or ``--store``). A step fails while a switch file
named after it exists in the folder ``CLI_APP_SWITCHES`` names, so a test can make a run fail,
then fix the cause and redrive it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import surefoot as sf


def switched_on(name: str) -> bool:
    folder = os.environ.get("CLI_APP_SWITCHES")
    if not folder:
        return False
    return (Path(folder) / name).exists()


def build_app(store: str | None = None) -> sf.App:
    """A fresh app with every workflow below (tests also build one in-process)."""
    app = sf.App("cli-test", store=store, instant_retries=True, poll_interval_s=0.02)

    @app.step(name="greet")
    def greet(name: str) -> str:
        return f"hello {name}"

    @app.workflow
    def hello(ctx: sf.WorkflowContext, name: str) -> str:
        return greet(name)

    @app.step(name="fetch", retry=sf.Retry(max_attempts=3))
    def fetch(invoice_id: str) -> dict[str, Any]:
        if sf.current_step().attempt == 1:
            raise sf.TransientError("document service busy")
        return {"invoice_id": invoice_id, "amount": "120.00"}

    @app.workflow(queue="invoices")
    def fetch_invoice(ctx: sf.WorkflowContext, invoice_id: str) -> dict[str, Any]:
        return fetch(invoice_id)

    @app.step(name="charge")
    def charge(card: str) -> str:
        if switched_on("charge"):
            raise sf.PermanentError(f"card {card} was declined")
        return f"charged {card}"

    @app.workflow
    def pay(ctx: sf.WorkflowContext, card: str) -> str:
        return charge(card)

    @app.workflow
    def approve(ctx: sf.WorkflowContext, amount: int) -> dict[str, Any]:
        decision = ctx.review(
            "approve-payment", payload={"amount": amount}, actions=["approve", "reject"]
        )
        return {"action": decision.action, "by": decision.decided_by}

    return app


app = build_app()
