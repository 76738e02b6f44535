"""Dead-letter, review, queues, audit and access endpoints over real HTTP: each does what
the CLI does, records the caller as the actor, and answers typed errors."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

import surefoot as sf
from tests.web.conftest import wait_until

API = "/api/v1"


def start(http: httpx.Client, workflow: str, payload: Any) -> str:
    answer = http.post(f"{API}/runs", json={"workflow": workflow, "input": payload})
    assert answer.status_code == 201, answer.text
    run_id: str = answer.json()["run_id"]
    return run_id


def status_of(http: httpx.Client, run_id: str) -> str:
    status: str = http.get(f"{API}/runs/{run_id}").json()["run"]["status"]
    return status


def dead_lettered(http: httpx.Client, count: int) -> list[str]:
    runs = [start(http, "doomed", [f"o-{i}"]) for i in range(count)]
    wait_until(lambda: all(status_of(http, r) == "failed" for r in runs))
    return runs


def actors(app: sf.App, action: str) -> list[str]:
    return [
        e.actor for e in app.store.audit_entries(after_seq=0, limit=10_000) if e.action == action
    ]


@pytest.mark.usefixtures("worker")
def test_dead_letters_list_show_and_redrive_one(admin: httpx.Client, app: sf.App):
    (run_id,) = dead_lettered(admin, 1)
    listed = admin.get(f"{API}/dead-letters").json()
    assert [d["run_id"] for d in listed["items"]] == [run_id]
    entry = admin.get(f"{API}/dead-letters/{run_id}").json()
    assert (entry["failure_class"], entry["step"], entry["status"]) == (
        "permanent",
        "charge",
        "open",
    )

    redriven = admin.post(f"{API}/dead-letters/{run_id}/redrive", json={"reason": "fixed"})
    assert redriven.status_code == 200
    assert redriven.json()["status"] == "redriven"
    assert redriven.json()["resolved_by"] == "token:admin-bot"
    assert "token:admin-bot" in actors(app, "dead_letter.redriven")
    missing = admin.post(f"{API}/dead-letters/nope/redrive", json={})
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "run_not_found")


@pytest.mark.usefixtures("worker")
def test_bulk_redrive_by_filter_counts_first_on_a_dry_run_then_acts(admin: httpx.Client):
    runs = dead_lettered(admin, 3)
    dry = admin.post(
        f"{API}/dead-letters/redrive", json={"workflow": "doomed", "dry_run": True}
    ).json()
    assert dry == {"matched": 3, "done": 0, "dry_run": True, "refused": {}}
    assert len(admin.get(f"{API}/dead-letters").json()["items"]) == 3  # nothing changed
    none = admin.post(f"{API}/dead-letters/redrive", json={"workflow": "greet", "dry_run": True})
    assert none.json()["matched"] == 0

    done = admin.post(
        f"{API}/dead-letters/redrive",
        json={"failure_class": "permanent", "reason": "card processor fixed"},
    ).json()
    assert (done["matched"], done["done"], done["dry_run"]) == (3, 3, False)
    # Each ran again (and, its card still declined, failed again as generation 1).
    wait_until(
        lambda: all(admin.get(f"{API}/dead-letters/{r}").json()["generation"] == 1 for r in runs)
    )


@pytest.mark.usefixtures("worker")
def test_discard_needs_a_reason_and_closes_entries_one_or_by_filter(admin: httpx.Client):
    first, *rest = dead_lettered(admin, 3)
    no_reason = admin.post(f"{API}/dead-letters/{first}/discard", json={})
    assert no_reason.status_code == 422
    closed = admin.post(f"{API}/dead-letters/{first}/discard", json={"reason": "duplicate"})
    assert closed.json()["status"] == "discarded"
    dry = admin.post(
        f"{API}/dead-letters/discard", json={"reason": "test data", "dry_run": True}
    ).json()
    assert dry["matched"] == 2
    done = admin.post(f"{API}/dead-letters/discard", json={"reason": "test data"}).json()
    assert done["done"] == 2
    assert admin.get(f"{API}/dead-letters").json()["items"] == []
    discarded = admin.get(f"{API}/dead-letters", params={"status": "discarded"}).json()
    assert {d["run_id"] for d in discarded["items"]} == {first, *rest}


@pytest.mark.usefixtures("worker")
def test_a_review_decision_resumes_the_run_as_the_reviewer(admin: httpx.Client):
    run_id = start(admin, "approve", [120])
    items = wait_until(lambda: admin.get(f"{API}/reviews").json()["items"])
    (item,) = items
    assert (item["run_id"], item["payload"], item["actions"]) == (
        run_id,
        {"amount": 120},
        ["approve", "reject"],
    )
    shown = admin.get(f"{API}/reviews/{item['item_id']}").json()
    assert shown["status"] == "open"
    wrong = admin.post(f"{API}/reviews/{item['item_id']}/decision", json={"action": "maybe"})
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (422, "invalid_decision")

    decided = admin.post(
        f"{API}/reviews/{item['item_id']}/decision", json={"action": "approve", "comment": "ok"}
    )
    assert decided.status_code == 200
    assert decided.json()["decided_by"] == "token:admin-bot"
    wait_until(lambda: status_of(admin, run_id) == "succeeded")
    output = admin.get(f"{API}/runs/{run_id}").json()["run"]["output"]
    assert output == "approve by token:admin-bot"
    assert admin.get(f"{API}/reviews", params={"status": "decided"}).json()["items"]
    missing = admin.get(f"{API}/reviews/nope")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "review_item_not_found")


def test_queues_pause_and_resume_and_breakers_reset(admin: httpx.Client, app: sf.App):
    queues = {q["name"]: q for q in admin.get(f"{API}/queues").json()}
    assert queues["greetings"]["concurrency"] == 2
    assert not queues["greetings"]["paused"]
    paused = admin.post(f"{API}/queues/greetings/pause", json={"reason": "maintenance"})
    assert paused.json()["paused"] is True
    assert actors(app, "queue.paused") == ["token:admin-bot"]
    resumed = admin.post(f"{API}/queues/greetings/resume", json={})
    assert resumed.json()["paused"] is False

    assert admin.get(f"{API}/breakers").json() == []
    before = admin.post(f"{API}/breakers/bank/reset", json={"reason": "bank is back"}).json()
    assert before["key"] == "bank"
    assert before["state"] == "closed"
    assert actors(app, "breaker.reset") == ["token:admin-bot"]


def test_audit_pages_head_and_verify(admin: httpx.Client):
    for i in range(3):
        start(admin, "greet", [f"n{i}"])
    first = admin.get(f"{API}/audit", params={"limit": 2}).json()
    assert [e["seq"] for e in first["items"]] == [1, 2]
    assert first["next_after_seq"] == 2
    rest = admin.get(f"{API}/audit", params={"after_seq": 2, "limit": 50}).json()
    assert rest["next_after_seq"] is None
    head = admin.get(f"{API}/audit/head").json()
    assert head["seq"] == rest["items"][-1]["seq"]
    report = admin.get(f"{API}/audit/verify", params={"expect": f"{head['seq']}:{head['hash']}"})
    assert report.json() == {
        "intact": True,
        "head_seq": head["seq"],
        "head_hash": head["hash"],
        "problems": [],
    }
    wrong = admin.get(f"{API}/audit/verify", params={"expect": f"1:{'0' * 64}"}).json()
    assert wrong["intact"] is False
    malformed = admin.get(f"{API}/audit/verify", params={"expect": "nonsense"})
    assert (malformed.status_code, malformed.json()["error"]["code"]) == (422, "validation_error")
    typo = admin.get(f"{API}/audit", params={"entity": "r-1"})  # entity_id mistyped
    assert typo.status_code == 422
    assert typo.json()["error"]["fields"][0]["location"] == ["query", "entity"]
    routes = admin.get(f"{API}/routes").json()
    assert {r["failure_class"] for r in routes["routes"]} >= {"transient", "permanent"}


def test_admins_manage_users_and_tokens_and_no_secret_is_ever_returned(
    admin: httpx.Client, client: httpx.Client, app: sf.App
):
    me = admin.get(f"{API}/me").json()
    assert (me["name"], me["role"], me["via"]) == ("token:admin-bot", "admin", "token")
    created = admin.post(
        f"{API}/users", json={"username": "ann", "role": "viewer", "password": "long enough pw"}
    )
    assert created.status_code == 201
    assert created.json()["password_set"] is True
    short = admin.post(f"{API}/users", json={"username": "bo", "role": "viewer", "password": "x"})
    assert (short.status_code, short.json()["error"]["code"]) == (422, "validation_error")
    taken = admin.post(f"{API}/users", json={"username": "ann", "role": "admin"})
    assert (taken.status_code, taken.json()["error"]["code"]) == (409, "user_exists")
    changed = admin.patch(f"{API}/users/ann", json={"role": "reviewer", "disabled": True})
    assert (changed.json()["role"], changed.json()["disabled"]) == ("reviewer", True)

    made = admin.post(f"{API}/tokens", json={"name": "ci", "role": "operator", "expires_days": 1})
    assert made.status_code == 201
    secret, token_id = made.json()["secret"], made.json()["token_id"]
    as_ci = {"Authorization": f"Bearer {secret}"}
    assert client.get(f"{API}/me", headers=as_ci).json()["role"] == "operator"
    revoked = admin.delete(f"{API}/tokens/{token_id}")
    assert revoked.json()["revoked_at"] is not None
    assert client.get(f"{API}/me", headers=as_ci).status_code == 401

    bodies = admin.get(f"{API}/users").text + admin.get(f"{API}/tokens").text
    bodies += admin.get(f"{API}/audit", params={"limit": 500}).text
    stored = app.store.get_user("ann")
    assert stored is not None
    assert stored.password_hash is not None
    for secretish in (stored.password_hash, secret, "argon2", "token_hash", "session_hash"):
        assert secretish not in bodies
