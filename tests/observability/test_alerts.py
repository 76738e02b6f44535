"""Alert rules fire and resolve against the store, notify a real webhook and the log, and
leave a record the CLI lists."""

from __future__ import annotations

import json
import textwrap
import time
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

import surefoot as sf
from surefoot.cli.main import cli
from surefoot.domain.stats import AlertState
from surefoot.engine.runtime import utc_now
from surefoot.errors import AlertRulesError
from surefoot.ops.alert_rules import AlertRule, AlertRules, Notify, RuleKind, parse_rules
from surefoot.ops.alerts import (
    AlertEvaluator,
    LogNotifier,
    WebhookNotifier,
    evaluate_once,
    start_alerts,
)
from tests.integration.support.fixtures import MakeApp, StartWorker
from tests.observability.conftest import LogCapture, Receiver


def _dead_letter_one(app: sf.App, start_worker: StartWorker) -> None:
    @app.step
    def refuse() -> None:
        raise sf.PermanentError("refused")

    @app.workflow
    def doomed(ctx: sf.WorkflowContext) -> None:
        refuse()

    handle = app.start(doomed)
    start_worker(app)
    with pytest.raises(sf.RunFailedError):
        handle.result(timeout=10)


def test_dead_letter_alert_fires_and_resolves_at_a_local_webhook(
    make_app: MakeApp, start_worker: StartWorker, receiver: Receiver, logs: LogCapture
) -> None:
    app = make_app("alerting")
    rules = parse_rules(
        textwrap.dedent(
            f"""
            [notify]
            webhook_url = "{receiver.url}/hook"
            timeout_s = 2
            retries = 1

            [[rules]]
            name = "dead-letters-growing"
            kind = "dead_letter_growth"
            threshold = 1
            window_s = 600
            severity = "critical"
            """
        )
    )
    now = utc_now()
    assert evaluate_once(app, rules, now) == []  # nothing dead-lettered: stays resolved
    _dead_letter_one(app, start_worker)

    [fired] = evaluate_once(app, rules, utc_now())
    assert fired.state is AlertState.FIRING
    assert fired.value == 1
    assert evaluate_once(app, rules, utc_now()) == []  # still firing: not sent again
    [resolved] = evaluate_once(app, rules, utc_now() + timedelta(seconds=700))
    assert resolved.state is AlertState.RESOLVED

    bodies = receiver.bodies()
    assert [(b["rule"], b["state"]) for b in bodies] == [
        ("dead-letters-growing", "firing"),
        ("dead-letters-growing", "resolved"),
    ]
    assert bodies[0]["severity"] == "critical"
    assert bodies[0]["app"] == "alerting"
    assert "dead-lettered" in bodies[0]["summary"]
    assert receiver.requests[0][0]["content-type"] == "application/json"

    logged = [line for line in logs.lines() if line.get("alert") == "dead-letters-growing"]
    assert [line["alert_state"] for line in logged] == ["firing", "resolved"]
    audited = [e.action for e in app.store.audit_entries(after_seq=0, limit=500)]
    assert audited.count("alert.firing") == 1
    assert audited.count("alert.resolved") == 1


def test_webhook_is_retried_until_it_accepts(make_app: MakeApp, receiver: Receiver) -> None:
    app = make_app()
    receiver.statuses = [503, 500]
    rules = AlertRules(
        (AlertRule("overdue", RuleKind.REVIEW_SLA, threshold=0),),
        Notify(webhook_url=receiver.url, timeout_s=2, retries=3),
    )
    [fired] = evaluate_once(app, rules, notifiers=[WebhookNotifier(rules.notify)])
    assert fired.state is AlertState.FIRING
    assert len(receiver.requests) == 3
    assert [b["rule"] for b in receiver.bodies()] == ["overdue"] * 3


