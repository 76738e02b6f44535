"""Console pages over real HTTP (uvicorn on loopback, a real SQLite store, a real worker):
sign-in, escaping, paging, decisions per review kind, bulk redrive with its confirm step,
readable errors."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.console_support import Console, serve_console
from tests.web.console.support import Browserless, signed_in

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    with serve_console(f"sqlite:///{tmp_path / 'console.db'}") as running:
        yield running


def _review_of(console: Console, run_id: str) -> str:
    items = [i for i in console.app.store.list_reviews(None, 100, 0) if i.run_id == run_id]
    assert len(items) == 1
    return items[0].item_id


def test_every_page_needs_a_signed_in_user(console: Console) -> None:
    with Browserless(console.base_url) as anonymous:
        for path in ("/", "/runs", "/runs/needs-attention", "/dead-letters", "/reviews", "/audit"):
            answer = anonymous.get(path)
            assert answer.status_code == 303
            assert answer.headers["location"] == f"/login?next={path}"
        refused = anonymous.http.post("/dead-letters/x/redrive", data={"csrf_token": "x"})
        assert refused.status_code in (303, 403)


def test_sign_out_ends_the_session(console: Console) -> None:
    with signed_in(console.base_url, "operator") as client:
        assert client.get("/").status_code == 200
        assert client.post("/logout").status_code == 303
        assert client.get("/").status_code == 303


def test_values_from_runs_are_escaped(console: Console) -> None:
    hostile = "<script>alert(1)</script>"
    run_id = console.start_payment(hostile, amount="9000.00")
    console.wait_for_status(run_id, "needs_review")
    with signed_in(console.base_url, "viewer") as client:
        for path in (
            f"/runs?q={hostile}",
            f"/runs/{run_id}",
            f"/reviews/{_review_of(console, run_id)}",
        ):
            page = client.get(path).text
            assert hostile not in page
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_the_runs_table_pages_and_filters(console: Console) -> None:
    ids = [console.start_payment(f"INV-{n:03d}") for n in range(12)]
    for run_id in ids:
        console.wait_for_status(run_id, "succeeded")
    with signed_in(console.base_url, "viewer") as client:
        first = client.get("/runs?status=succeeded&limit=5").text
        assert "1\N{EN DASH}5 of 12" in first
        assert first.count('href="/runs/') - first.count('href="/runs/needs') >= 5
        assert "status=succeeded&amp;limit=5&amp;offset=5" in first
        last = client.get("/runs?status=succeeded&limit=5&offset=10").text
        assert "11\N{EN DASH}12 of 12" in last
        assert 'rel="next"' not in last
        found = client.get("/runs?q=INV-007").text
        assert "1\N{EN DASH}1 of 1" in found
        assert f"/runs/{ids[7]}" in found


def test_a_data_review_retried_with_edited_inputs_completes_the_run(console: Console) -> None:
    run_id = console.start_payment("INV-BADACCT", account="INVALID")
    console.wait_for_status(run_id, "needs_review")
    item_id = _review_of(console, run_id)
    with signed_in(console.base_url, "reviewer") as client:
        page = client.get(f"/reviews/{item_id}").text
        assert "account is not a valid IBAN" in page  # what the service answered
        prefilled = re.search(
            r'<textarea id="inputs-1" name="inputs"[^>]*>(.*?)</textarea>', page, re.S
        )
        assert prefilled is not None
        inputs = json.loads(prefilled.group(1).replace("&#34;", '"'))
        inputs["invoice"]["account"] = "NL91ABNA0417164300"
        answer = client.post(
            f"/reviews/{item_id}/decide",
            {"action": "retry", "inputs": json.dumps(inputs), "comment": "fixed the IBAN"},
        )
        assert answer.status_code == 303
        assert answer.headers["location"] == f"/runs/{run_id}?notice=decided"
    run = console.wait_for_status(run_id, "succeeded")
    assert "PAY-" in (run.output or "")


def test_an_ambiguous_payment_marked_happened_records_the_given_result(console: Console) -> None:
    run_id = console.start_payment("INV-SLOW", faults=("timeout",))
    console.wait_for_status(run_id, "needs_review")
    item_id = _review_of(console, run_id)
    with signed_in(console.base_url, "admin") as client:
        page = client.get(f"/reviews/{item_id}").text
        assert 'name="action" value="happened"' in page
        assert "badge kind-ambiguous" in page
        value = {"payment_id": "PAY-FROM-BANK-STATEMENT", "invoice_id": "INV-SLOW"}
        answer = client.post(
            f"/reviews/{item_id}/decide", {"action": "happened", "value": json.dumps(value)}
        )
        assert answer.status_code == 303
    run = console.wait_for_status(run_id, "succeeded")
    assert "PAY-FROM-BANK-STATEMENT" in (run.output or "")


def test_a_bad_decision_is_a_readable_error_and_changes_nothing(console: Console) -> None:
    run_id = console.start_payment("INV-BADJSON", account="INVALID")
    console.wait_for_status(run_id, "needs_review")
    item_id = _review_of(console, run_id)
    with signed_in(console.base_url, "reviewer") as client:
        bad_json = client.post(f"/reviews/{item_id}/decide", {"action": "retry", "inputs": "{oops"})
        assert bad_json.status_code == 400
        assert "not valid JSON" in bad_json.text
        missing = client.post(f"/reviews/{item_id}/decide", {"action": "skip"})
        assert missing.status_code == 409
        assert "needs --value" in missing.text
        unknown = client.post(f"/reviews/{item_id}/decide", {"action": "approve"})
        assert "is not an action of review item" in unknown.text
        for answer in (bad_json, missing, unknown):
            assert "Traceback" not in answer.text
            assert 'role="alert"' in answer.text
    assert console.app.store.get_review(item_id).status.value == "open"  # type: ignore[union-attr]
    with signed_in(console.base_url, "viewer") as client:
        answer = client.get("/runs/no-such-run")
        assert answer.status_code == 404
        assert "no run has id or idempotency key" in answer.text


def test_bulk_redrive_shows_the_count_first_and_touches_only_matching_runs(
    console: Console,
) -> None:
    down = [console.start_payment(f"INV-DOWN-{n}", faults=("503",) * 8) for n in range(3)]
    rejected = console.start_payment("INV-REJECTED", amount="6000.00")
    for run_id in down:
        console.wait_for_status(run_id, "failed")
    console.wait_for_status(rejected, "needs_review")
    with signed_in(console.base_url, "operator") as client:
        listed = client.get("/runs?failure_class=transient").text
        assert all(f"/runs/{run_id}" in listed for run_id in down)
        assert f"/runs/{rejected}" not in listed
        confirm = client.get("/dead-letters/redrive?failure_class=transient")
        assert "This will redrive <strong>3</strong> runs" in confirm.text
        assert all(console.run(r).status.value == "failed" for r in down)
        console.service.heal()
        done = client.post(
            "/dead-letters/redrive",
            {"failure_class": "transient", "expected": "3", "note": "outage over"},
        )
        assert done.status_code == 200
        assert "Redriven 3 of 3 matching runs" in done.text
    for run_id in down:
        console.wait_for_status(run_id, "succeeded")
    assert console.run(rejected).status.value == "needs_review"
    redrives = [
        e for e in console.app.store.audit_entries(after_seq=0, limit=1000) if "redrive" in e.action
    ]
    assert {e.actor for e in redrives} == {"operator"}
    assert {e.reason for e in redrives} == {"outage over"}


def test_the_audit_page_verifies_the_chain(console: Console) -> None:
    run_id = console.start_payment("INV-AUDITED")
    console.wait_for_status(run_id, "succeeded")
    with signed_in(console.base_url, "viewer") as client:
        page = client.get("/audit/verify").text
        assert "Verified: the chain is intact" in page
        head = console.app.store.audit_head()
        assert head is not None
        assert f"{head[0]}:{head[1][:16]}" in page
        older = client.get("/audit?after=0&limit=2").text
        assert 'rel="next"' in older
