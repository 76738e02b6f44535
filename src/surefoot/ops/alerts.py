"""Alerts: rules evaluated on an interval; firings and resolutions stored, audited and sent.

:func:`evaluate_once` measures every rule, and for each that changed state records the
event (the store refuses a duplicate, so two servers evaluating at once notify once)
and notifies: the log always, a JSON webhook when configured. :class:`AlertEvaluator`
does that on a thread every ``interval_s``; ``surefoot alerts evaluate`` does it once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

import httpx

from surefoot.domain.stats import AlertEvent, AlertState
from surefoot.engine.app import App
from surefoot.engine.runtime import utc_now
from surefoot.errors import SurefootError
from surefoot.ops.alert_rules import AlertRules, Notify, load_rules, measure

log = logging.getLogger("surefoot.alerts")


class Notifier(Protocol):
    def notify(self, event: AlertEvent, app_name: str) -> None: ...


def event_json(event: AlertEvent, app_name: str) -> dict[str, Any]:
    return {
        "app": app_name,
        "rule": event.rule,
        "state": event.state.value,
        "severity": event.severity,
        "summary": event.summary,
        "value": event.value,
        "threshold": event.threshold,
        "at": event.at.isoformat(),
    }


class LogNotifier:
    def notify(self, event: AlertEvent, app_name: str) -> None:
        level = logging.WARNING if event.state is AlertState.FIRING else logging.INFO
        log.log(
            level,
            "alert %s %s: %s",
            event.rule,
            event.state.value,
            event.summary,
            extra={"alert": event.rule, "alert_state": event.state.value, "app": app_name},
        )


class WebhookNotifier:
    """POST the event as JSON; retried with backoff on connection errors and 5xx/429."""

    def __init__(self, notify: Notify, *, transport: httpx.BaseTransport | None = None) -> None:
        if notify.webhook_url is None:
            raise ValueError("WebhookNotifier needs a webhook_url")
        self.url = notify.webhook_url
        self.settings = notify
        self._transport = transport

    def notify(self, event: AlertEvent, app_name: str) -> None:
        body = event_json(event, app_name)
        delay = 0.2
        with httpx.Client(
            timeout=self.settings.timeout_s,
            headers=self.settings.headers,
            transport=self._transport,
        ) as client:
            for attempt in range(1, self.settings.retries + 2):
                try:
                    response = client.post(self.url, json=body)
                except httpx.HTTPError as exc:
                    problem = f"{type(exc).__name__}"
                else:
                    if response.status_code < 300:
                        return
                    problem = f"HTTP {response.status_code}"
                    if response.status_code < 500 and response.status_code != 429:
                        break
                if attempt <= self.settings.retries:
                    time.sleep(delay)
                    delay = min(delay * 2, 5.0)
        log.error(
            "alert %s %s: the webhook did not accept it (%s)",
            event.rule,
            event.state.value,
            problem,
            extra={"alert": event.rule},
        )


def notifiers_for(rules: AlertRules) -> list[Notifier]:
    found: list[Notifier] = [LogNotifier()]
    if rules.notify.webhook_url:
        found.append(WebhookNotifier(rules.notify))
    return found


def evaluate_once(
    app: App,
    rules: AlertRules,
    now: datetime | None = None,
    *,
    notifiers: Sequence[Notifier] | None = None,
) -> list[AlertEvent]:
    """Measure every rule; record and send each change of state. Returns the changes."""
    at = now or utc_now()
    store = app.store
    states = {e.rule: e.state for e in store.alert_states()}
    send = list(notifiers) if notifiers is not None else notifiers_for(rules)
    changes: list[AlertEvent] = []
    for rule in rules.rules:
        try:
            found = measure(rule, store, at)
        except SurefootError:
            log.exception("alert rule %s could not be evaluated", rule.name)
            continue
        state = AlertState.FIRING if found.firing else AlertState.RESOLVED
        if states.get(rule.name, AlertState.RESOLVED) is state:
            continue
        event = AlertEvent(
            rule=rule.name,
            state=state,
            severity=rule.severity,
            summary=found.summary,
            at=at,
            value=found.value,
            threshold=rule.threshold,
        )
        if not store.record_alert_event(event):
            continue  # another evaluator recorded (and sent) it first
        changes.append(event)
        for notifier in send:
            try:
                notifier.notify(event, app.name)
            except Exception:  # one broken notifier must not stop the others
                log.exception("alert %s: notifier %s failed", rule.name, type(notifier).__name__)
    return changes


def list_alerts(app: App, *, rule: str | None = None, limit: int = 50) -> list[AlertEvent]:
    """Recorded firings and resolutions, newest first."""
    return app.store.alert_events(rule=rule, limit=limit)


def firing_alerts(app: App) -> list[AlertEvent]:
    """The rules firing now (their newest event is a firing)."""
    return [e for e in app.store.alert_states() if e.state is AlertState.FIRING]


def start_alerts(app: App) -> AlertEvaluator | None:
    """For servers: evaluate the rules of ``settings.alert_rules_path`` every
    ``settings.alert_interval_s`` on a thread; None when no rules file is configured.
    Raises ``AlertRulesError`` for a bad file, before anything starts."""
    if not app.settings.alert_rules_path:
        return None
    return AlertEvaluator(app, load_rules(app.settings.alert_rules_path)).start()


class AlertEvaluator:
    """Evaluates the rules every ``interval_s`` on a daemon thread (servers start one)."""

    def __init__(
        self,
        app: App,
        rules: AlertRules,
        *,
        interval_s: float | None = None,
        notifiers: Sequence[Notifier] | None = None,
    ) -> None:
        self.app = app
        self.rules = rules
        self.interval_s = interval_s if interval_s is not None else app.settings.alert_interval_s
        self.notifiers = list(notifiers) if notifiers is not None else notifiers_for(rules)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> AlertEvaluator:
        self._thread = threading.Thread(target=self._loop, name="surefoot-alerts", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                evaluate_once(self.app, self.rules, notifiers=self.notifiers)
            except Exception:  # the evaluator outlives a bad round
                log.exception("alert evaluation failed; trying again in %gs", self.interval_s)
            self._stop.wait(self.interval_s)
