"""Small workflows over the fault server, shared by the failure-class tests.

``checkout`` reserves stock, charges a payment and ships; each step is one POST to
its own collection, keyed by the step's idempotency key, and each compensation
reverses that record. Tests pass step options (retry, reconcile, routes, ...)
to the step they exercise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import surefoot as sf
from tests.integration.support.http import create, reverse

Record = dict[str, Any]


def charge_step(app: sf.App, base_url: str, **options: Any) -> Callable[[str, int], Record]:
    """A step named ``charge``: POST /payments {order_id, amount}."""

    @app.step(name="charge", **options)
    def charge(order_id: str, amount: int) -> Record:
        return create(base_url, "payments", {"order_id": order_id, "amount": amount})

    return charge


def single_charge(app: sf.App, base_url: str, **options: Any) -> Callable[..., Record]:
    """A workflow ``pay(order_id, amount)`` that runs only the ``charge`` step."""
    charge = charge_step(app, base_url, **options)

    @app.workflow(name="pay")
    def pay(ctx: sf.WorkflowContext, order_id: str, amount: int) -> Record:
        return charge(order_id, amount)

    return pay


@dataclass
class Checkout:
    """The three-step checkout workflow and the app it is declared on."""

    app: sf.App
    workflow: Callable[..., Record]

    def start(self, order_id: str = "o-1", amount: int = 100, **options: Any) -> sf.RunHandle:
        return self.app.start(self.workflow, order_id, amount, **options)


def checkout(
    app: sf.App,
    base_url: str,
    *,
    name: str = "checkout",
    queue: str | None = None,
    charge_options: dict[str, Any] | None = None,
    wait_for_event: str | None = None,
) -> Checkout:
    """reserve -> charge -> [wait for an event] -> ship, each undone by a reversal."""

    def undo(collection: str) -> Callable[..., None]:
        def compensate(result: Record, *_args: Any, **_kwargs: Any) -> None:
            reverse(base_url, collection, result["key"])

        return compensate

    @app.step(name=f"{name}.reserve", compensate=undo("reservations"))
    def reserve(order_id: str) -> Record:
        return create(base_url, "reservations", {"order_id": order_id})

    @app.step(name=f"{name}.charge", compensate=undo("payments"), **(charge_options or {}))
    def charge(order_id: str, amount: int) -> Record:
        return create(base_url, "payments", {"order_id": order_id, "amount": amount})

    @app.step(name=f"{name}.ship", compensate=undo("shipments"))
    def ship(order_id: str) -> Record:
        return create(base_url, "shipments", {"order_id": order_id})

    @app.workflow(name=name, queue=queue)
    def run_checkout(ctx: sf.WorkflowContext, order_id: str, amount: int) -> Record:
        reservation = reserve(order_id)
        payment = charge(order_id, amount)
        if wait_for_event is not None:
            ctx.wait_for(wait_for_event, timeout_s=60)
        shipment = ship(order_id)
        return {
            "reservation": reservation["id"],
            "payment": payment["id"],
            "shipment": shipment["id"],
        }

    return Checkout(app, run_checkout)