def test_failure_rate_rule_fires_per_workflow_and_class(
    make_app: MakeApp, start_worker: StartWorker
) -> None:
    app = make_app()
    calls = {"n": 0}

    @app.step(retry=sf.Retry(max_attempts=5))
    def shaky() -> int:
        calls["n"] += 1
        if calls["n"] <= 3:
            raise sf.TransientError("busy")
        return 1

    @app.workflow
    def rated(ctx: sf.WorkflowContext) -> int:
        return shaky()

    start = app.start(rated)
    start_worker(app)
    assert start.result(timeout=10) == 1
    rule = AlertRule(
        "rated-transient",
        RuleKind.FAILURE_RATE,
        threshold=0.5,
        workflow="rated",
        failure_class="transient",
        min_attempts=4,
    )
    [fired] = evaluate_once(app, AlertRules((rule,)), notifiers=[LogNotifier()])
    assert fired.value == pytest.approx(0.75)  # 3 of 4 attempts failed transiently
    assert "rated" in fired.summary
    other = AlertRule("rated-data", RuleKind.FAILURE_RATE, 0.5, failure_class="data")
    assert evaluate_once(app, AlertRules((other,)), notifiers=[]) == []


def test_evaluator_thread_fires_on_its_interval(make_app: MakeApp) -> None:
    app = make_app()

    @app.workflow(queue="stuck")
    def stuck(ctx: sf.WorkflowContext) -> None:
        return None

    app.start(stuck)
    rules = AlertRules((AlertRule("stuck-queue", RuleKind.QUEUE_AGE, 0.0, queue="stuck"),))
    evaluator = AlertEvaluator(app, rules, interval_s=0.05, notifiers=[]).start()
    try:
        deadline = time.monotonic() + 5
        while not app.store.alert_states() and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        evaluator.stop()
    [state] = app.store.alert_states()
    assert (state.rule, state.state) == ("stuck-queue", AlertState.FIRING)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ('[[rules]]\nname = "x"\nkind = "nope"', "kind"),
        ('[[rules]]\nkind = "queue_age"', "name"),
        ('[[rules]]\nname = "x"\nkind = "queue_age"\nwindow = 3', "unknown key"),
        ('[[rules]]\nname = "x"\nkind = "failure_rate"\nfailure_class = "oops"', "failure_class"),
        ('[notify]\nwebhook_url = "ftp://x"', "http"),
        ("[[rules]\n", "TOML"),
    ],
)
def test_a_bad_rules_file_is_refused_with_the_reason(text: str, complaint: str) -> None:
    with pytest.raises(AlertRulesError, match=complaint):
        parse_rules(text)


def test_cli_evaluates_rules_and_lists_firings(
    tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = tmp_path / "alerting_cli_app.py"
    module.write_text(
        "import surefoot as sf\n"
        f"app = sf.App('cli-alerts', store={store_url!r})\n"
        "@app.workflow(queue='stuck')\n"
        "def stuck(ctx):\n"
        "    return None\n"
    )
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rules]]\nname = "stuck-queue"\nkind = "queue_age"\nthreshold = 0\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    runner = CliRunner()
    started = runner.invoke(cli, ["start", "alerting_cli_app:app", "stuck"])
    assert started.exit_code == 0, started.output
    shown = runner.invoke(cli, ["alerts", "rules", "alerting_cli_app:app", "--rules", str(rules)])
    assert shown.exit_code == 0, shown.output
    assert "stuck-queue" in shown.output
    evaluated = runner.invoke(
        cli, ["alerts", "evaluate", "alerting_cli_app:app", "--rules", str(rules), "--json"]
    )
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.output)[0]["state"] == "firing"
    listed = runner.invoke(cli, ["alerts", "list", "alerting_cli_app:app", "--firing", "--json"])
    assert listed.exit_code == 0, listed.output
    assert [e["rule"] for e in json.loads(listed.output)] == ["stuck-queue"]


def test_servers_start_the_evaluator_only_when_a_rules_file_is_configured(
    make_app: MakeApp, tmp_path: Path
) -> None:
    assert start_alerts(make_app("no-rules")) is None
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rules]]\nname = "overdue"\nkind = "review_sla"\nthreshold = 0\n')
    app = make_app("with-rules", alert_rules_path=str(rules), alert_interval_s=0.05)
    evaluator = start_alerts(app)
    assert evaluator is not None
    try:
        deadline = time.monotonic() + 5
        while not app.store.alert_states() and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        evaluator.stop()
    assert [e.rule for e in app.store.alert_states()] == ["overdue"]
    rules.write_text('[[rules]]\nname = "x"\nkind = "unknown"\n')
    with pytest.raises(AlertRulesError):
        start_alerts(make_app("bad-rules", alert_rules_path=str(rules)))
