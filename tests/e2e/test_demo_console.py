"""`surefoot demo`: the opening invoices show every route within a minute, and the
terminal-only demo still runs to completion."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

import surefoot as sf
from surefoot.demo.payments import Dependency, declare_payments
from surefoot.demo.serve import OPENING, Feeder, ensure_admin
from surefoot.demo.service import FlakyService
from surefoot.domain.records import RunFilter
from surefoot.domain.status import AttemptOutcome

pytestmark = pytest.mark.timeout(90)


def test_the_opening_invoices_show_every_route_within_a_minute(tmp_path: Path) -> None:
    app = sf.App("demo-test", store=f"sqlite:///{tmp_path / 'demo.db'}", instant_retries=True)
    dependency = Dependency(read_timeout_s=0.5)
    payments = declare_payments(app, dependency)
    password = ensure_admin(app)
    assert password is not None
    assert ensure_admin(app) is None  # created once; the password is never shown again
    with FlakyService(slow_answer_s=1.0) as service, sf.Worker(app, concurrency=8):
        dependency.url = service.url
        feeder = Feeder(app, payments, service, every_s=60).start()
        deadline = time.monotonic() + 60
        kinds: Counter[str] = Counter()
        statuses: Counter[str] = Counter()
        while time.monotonic() < deadline:
            runs = app.store.list_runs(RunFilter(limit=100))
            statuses = Counter(r.status.value for r in runs)
            kinds = Counter(i.kind for i in app.store.list_reviews(None, 100, 0))
            settled = statuses["succeeded"] + statuses["failed"] + statuses["needs_review"]
            if len(runs) == len(OPENING) and settled == len(OPENING):
                break
            time.sleep(0.1)
        feeder.stop()
    retried = {
        a.run_id
        for r in app.store.list_runs(RunFilter(status=(sf.RunStatus.SUCCEEDED,), limit=100))
        for a in app.store.list_attempts(r.run_id)
        if a.outcome is AttemptOutcome.FAILED
    }
    app.close()
    assert statuses["failed"] == 1  # the outage outlasts the retries: dead-lettered
    assert kinds == Counter({"approval": 1, "data": 1, "ambiguous": 1})
    assert statuses["succeeded"] == len(OPENING) - 4
    assert len(retried) >= 2  # succeeded after transient failures


def test_the_terminal_demo_runs_to_completion(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "surefoot", "demo", "--no-serve", "--runs", "6"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=80,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "runs: {" in done.stdout
    assert "duplicated invoices: 0" in done.stdout
