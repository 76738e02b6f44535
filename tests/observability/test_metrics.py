"""Metric values follow what runs do: attempts by class and route, retries, ends, latency,
and the store's gauges at scrape time."""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

import surefoot as sf
from surefoot.observability.metrics import exposition, sample, serve_worker_metrics
from tests.integration.support.fixtures import MakeApp, StartWorker


def _scraped(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def test_counters_change_as_a_run_fails_retries_and_succeeds(
    make_app: MakeApp, start_worker: StartWorker
) -> None:
    app = make_app()
    calls = {"n": 0}

    @app.step(retry=sf.Retry(max_attempts=5))
    def flaky() -> str:
        calls["n"] += 1
        if calls["n"] <= 2:
            raise sf.TransientError("busy")
        return "ok"

    @app.workflow
    def metered(ctx: sf.WorkflowContext) -> str:
        return flaky()

    [step] = app.steps  # the step's registered name
    failed = {"workflow": "metered", "step": step, "outcome": "failed"}
    failed |= {"failure_class": "transient", "route": "retry"}
    succeeded = {"workflow": "metered", "step": step, "outcome": "succeeded"}
    succeeded |= {"failure_class": "", "route": ""}
    before = {
        "started": sample("surefoot_runs_started_total", {"workflow": "metered"}),
        "failed": sample("surefoot_step_attempts_total", failed),
        "succeeded": sample("surefoot_step_attempts_total", succeeded),
        "retries": sample("surefoot_step_retries_total", {"workflow": "metered", "step": step}),
        "finished": sample(
            "surefoot_runs_finished_total",
            {"workflow": "metered", "outcome": "succeeded", "failure_class": ""},
        ),
        "timed": sample(
            "surefoot_step_duration_seconds_count", {"workflow": "metered", "step": step}
        ),
        "store": sample("surefoot_store_latency_seconds_count", {"operation": "execution"}),
    }
    handle = app.start(metered)
    start_worker(app)
    assert handle.result(timeout=10) == "ok"

    assert sample("surefoot_runs_started_total", {"workflow": "metered"}) == before["started"] + 1
    assert sample("surefoot_step_attempts_total", failed) == before["failed"] + 2
    assert sample("surefoot_step_attempts_total", succeeded) == before["succeeded"] + 1
    retries = sample("surefoot_step_retries_total", {"workflow": "metered", "step": step})
    assert retries == before["retries"] + 2
    finished = sample(
        "surefoot_runs_finished_total",
        {"workflow": "metered", "outcome": "succeeded", "failure_class": ""},
    )
    assert finished == before["finished"] + 1
    timed = sample("surefoot_step_duration_seconds_count", {"workflow": "metered", "step": step})
    assert timed == before["timed"] + 3
    store_calls = sample("surefoot_store_latency_seconds_count", {"operation": "execution"})
    assert store_calls > before["store"]


def test_exposition_shows_queue_depth_dead_letters_and_run_failures_from_the_store(
    make_app: MakeApp, start_worker: StartWorker
) -> None:
    app = make_app()

    @app.step
    def refuse() -> None:
        raise sf.PermanentError("no")

    @app.workflow(queue="payments")
    def pay(ctx: sf.WorkflowContext) -> None:
        refuse()

    @app.workflow(queue="later")
    def later(ctx: sf.WorkflowContext) -> None:
        return None

    failed_before = sample(
        "surefoot_runs_finished_total",
        {"workflow": "pay", "outcome": "failed", "failure_class": "permanent"},
    )
    for _ in range(3):
        app.start(later)
    body, content_type = exposition(app)
    assert content_type.startswith("text/plain")
    scraped = _scraped(body.decode())
    assert scraped[("surefoot_queue_depth", (("queue", "later"),))] == 3
    assert scraped[("surefoot_queue_oldest_age_seconds", (("queue", "later"),))] >= 0
    assert scraped[("surefoot_store_up", ())] == 1
    # SQLite chains each audit entry in the commit that stores it: none ever waits.
    assert scraped[("surefoot_audit_unchained_transactions", ())] == 0
    assert scraped[("surefoot_audit_unchained_oldest_age_seconds", ())] == 0

    handle = app.start(pay)
    start_worker(app, queues=["payments"])
    with pytest.raises(sf.RunFailedError):
        handle.result(timeout=10)
    scraped = _scraped(exposition(app.store)[0].decode())
    key = (("failure_class", "permanent"), ("workflow", "pay"))
    assert scraped[("surefoot_dead_letters_open", key)] == 1
    failed = sample(
        "surefoot_runs_finished_total",
        {"workflow": "pay", "outcome": "failed", "failure_class": "permanent"},
    )
    assert failed == failed_before + 1


def test_workers_serve_the_same_metrics_over_http_on_loopback(make_app: MakeApp) -> None:
    app = make_app()

    @app.workflow
    def idle(ctx: sf.WorkflowContext) -> None:
        return None

    app.start(idle)
    served = serve_worker_metrics(app.store, 0)
    try:
        assert served.host == "127.0.0.1"
        url = f"http://{served.host}:{served.port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
    finally:
        served.close()
    scraped = _scraped(text)
    assert scraped[("surefoot_queue_depth", (("queue", "default"),))] == 1
    assert any(name == "surefoot_runs_started_total" for name, _ in scraped)
