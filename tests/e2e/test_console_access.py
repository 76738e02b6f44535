"""Nobody acts beyond their role, in a real browser: a viewer sees no action, and a POST
forged with the viewer's own session and CSRF token is still refused; a POST without the
CSRF token is refused for everyone; with auth off, every page says so in red."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.console_support import (
    Console,
    chromium,
    require_chromium,
    serve_console,
    shot,
    sign_in,
)

pytestmark = [pytest.mark.e2e_browser, pytest.mark.timeout(120)]


@pytest.fixture
def browser() -> Iterator[Any]:
    require_chromium()
    with chromium() as launched:
        yield launched


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    require_chromium()
    with serve_console(f"sqlite:///{tmp_path / 'console.db'}") as running:
        yield running


def _csrf(page: Any) -> str:
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    assert token
    return str(token)


def test_viewer_sees_no_actions_and_forged_posts_are_refused(
    console: Console, browser: Any
) -> None:
    failed = console.start_payment("INV-DOWN", faults=("503",) * 8)
    parked = console.start_payment("INV-LARGE", amount="9000.00")
    console.wait_for_status(failed, "failed")
    console.wait_for_status(parked, "needs_review")
    item = console.app.store.list_reviews(None, 10, 0)[0]

    page = browser.new_page(viewport={"width": 1400, "height": 900})
    sign_in(page, console.base_url, "viewer")
    expect(page.locator(".who .role")).to_have_text("viewer")

    page.goto(f"{console.base_url}/runs/{failed}")
    expect(page.locator("section.deadletter")).to_contain_text("transient")
    expect(page.locator("main button")).to_have_count(0)
    expect(page.locator("main form[method=post]")).to_have_count(0)
    shot(page, "20-viewer-run")

    page.goto(f"{console.base_url}/dead-letters")
    expect(page.locator("tbody tr", has_text="submit_payment")).to_have_count(1)
    expect(page.get_by_role("button", name=re.compile("Redrive|Discard"))).to_have_count(0)
    page.goto(f"{console.base_url}/reviews/{item.item_id}")
    expect(page.locator("main form[method=post]")).to_have_count(0)
    page.goto(f"{console.base_url}/queues")
    expect(page.locator("main form[method=post]")).to_have_count(0)

    # The viewer's own session and CSRF token: a valid form, from a role that may not act.
    token = _csrf(page)
    for path, form in (
        (f"/dead-letters/{failed}/redrive", {}),
        (f"/dead-letters/{failed}/discard", {"reason": "forged"}),
        (f"/runs/{parked}/cancel", {}),
        (f"/reviews/{item.item_id}/decide", {"action": "approve"}),
        ("/queues/pause", {"queue": "payments"}),
    ):
        answer = page.request.post(
            f"{console.base_url}{path}", form={**form, "csrf_token": token}, max_redirects=0
        )
        assert answer.status == 403, (path, answer.status)
        assert "Not allowed" in answer.text()
    page.goto(f"{console.base_url}/reviews/{item.item_id}")
    shot(page, "21-viewer-review")
    assert console.run(failed).status.value == "failed"
    assert console.run(parked).status.value == "needs_review"
    assert console.app.store.get_review(item.item_id).status.value == "open"  # type: ignore[union-attr]


def test_a_post_without_the_csrf_token_is_refused(console: Console, browser: Any) -> None:
    failed = console.start_payment("INV-NOCSRF", faults=("503",) * 8)
    console.wait_for_status(failed, "failed")
    page = browser.new_page()
    sign_in(page, console.base_url, "admin")
    console.service.heal()
    for form in ({}, {"csrf_token": "not-the-token"}):
        answer = page.request.post(
            f"{console.base_url}/dead-letters/{failed}/redrive", form=form, max_redirects=0
        )
        assert answer.status == 403
        assert "This form has expired" in answer.text()
    assert console.run(failed).status.value == "failed"
    page.goto(f"{console.base_url}/runs/{failed}")
    page.get_by_role("button", name="Redrive", exact=True).click()
    expect(page.locator(".notice")).to_contain_text("Redriven")


def test_without_auth_every_page_warns_in_red(tmp_path: Path, browser: Any) -> None:
    with serve_console(f"sqlite:///{tmp_path / 'open.db'}", insecure_no_auth=True) as console:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        for path in ("/", "/runs", "/runs/needs-attention", "/dead-letters", "/reviews", "/audit"):
            page.goto(f"{console.base_url}{path}")
            banner = page.get_by_role("alert").filter(has_text="Authentication is disabled")
            expect(banner).to_be_visible()
            color = banner.evaluate("node => getComputedStyle(node).backgroundColor")
            assert color == "rgb(180, 35, 24)"
        shot(page, "22-insecure-no-auth")


def test_sign_in_never_redirects_off_the_server(console: Console, browser: Any) -> None:
    page = browser.new_page()
    page.goto(f"{console.base_url}/login?next=//evil.example/steal")
    page.get_by_label("User name").fill("viewer")
    page.get_by_label("Password").fill("correct-horse-battery")
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{console.base_url}/")

    stranger = browser.new_page()
    stranger.goto(f"{console.base_url}/login")
    stranger.get_by_label("User name").fill("viewer")
    stranger.get_by_label("Password").fill("wrong-password-here")
    stranger.get_by_role("button", name="Sign in").click()
    expect(stranger.get_by_role("alert")).to_contain_text("Unknown user or wrong password")
    stranger.goto(f"{console.base_url}/runs")
    expect(stranger).to_have_url(re.compile(r"/login\?next=/runs$"))
