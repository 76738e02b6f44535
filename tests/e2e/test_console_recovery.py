"""The console in headless Chromium: an operator redrives a dead-lettered run once its
dependency is healthy again, a reviewer approves a parked payment, and both runs complete.
Every page visited is kept as a screenshot in artifacts/screenshots/."""

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
    reload_until,
    require_chromium,
    serve_console,
    shot,
    sign_in,
)

pytestmark = [pytest.mark.e2e_browser, pytest.mark.timeout(180)]


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    require_chromium()
    with serve_console(f"sqlite:///{tmp_path / 'console.db'}") as running:
        yield running


@pytest.fixture
def browser() -> Iterator[Any]:
    require_chromium()
    with chromium() as launched:
        yield launched


def test_operator_redrives_and_reviewer_approves_until_runs_complete(
    console: Console, browser: Any
) -> None:
    outage = console.start_payment("INV-OUTAGE", faults=("503",) * 8)
    big = console.start_payment("INV-BIG", amount="7200.00")
    fine = console.start_payment("INV-FINE")
    console.wait_for_status(outage, "failed")
    console.wait_for_status(big, "needs_review")
    console.wait_for_status(fine, "succeeded")

    operator = browser.new_page(viewport={"width": 1400, "height": 900})
    operator.goto(f"{console.base_url}/dead-letters")
    expect(operator).to_have_url(re.compile(r"/login\?next=/dead-letters"))
    shot(operator, "01-login")
    sign_in(operator, console.base_url, "operator", next_path="/dead-letters")
    expect(operator.get_by_test_id("signed-in-user")).to_have_text("operator")

    # the overview counts what is wrong now
    operator.goto(f"{console.base_url}/")
    shot(operator, "02-overview")
    expect(operator.locator(".card", has_text="in dead-letter")).to_contain_text("1")
    expect(operator.locator(".card", has_text="open reviews")).to_contain_text("1")

    operator.goto(f"{console.base_url}/runs/needs-attention")
    shot(operator, "03-needs-attention")
    failed_row = operator.locator("tr", has=operator.locator(f"a[href='/runs/{outage}']"))
    expect(failed_row).to_contain_text("failed: dead-lettered")
    expect(operator.locator("tr", has_text="parked: a person must decide")).to_have_count(1)

    operator.goto(f"{console.base_url}/runs")
    shot(operator, "04-runs")

    # find the failed run in the dead-letter, with its class and reason
    operator.goto(f"{console.base_url}/dead-letters")
    row = operator.locator("tbody tr", has=operator.locator(f"a[href='/runs/{outage}']"))
    expect(row).to_contain_text("transient")
    expect(row).to_contain_text("submit_payment")
    shot(operator, "05-dead-letters")

    # the bulk redrive says how many runs it would touch before touching any
    operator.get_by_role("button", name="Redrive all matching this filter…").click()
    expect(operator.get_by_test_id("confirm-count")).to_contain_text("redrive 1 run")
    shot(operator, "06-redrive-confirm")
    assert console.run(outage).status.value == "failed"

    # the run's timeline shows every attempt with its class and idempotency key
    operator.goto(f"{console.base_url}/runs/{outage}")
    timeline = operator.locator("table.timeline")
    expect(timeline.locator("tr.out-failed")).to_have_count(4)
    expect(timeline).to_contain_text("http:502-504")
    keys = {
        a.idempotency_key
        for a in console.app.store.list_attempts(outage)
        if a.step == "submit_payment"
    }
    assert len(keys) == 1
    key = keys.pop()
    expect(timeline.locator("td.key", has_text=key)).to_have_count(4)
    shot(operator, "07-run-failed")

    console.service.heal()
    operator.get_by_role("button", name="Redrive", exact=True).click()
    expect(operator.locator(".notice")).to_contain_text("Redriven")
    reload_until(operator, lambda: operator.locator("h1 .badge", has_text="succeeded").count() > 0)
    expect(operator.locator("section.deadletter")).to_contain_text("redriven")
    shot(operator, "08-run-redriven")
    assert console.run(outage).status.value == "succeeded"

    # an operator recovers work but does not approve it
    operator.goto(f"{console.base_url}/reviews")
    operator.get_by_role("link", name=re.compile("Approve amount-over-limit")).click()
    expect(operator.get_by_text("can read this item but not decide it")).to_be_visible()
    expect(operator.get_by_role("button", name="Approve")).to_have_count(0)

    reviewer = browser.new_page(viewport={"width": 1400, "height": 900})
    sign_in(reviewer, console.base_url, "reviewer", next_path="/reviews")
    shot(reviewer, "09-reviews")
    reviewer.get_by_role("link", name=re.compile("Approve amount-over-limit")).click()
    shot(reviewer, "10-review-item")
    reviewer.get_by_role("button", name="Approve").click()
    expect(reviewer).to_have_url(re.compile(f"/runs/{big}"))
    expect(reviewer.locator(".notice")).to_contain_text("Decision recorded")
    reload_until(reviewer, lambda: reviewer.locator("h1 .badge", has_text="succeeded").count() > 0)
    shot(reviewer, "11-run-approved")
    assert console.run(big).status.value == "succeeded"

    reviewer.goto(f"{console.base_url}/queues")
    shot(reviewer, "12-queues")
    reviewer.goto(f"{console.base_url}/audit/verify")
    expect(reviewer.get_by_test_id("audit-verify")).to_contain_text("the chain is intact")
    expect(reviewer.locator("table.dense")).to_contain_text("review.decided")
    shot(reviewer, "13-audit-verified")
