"""Liveness is the process; readiness is the store, its schema and the workers."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import surefoot as sf
from surefoot.engine.runtime import utc_now
from surefoot.ops.health import Readiness, liveness, readiness
from surefoot.store.migrations import SCHEMA_TABLE_DDL, load_migrations
from tests.integration.support.fixtures import MakeApp, StartWorker


def _checks(ready: Readiness) -> dict[str, bool]:
    return {c.name: c.ok for c in ready.checks}


def test_liveness_answers_without_touching_the_store() -> None:
    alive = liveness()
    assert alive["status"] == "alive"
    assert alive["pid"] > 0


def test_ready_with_a_current_store_and_a_heartbeating_worker(
    make_app: MakeApp, start_worker: StartWorker
) -> None:
    app = make_app()

    @app.workflow
    def noop(ctx: sf.WorkflowContext) -> None:
        return None

    start_worker(app)
    app.start(noop).result(timeout=10)
    ready = readiness(app)
    assert ready.ready, ready.to_json()
    assert _checks(ready) == {"store": True, "schema": True, "workers": True}


def test_not_ready_when_no_worker_heartbeats(make_app: MakeApp, start_worker: StartWorker) -> None:
    app = make_app()
    none_yet = readiness(app)
    assert not none_yet.ready
    assert _checks(none_yet) == {"store": True, "schema": True, "workers": False}
    assert readiness(app, expect_workers=False).ready

    worker = start_worker(app)
    deadline = utc_now() + timedelta(seconds=5)
    while not app.store.worker_beats() and utc_now() < deadline:
        app.wait_for_change(0.02)
    later = utc_now() + timedelta(seconds=app.settings.lease_s * 3)
    stale = readiness(app, now=later)  # the last beat is too old by then
    assert _checks(stale)["workers"] is False
    worker.stop(timeout=10)
    stopped = readiness(app)  # a stopped worker does not count
    assert _checks(stopped)["workers"] is False


def test_not_ready_when_the_schema_is_older_than_the_code(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    first = load_migrations("sqlite")[0]
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript(first.sql)
        conn.execute(SCHEMA_TABLE_DDL)
        conn.execute(
            "INSERT INTO surefoot_schema VALUES (?, ?, ?)",
            (1, first.name, "2026-01-01T00:00:00+00:00"),
        )
        conn.commit()
    app = sf.App("old", store=f"sqlite:///{path}", auto_migrate=False)
    try:
        ready = readiness(app, expect_workers=False)
    finally:
        app.close()
    assert not ready.ready
    assert _checks(ready) == {"store": True, "schema": False}
    assert "db upgrade" in ready.to_json()["checks"]["schema"]["detail"]


def test_not_ready_when_the_store_cannot_be_opened(tmp_path: Path) -> None:
    app = sf.App("gone", store=f"sqlite:///{tmp_path / 'missing' / 'x.db'}")
    ready = readiness(app)
    assert not ready.ready
    assert _checks(ready)["store"] is False
