"""``surefoot demo`` with the console: one process runs the flaky payments service, a
worker, a feeder of sample invoices and the web server, on SQLite in the current directory.

Within a minute the console shows successes, retries, a dead-letter, review items (data
and approval) and an ambiguous payment to resolve.
"""

from __future__ import annotations

import itertools
import logging
import random
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

import uvicorn
from rich.console import Console

import surefoot as sf
from surefoot.config import WebSettings
from surefoot.demo.payments import Dependency, Payments, declare_payments
from surefoot.demo.service import FlakyService
from surefoot.domain.access import Role
from surefoot.web.app import create_app
from surefoot.web.auth.users import add_user

console = Console()

VALID_ACCOUNT = "DE89370400440532013000"


@dataclass(frozen=True)
class Sample:
    """One invoice the feeder sends, and the faults the service is cued to answer with."""

    amount: str
    account: str = VALID_ACCOUNT
    faults: tuple[str, ...] = ()
    shows: str = "a success"


# The first invoices show every route at once; then a steady trickle follows.
OPENING = (
    Sample("120.00"),
    Sample("89.90", faults=("429", "429"), shows="retries after 429 answers"),
    Sample("1450.00"),
    Sample("310.00", faults=("503",) * 5, shows="a dead-letter (an outage outlasts 4 attempts)"),
    Sample("7200.00", shows="an approval (amount over the limit)"),
    Sample("230.00", account="INVALID", shows="a data review (the service rejects the account)"),
    Sample("640.00", faults=("timeout",), shows="an ambiguous payment (the answer timed out)"),
    Sample("75.50", faults=("503",), shows="a retry after a 503"),
)
TRICKLE_FAULTS = ((), (), (), (), (), ("429",), ("503", "503"))


def ensure_admin(app: sf.App) -> str | None:
    """Create the ``admin`` user with a random password unless it exists; the password
    (shown once) or None."""
    if app.store.get_user("admin") is not None:
        return None
    password = secrets.token_urlsafe(12)
    add_user(app.store, "admin", password, Role.ADMIN, actor="demo", now=datetime.now(UTC))
    return password


class Feeder:
    """Starts the opening invoices at once, then one every ``every_s`` seconds."""

    def __init__(
        self,
        app: sf.App,
        payments: Payments,
        service: FlakyService,
        *,
        every_s: float = 4.0,
        limit: int = 300,
    ) -> None:
        self.app, self.payments, self.service = app, payments, service
        self.every_s, self.limit = every_s, limit
        self._stop = threading.Event()
        self._rng = random.Random()  # noqa: S311 - sample data, not security
        self._thread = threading.Thread(target=self._run, name="demo-feeder", daemon=True)
        self._prefix = datetime.now(UTC).strftime("%H%M%S")

    def start(self) -> Feeder:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def send(self, number: int, sample: Sample) -> None:
        invoice_id = f"INV-{self._prefix}-{number:04d}"
        if sample.faults:
            self.service.cue(invoice_id, *sample.faults)
        self.app.start(
            self.payments.pay_invoice,
            invoice_id,
            "ACME Supplies",
            sample.amount,
            sample.account,
            idempotency_key=invoice_id,
            actor="demo",
        )

    def _run(self) -> None:
        for number, sample in enumerate(OPENING, start=1):
            self.send(number, sample)
        for number in itertools.count(len(OPENING) + 1):
            if number > self.limit or self._stop.wait(self.every_s):
                return
            amount = f"{self._rng.randint(20, 4800)}.{self._rng.randint(0, 99):02d}"
            self.send(number, Sample(amount, faults=self._rng.choice(TRICKLE_FAULTS)))


def serve_demo(store: str, *, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run until interrupted (Ctrl-C)."""
    # Every failed attempt is on purpose here, and the console shows each one: keep the
    # terminal for the address and the password.
    logging.getLogger("surefoot.engine").setLevel(logging.ERROR)
    app = sf.App("accounts-payable", store=store)
    dependency = Dependency()
    payments = declare_payments(app, dependency)
    password = ensure_admin(app)
    web = create_app(app, WebSettings(host=host, port=port))
    with FlakyService() as service, sf.Worker(app, concurrency=8):
        dependency.url = service.url
        feeder = Feeder(app, payments, service).start()
        console.print(f"[bold]Surefoot demo[/] on {store}")
        console.print(f"  console:  [bold]http://{host}:{port}/[/]")
        if password is not None:
            console.print(f"  sign in:  admin / [bold]{password}[/]  (shown once; keep it)")
        else:
            console.print("  sign in:  admin, with the password printed when it was created")
        console.print(f"  payments service (flaky on cue): {service.url}")
        console.print("  the first invoices show:")
        for sample in OPENING:
            console.print(f"    - {sample.shows}")
        console.print("  Ctrl-C stops everything; the store keeps every run.")
        try:
            uvicorn.run(web, host=host, port=port, log_level="warning")
        finally:
            feeder.stop()
    app.close()
