"""The CLI end to end: every operator command as a subprocess against a real store file."""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing
from pathlib import Path

import surefoot as sf
from surefoot.ops import review as review_ops
from surefoot.store.base import SCHEMA_VERSION
from tests.e2e.support import APP, drain

RUN_ID = re.compile(r"^[0-9a-f]{32}$")


def db_path(store_url: str) -> Path:
    return Path(store_url.removeprefix("sqlite:///"))


def test_start_prints_a_run_id_and_worker_until_idle_runs_it_to_completion(cli):
    started = cli("start", APP, "hello", "--input", '["acme"]', "--idempotency-key", "greet-acme")
    run_id = started.stdout.strip()
    assert RUN_ID.match(run_id), started.stdout
    again = cli(
        "start", APP, "hello", "--input", '{"name": "acme"}', "--idempotency-key", "greet-acme"
    )
    assert again.stdout.strip() == run_id
    cli("worker", APP, "--until-idle")
    (run,) = cli.json("runs", "list", APP)
    assert (run["run_id"], run["status"], run["output"]) == (run_id, "succeeded", '"hello acme"')


def test_worker_logs_each_succeeded_run_only_when_asked_and_its_totals_always(cli):
    first = cli("start", APP, "hello", "--input", '["acme"]').stdout.strip()
    quiet = cli("worker", APP, "--until-idle", "--log-format", "json").stderr
    assert first not in quiet  # no line for the run that succeeded
    assert "ended 1 runs: 1 succeeded, 0 failed, 0 cancelled" in quiet
    second = cli("start", APP, "hello", "--input", '["globex"]').stdout.strip()
    each = cli("worker", APP, "--until-idle", "--log-format", "json", "--log-each-run").stderr
    assert f"run {second} (hello) succeeded" in each


def test_runs_list_filters_by_status_and_prints_json_or_a_table(cli, local_app):
    app: sf.App = local_app()
    done = app.start("hello", "acme")
    drain(app)
    pending = app.start("hello", "approver-2")
    succeeded = cli.json("runs", "list", APP, "--status", "succeeded")
    assert [r["run_id"] for r in succeeded] == [done.run_id]
    waiting = cli.json("runs", "list", APP, "--status", "pending", "--status", "waiting")
    assert [r["run_id"] for r in waiting] == [pending.run_id]
    table = cli("runs", "list", APP).stdout
    assert "runs 1-2 of 2" in table
    assert done.run_id in table
    assert pending.run_id in table


def test_runs_show_prints_the_timeline_with_attempts_class_rule_and_keys(cli, local_app):
    app: sf.App = local_app()
    handle = app.start("fetch_invoice", "INV-7", idempotency_key="INV-7")
    drain(app)
    shown = cli("runs", "show", APP, "INV-7").stdout
    assert f"run {handle.run_id}" in shown
    assert "status=succeeded" in shown
    assert "idempotency_key: INV-7" in shown
    rows = [line for line in shown.splitlines() if f"{handle.run_id}:1" in line]
    assert len(rows) == 2, shown
    assert all(" fetch " in row for row in rows)
    assert re.search(r"failed\s+│ transient │ declared │ retry / retry 2 of 3", rows[0])
    assert "TransientError: document service busy" in rows[0]
    assert "succeeded" in rows[1]

    view = cli.json("runs", "show", APP, handle.run_id)
    first, second = view["attempts"]
    assert (first["outcome"], first["failure_class"], first["rule"]) == (
        "failed",
        "transient",
        "declared",
    )
    assert second["outcome"] == "succeeded"
    assert first["idempotency_key"] == second["idempotency_key"] == f"{handle.run_id}:1"


def test_dead_letter_list_show_redrive_and_discard(cli, local_app):
    app: sf.App = local_app()
    cli.switch_on("charge")
    fixed_later = app.start("pay", "4242")
    given_up = app.start("pay", "1111")
    drain(app)

    listed = cli.json("dlq", "list", APP, "--class", "permanent")
    assert {d["run_id"] for d in listed} == {fixed_later.run_id, given_up.run_id}
    assert all(d["step"] == "charge" and d["status"] == "open" for d in listed)
    shown = cli("dlq", "show", APP, fixed_later.run_id).stdout
    assert '"failure_class": "permanent"' in shown
    assert "card 4242 was declined" in shown
    assert "timeline" in shown

    cli.switch_off("charge")
    redriven = cli("dlq", "redrive", APP, fixed_later.run_id, "--note", "card updated")
    assert f"redriven {fixed_later.run_id}" in redriven.stdout
    discarded = cli("dlq", "discard", APP, given_up.run_id, "--reason", "customer cancelled")
    assert f"discarded {given_up.run_id}" in discarded.stdout
    assert cli.json("dlq", "list", APP) == []

    drain(app)
    assert fixed_later.result(timeout=5) == "charged 4242"
    assert fixed_later.record().generation == 1
    assert given_up.status() is sf.RunStatus.FAILED
    dead = app.store.get_dead_letter(given_up.run_id)
    assert dead is not None
    assert dead.resolution == "customer cancelled"


