"""The runs API over real HTTP: start (idempotent, correlated, back-pressured), list with
filters and paging, the timeline, events, cancel, fork. Actions carry the caller's name
into the audit log."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

import surefoot as sf
from surefoot.domain.access import Role
from tests.web.conftest import wait_until

RUNS = "/api/v1/runs"


def start(http: httpx.Client, workflow: str, payload: Any, **extra: Any) -> httpx.Response:
    headers = extra.pop("headers", None)
    return http.post(RUNS, json={"workflow": workflow, "input": payload, **extra}, headers=headers)


def finished(http: httpx.Client, run_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        run: dict[str, Any] = http.get(f"{RUNS}/{run_id}").json()["run"]
        return run if run["status"] in ("succeeded", "failed", "cancelled") else None

    result: dict[str, Any] = wait_until(done)
    return result


def audit_actors(app: sf.App, entity_id: str) -> list[tuple[str, str]]:
    return [
        (e.action, e.actor)
        for e in app.store.audit_entries(after_seq=0, limit=1000, entity_id=entity_id)
    ]


@pytest.mark.usefixtures("worker")
def test_a_started_run_is_committed_and_runs_to_its_result(admin: httpx.Client, app: sf.App):
    answer = start(admin, "greet", {"name": "ann"})
    assert answer.status_code == 201
    run_id = answer.json()["run_id"]
    assert answer.json()["workflow"] == "greet"
    assert answer.json()["queue"] == "greetings"
    assert finished(admin, run_id)["output"] == "HELLO ANN"
    assert ("run.created", "token:admin-bot") in audit_actors(app, run_id)


def test_the_same_idempotency_key_returns_the_same_run_with_200(admin: httpx.Client):
    first = start(admin, "greet", ["bo"], idempotency_key="order-7")
    again = start(admin, "greet", ["bo"], idempotency_key="order-7")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["run_id"] == again.json()["run_id"]
    clash = start(admin, "greet", ["someone else"], idempotency_key="order-7")
    assert clash.status_code == 409
    assert clash.json()["error"]["code"] == "idempotency_key_conflict"


def test_correlation_id_comes_from_the_header_then_traceparent_then_is_generated(
    admin: httpx.Client,
):
    given = start(admin, "greet", ["a"], headers={"X-Correlation-ID": "req-42"})
    assert given.json()["correlation_id"] == "req-42"
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    traced = start(
        admin, "greet", ["b"], headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
    )
    assert traced.json()["correlation_id"] == trace_id
    invalid = start(admin, "greet", ["c"], headers={"traceparent": "00-zz-bad-01"})
    generated = invalid.json()["correlation_id"]
    assert generated
    assert generated != trace_id
    listed = admin.get(RUNS, params={"correlation_id": "req-42"}).json()
    assert [r["run_id"] for r in listed["items"]] == [given.json()["run_id"]]


def test_a_full_queue_answers_429_with_retry_after_and_stores_nothing(admin: httpx.Client):
    assert start(admin, "greet", ["one"], queue="tight").status_code == 201
    refused = start(admin, "greet", ["two"], queue="tight")
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "7"
    assert refused.json()["error"]["code"] == "back_pressure"
    assert admin.get(RUNS).json()["total"] == 1


def test_bad_starts_get_typed_errors(admin: httpx.Client):
    unknown = start(admin, "no-such-flow", [])
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "workflow_not_found")
    bad_args = start(admin, "greet", {"nom": "x"})
    assert bad_args.status_code == 422
    assert bad_args.json()["error"]["code"] == "invalid_input"
    malformed = admin.post(RUNS, json={"input": []})
    assert malformed.status_code == 422
    fields = malformed.json()["error"]["fields"]
    assert ["body", "workflow"] in [f["location"] for f in fields]


@pytest.mark.usefixtures("worker")
def test_runs_list_filters_by_status_workflow_queue_class_and_time_and_pages(
    admin: httpx.Client,
):
    ok = [start(admin, "greet", [f"n{i}"]).json()["run_id"] for i in range(3)]
    doomed = start(admin, "doomed", ["o-1"]).json()["run_id"]
    for run_id in [*ok, doomed]:
        finished(admin, run_id)

    def ids(**params: Any) -> list[str]:
        return [r["run_id"] for r in admin.get(RUNS, params=params).json()["items"]]

    assert set(ids(status="succeeded")) == set(ok)
    assert set(ids(status=["succeeded", "failed"])) == {*ok, doomed}
    assert ids(workflow="doomed") == [doomed]
    assert set(ids(queue="greetings")) == set(ok)
    assert ids(failure_class="permanent") == [doomed]
    assert ids(failure_class="transient") == []
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert ids(created_after=future) == []
    assert len(ids(created_before=future)) == 4

    page = admin.get(RUNS, params={"limit": 2, "offset": 1}).json()
    assert (page["total"], page["limit"], page["offset"], len(page["items"])) == (4, 2, 1, 2)
    assert admin.get(RUNS, params={"limit": 501}).status_code == 422


@pytest.mark.usefixtures("worker")
def test_the_timeline_shows_every_attempt_with_its_class_and_route(admin: httpx.Client):
    run_id = start(admin, "doomed", ["o-9"]).json()["run_id"]
    finished(admin, run_id)
    timeline = admin.get(f"{RUNS}/{run_id}").json()
    assert timeline["run"]["status"] == "failed"
    (attempt,) = timeline["attempts"]
    assert (attempt["step"], attempt["outcome"], attempt["failure_class"]) == (
        "charge",
        "failed",
        "permanent",
    )
    assert attempt["route"]
    assert attempt["idempotency_key"] == f"{run_id}:1"
    missing = admin.get(f"{RUNS}/nope")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "run_not_found")


@pytest.mark.usefixtures("worker")
def test_an_event_resumes_a_waiting_run(admin: httpx.Client, app: sf.App):
    run_id = start(admin, "waiter", []).json()["run_id"]
    sent = admin.post(f"{RUNS}/{run_id}/events", json={"name": "go", "payload": {"n": 1}})
    assert sent.status_code == 202
    assert finished(admin, run_id)["output"] == {"n": 1}
    assert ("event.received", "token:admin-bot") in audit_actors(app, run_id)


def test_cancel_ends_a_pending_run_and_is_audited(admin: httpx.Client, app: sf.App):
    run_id = start(admin, "waiter", []).json()["run_id"]
    answer = admin.post(f"{RUNS}/{run_id}/cancel", json={"reason": "not needed"})
    assert answer.status_code == 200
    assert answer.json()["status"] in ("cancelled", "pending")
    assert answer.json()["cancel_requested"]
    actions = audit_actors(app, run_id)
    assert any(actor == "token:admin-bot" and "cancel" in action for action, actor in actions)


@pytest.mark.usefixtures("worker")
def test_fork_from_a_step_makes_a_new_run_with_edited_input(admin: httpx.Client):
    source = start(admin, "greet", ["ann"]).json()["run_id"]
    finished(admin, source)
    preview = admin.get(f"{RUNS}/{source}/fork-preview", params={"from_position": 1}).json()
    assert [s["name"] for s in preview] == ["shout"]
    forked = admin.post(f"{RUNS}/{source}/fork", json={"from_position": 1, "input": ["bo"]})
    assert forked.status_code == 201
    new = forked.json()
    assert new["forked_from_run_id"] == source
    assert new["run_id"] != source
    assert finished(admin, new["run_id"])["output"] == "HELLO BO"


def test_a_viewer_reads_but_cannot_start(client: httpx.Client, token_of: Callable[[Role], str]):
    viewer = {"Authorization": f"Bearer {token_of(Role.VIEWER)}"}
    assert client.get(RUNS, headers=viewer).status_code == 200
    refused = client.post(RUNS, json={"workflow": "greet", "input": ["x"]}, headers=viewer)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "permission_denied"
    anonymous = client.get(RUNS)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"] == "Bearer"


# -- many runs in one commit ----------------------------------------------------------------
BATCH = f"{RUNS}/batch"


def start_batch(
    http: httpx.Client, workflow: str, items: list[Any], **extra: Any
) -> httpx.Response:
    return http.post(BATCH, json={"workflow": workflow, "runs": items, **extra})


@pytest.mark.usefixtures("worker")
def test_a_batch_is_committed_at_once_and_each_run_runs_to_its_result(
    admin: httpx.Client, app: sf.App
):
    answer = start_batch(
        admin,
        "greet",
        [
            {"input": ["ann"]},
            {"input": {"name": "bo"}, "idempotency_key": "b-1"},
            {"input": ["cy"]},
        ],
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["created"] == [True, True, True]
    assert [r["inputs"] for r in body["runs"]] == [{"name": "ann"}, {"name": "bo"}, {"name": "cy"}]
    assert len({r["correlation_id"] for r in body["runs"]}) == 1  # the request's
    outputs = [finished(admin, r["run_id"])["output"] for r in body["runs"]]
    assert outputs == ["HELLO ANN", "HELLO BO", "HELLO CY"]
    assert ("run.created", "token:admin-bot") in audit_actors(app, body["runs"][0]["run_id"])


def test_a_batch_whose_keys_all_name_runs_answers_200_and_a_clash_409_storing_none(
    admin: httpx.Client,
):
    first = start_batch(admin, "greet", [{"input": ["a"], "idempotency_key": "k-1"}])
    again = start_batch(
        admin,
        "greet",
        [{"input": ["a"], "idempotency_key": "k-1"}, {"input": ["a"], "idempotency_key": "k-1"}],
    )
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["created"] == [False, False]
    assert {r["run_id"] for r in again.json()["runs"]} == {first.json()["runs"][0]["run_id"]}
    mixed = start_batch(
        admin,
        "greet",
        [
            {"input": ["new"], "idempotency_key": "k-2"},
            {"input": ["new"], "idempotency_key": "k-2"},
        ],
    )
    assert (mixed.status_code, mixed.json()["created"]) == (201, [True, False])
    clash = start_batch(
        admin, "greet", [{"input": ["b"]}, {"input": ["other"], "idempotency_key": "k-1"}]
    )
    assert clash.status_code == 409
    assert clash.json()["error"]["code"] == "idempotency_key_conflict"
    assert admin.get(RUNS).json()["total"] == 2


def test_a_batch_a_bounded_queue_cannot_take_answers_429_and_stores_nothing(
    admin: httpx.Client,
):
    assert start(admin, "greet", ["one"], queue="tight").status_code == 201
    refused = start_batch(admin, "greet", [{"input": ["two"]}], queue="tight")
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "7"
    never = start_batch(admin, "greet", [{"input": ["x"]}, {"input": ["y"]}], queue="tight")
    assert (never.status_code, never.json()["error"]["code"]) == (422, "invalid_workflow_call")
    assert admin.get(RUNS).json()["total"] == 1


def test_bad_batches_get_typed_errors_and_store_nothing(
    admin: httpx.Client, client: httpx.Client, token_of: Callable[[Role], str]
):
    unknown = start_batch(admin, "no-such-flow", [{"input": []}])
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "workflow_not_found")
    bad = start_batch(admin, "greet", [{"input": ["ok"]}, {"input": {"nom": "x"}}])
    assert (bad.status_code, bad.json()["error"]["code"]) == (422, "invalid_input")
    assert "start_many item 1" in bad.json()["error"]["message"]
    assert start_batch(admin, "greet", []).status_code == 422
    too_many = start_batch(admin, "greet", [{"input": [str(n)]} for n in range(1001)])
    assert too_many.status_code == 422
    viewer = {"Authorization": f"Bearer {token_of(Role.VIEWER)}"}
    refused = client.post(BATCH, json={"workflow": "greet", "runs": [{}]}, headers=viewer)
    assert refused.status_code == 403
    assert admin.get(RUNS).json()["total"] == 0
