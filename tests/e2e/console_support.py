"""The console under test: a real uvicorn server on loopback (port 0) over a real SQLite
store, a real worker, the demo's flaky payments service, and one user per role; plus
headless Chromium (Debian's, driven by Playwright) and a screenshot helper."""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.sync_api import sync_playwright

import surefoot as sf
from surefoot.config import WebSettings
from surefoot.demo.payments import Dependency, Payments, declare_payments
from surefoot.demo.service import FlakyService
from surefoot.domain.access import Role
from surefoot.domain.records import RunRecord
from surefoot.web.app import create_app
from surefoot.web.auth.users import add_user

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
PASSWORD = "correct-horse-battery"
ROLES = (Role.ADMIN, Role.OPERATOR, Role.REVIEWER, Role.VIEWER)


def require_chromium() -> None:
    """Skip without Chromium, unless SUREFOOT_REQUIRE_BROWSER=1 (CI), which fails instead."""
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} is missing: install Debian's chromium to run the console tests"
    if os.environ.get("SUREFOOT_REQUIRE_BROWSER") == "1":
        pytest.fail(message + " (SUREFOOT_REQUIRE_BROWSER=1)")
    pytest.skip(message)


@dataclass
class Console:
    base_url: str
    app: sf.App
    service: FlakyService
    payments: Payments

    def start_payment(
        self,
        invoice_id: str,
        *,
        amount: str = "120.00",
        account: str = "DE89370400440532013000",
        faults: tuple[str, ...] = (),
    ) -> str:
        if faults:
            self.service.cue(invoice_id, *faults)
        return self.app.start(
            self.payments.pay_invoice,
            invoice_id,
            "ACME",
            amount,
            account,
            idempotency_key=invoice_id,
        ).run_id

    def run(self, run_id: str) -> RunRecord:
        found = self.app.store.get_run(run_id)
        assert found is not None
        return found

    def wait_for_status(self, run_id: str, status: str, timeout_s: float = 20.0) -> RunRecord:
        deadline = time.monotonic() + timeout_s
        while True:
            run = self.run(run_id)
            if run.status.value == status:
                return run
            if time.monotonic() > deadline:
                raise AssertionError(f"run {run_id} is {run.status.value}, expected {status}")
            time.sleep(0.05)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve_console(store_url: str, *, insecure_no_auth: bool = False) -> Iterator[Console]:
    """Everything the console needs, running, torn down on exit."""
    app = sf.App("console-e2e", store=store_url, instant_retries=True)
    dependency = Dependency(read_timeout_s=0.5)
    payments = declare_payments(app, dependency)
    now = datetime.now(UTC)
    for role in ROLES:
        add_user(app.store, role.value, PASSWORD, role, actor="test", now=now)
    with FlakyService(slow_answer_s=1.0) as service, sf.Worker(app, concurrency=4):
        dependency.url = service.url
        port = _free_port()
        web = create_app(app, WebSettings(insecure_no_auth=insecure_no_auth))
        server = uvicorn.Server(
            uvicorn.Config(web, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        )
        thread = threading.Thread(target=server.run, name="console-server", daemon=True)
        thread.start()
        deadline = time.monotonic() + 15
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise AssertionError("the console server did not start")
            time.sleep(0.02)
        try:
            yield Console(f"http://127.0.0.1:{port}", app, service, payments)
        finally:
            server.should_exit = True
            thread.join(timeout=10)
    app.close()


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium browser (Playwright's ``Browser``)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def shot(page: Any, name: str) -> None:
    """Keep a full-page screenshot as a test artefact (artifacts/screenshots/NAME.png)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def sign_in(page: Any, base_url: str, username: str, *, next_path: str = "/") -> None:
    page.goto(f"{base_url}/login?next={next_path}")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(re.escape(base_url) + re.escape(next_path) + r"(\?.*)?$"))


def reload_until(page: Any, ready: Callable[[], bool], timeout_s: float = 20.0) -> None:
    """Reload the page until ``ready()`` holds (the console is server-rendered: no push)."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting on {page.url}")
        time.sleep(0.2)
        page.reload()