def test_dead_letter_bulk_redrive_by_filter(cli, local_app):
    app: sf.App = local_app()
    cli.switch_on("charge")
    runs = [app.start("pay", card) for card in ("1", "2")]
    drain(app)
    cli.switch_off("charge")
    bulk = cli("dlq", "redrive", APP, "--all-matching", "--workflow", "pay", "--yes")
    assert "redrive: 2 of 2" in bulk.stdout
    drain(app)
    assert [h.result(timeout=5) for h in runs] == ["charged 1", "charged 2"]


def test_review_list_show_and_decide_resume_the_run(cli, local_app):
    app: sf.App = local_app()
    handle = app.start("approve", 7200)
    drain(app)
    assert handle.status() is sf.RunStatus.NEEDS_REVIEW
    (item,) = cli.json("review", "list", APP)
    assert (item["run_id"], item["kind"], item["status"]) == (
        handle.run_id,
        "approve-payment",
        "open",
    )
    shown = cli("review", "show", APP, item["item_id"]).stdout
    assert '"amount": 7200' in shown
    decided = cli("review", "decide", APP, item["item_id"], "approve", "--actor", "approver-1")
    assert f"run {handle.run_id} resumes" in decided.stdout
    assert cli.json("review", "list", APP) == []
    drain(app)
    assert handle.result(timeout=5) == {"action": "approve", "by": "approver-1"}
    assert review_ops.get_review(app, item["item_id"]).decided_by == "approver-1"


def test_paused_queue_is_not_claimed_until_resumed(cli, local_app):
    app: sf.App = local_app()
    other = app.start("hello", "acme")
    paused = cli("queues", "pause", APP, "invoices", "--reason", "vendor down")
    assert "paused invoices" in paused.stdout
    handle = app.start("fetch_invoice", "INV-1")
    cli("worker", APP, "--until-idle")
    assert handle.status() is sf.RunStatus.PENDING
    assert other.status() is sf.RunStatus.SUCCEEDED
    listed = cli("queues", "list", APP).stdout
    assert re.search(r"invoices\s+PAUSED\s+ready=1", listed), listed
    cli("queues", "resume", APP, "invoices")
    drain(app)
    assert handle.status() is sf.RunStatus.SUCCEEDED


def test_audit_list_and_verify_then_tampering_is_detected(cli, local_app, store_url):
    app: sf.App = local_app()
    handle = app.start("hello", "acme")
    drain(app)
    listed = cli("audit", "list", APP, "--run-id", handle.run_id).stdout
    assert "run.created" in listed
    assert "run.finished" in listed
    intact = cli("audit", "verify", APP)
    assert "audit chain intact" in intact.stdout

    with closing(sqlite3.connect(db_path(store_url))) as conn:
        conn.execute("UPDATE audit_log SET actor = 'intruder' WHERE seq = 1")
        conn.commit()
    tampered = cli("audit", "verify", APP, expect=1)
    assert "entry 1" in tampered.stderr
    assert "modified" in tampered.stderr


def test_audit_verify_detects_deleted_entries(cli, local_app, store_url):
    app: sf.App = local_app()
    app.start("hello", "acme")
    drain(app)
    with closing(sqlite3.connect(db_path(store_url))) as conn:
        conn.execute("DELETE FROM audit_log WHERE seq = 2")
        conn.commit()
    deleted = cli("audit", "verify", APP, expect=1)
    assert "deleted or reordered" in deleted.stderr


def test_db_upgrade_creates_a_current_store_and_db_sql_prints_the_schema(cli, tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    upgraded = cli("db", "upgrade", "--store", url)
    assert f"{url}: schema version {SCHEMA_VERSION}" in upgraded.stdout
    with closing(sqlite3.connect(tmp_path / "fresh.db")) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"runs", "attempts", "journal", "audit_log", "surefoot_schema"} <= tables
    again = cli("db", "upgrade", "--store", url)
    assert f"schema version {SCHEMA_VERSION}" in again.stdout
    ddl = cli("db", "sql").stdout
    assert "CREATE TABLE runs" in ddl
    assert "CREATE TABLE audit_log" in ddl
