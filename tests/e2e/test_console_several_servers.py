"""Two console servers on one store, as behind a load balancer without affinity, in a real
browser: the sign-in form that one server sent is posted to the other, and the browser is
signed in on both. (The sign-in form's cookie is SameSite=Strict and path-bound: this is
where a browser, not a test client, decides whether it goes along with the POST.)"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.sync_api import expect

import surefoot as sf
from surefoot.config import WebSettings
from surefoot.web.app import create_app
from tests.e2e.console_support import (
    PASSWORD,
    Console,
    chromium,
    require_chromium,
    serve_console,
    shot,
)

pytestmark = [pytest.mark.e2e_browser, pytest.mark.timeout(120)]


@pytest.fixture
def browser() -> Iterator[Any]:
    require_chromium()
    with chromium() as launched:
        yield launched


@contextmanager
def another_server(store_url: str) -> Iterator[str]:
    """A second console server (its own ``App``, the same store), on a free port."""
    app = sf.App("console-e2e", store=store_url)
    web = create_app(app, WebSettings())
    server = uvicorn.Server(
        uvicorn.Config(web, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="console-server-2", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise AssertionError("the second console server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        app.close()


@pytest.fixture
def two_consoles(tmp_path: Path) -> Iterator[tuple[Console, str]]:
    require_chromium()
    store_url = f"sqlite:///{tmp_path / 'console.db'}"
    with serve_console(store_url) as console, another_server(store_url) as other_url:
        yield console, other_url


def test_a_sign_in_form_from_one_server_signs_in_on_the_other(
    two_consoles: tuple[Console, str], browser: Any
) -> None:
    console, other_url = two_consoles
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(f"{console.base_url}/login?next=/queues")
    # The balancer's choice, made here: the form's POST goes to the other server.
    page.locator("form[action='/login']").evaluate(
        "(form, url) => { form.action = url }", f"{other_url}/login"
    )
    page.get_by_label("User name").fill("operator")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(re.escape(other_url) + r"/queues$"))
    expect(page.locator(".who .user")).to_have_text("operator")
    page.goto(f"{console.base_url}/queues")  # the session is good on the first server too
    expect(page.locator(".who .user")).to_have_text("operator")
    shot(page, "23-signed-in-across-servers")


def test_a_sign_in_post_without_the_forms_cookie_is_refused_in_the_browser(
    two_consoles: tuple[Console, str], browser: Any
) -> None:
    console, other_url = two_consoles
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{console.base_url}/login")
    context.clear_cookies()  # the form stays, its cookie is gone
    page.locator("form[action='/login']").evaluate(
        "(form, url) => { form.action = url }", f"{other_url}/login"
    )
    page.get_by_label("User name").fill("operator")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("The sign-in form expired")
    assert not [c for c in context.cookies() if c["name"] == "surefoot_session"]
    # The form it shows again works.
    page.get_by_label("User name").fill("operator")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".who .user")).to_have_text("operator")
