"""Alert rules: read from a TOML file, measured against the store.

```toml
[notify]
webhook_url = "https://alerts.example.com/surefoot"   # optional; the log always gets them
timeout_s = 5
retries = 3

[[rules]]
name = "dead-letters-growing"
kind = "dead_letter_growth"     # dead letters created within window_s >= threshold
threshold = 5
window_s = 600
severity = "critical"

[[rules]]
name = "payments-failing"
kind = "failure_rate"           # failed / finished step attempts within window_s
workflow = "pay_invoice"        # optional: every workflow when absent
failure_class = "transient"     # optional: any class when absent
threshold = 0.5
min_attempts = 10

[[rules]]
name = "invoices-queue-stuck"
kind = "queue_age"              # seconds the oldest ready run has waited
queue = "invoices"              # optional
threshold = 300

[[rules]]
name = "reviews-overdue"
kind = "review_sla"             # open review items past their SLA

[[rules]]
name = "bank-breaker"
kind = "breaker_open"           # circuit breakers open or half-open
breaker = "bank-api"            # optional

[[rules]]
name = "audit-not-chained"
kind = "audit_backlog"          # seconds the oldest audit entry has waited for the chain
threshold = 60                  # (PostgreSQL: entries are chained by a sweep within ~1 s)
```
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from surefoot.domain.failures import FailureClass
from surefoot.errors import AlertRulesError
from surefoot.store.base import Store


class RuleKind(StrEnum):
    DEAD_LETTER_GROWTH = "dead_letter_growth"
    FAILURE_RATE = "failure_rate"
    QUEUE_AGE = "queue_age"
    REVIEW_SLA = "review_sla"
    BREAKER_OPEN = "breaker_open"
    AUDIT_BACKLOG = "audit_backlog"


_DEFAULT_THRESHOLD = {
    RuleKind.DEAD_LETTER_GROWTH: 1.0,
    RuleKind.FAILURE_RATE: 0.5,
    RuleKind.QUEUE_AGE: 300.0,
    RuleKind.REVIEW_SLA: 1.0,
    RuleKind.BREAKER_OPEN: 1.0,
    RuleKind.AUDIT_BACKLOG: 60.0,
}


@dataclass(frozen=True)
class AlertRule:
    name: str
    kind: RuleKind
    threshold: float
    window_s: float = 300.0
    severity: str = "warning"
    workflow: str | None = None
    failure_class: str | None = None
    queue: str | None = None
    breaker: str | None = None
    min_attempts: int = 10


@dataclass(frozen=True)
class Notify:
    webhook_url: str | None = None
    timeout_s: float = 5.0
    retries: int = 3
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AlertRules:
    rules: tuple[AlertRule, ...]
    notify: Notify = Notify()


@dataclass(frozen=True)
class Measurement:
    value: float
    firing: bool
    summary: str


# -- parsing ------------------------------------------------------------------------------------
def load_rules(path: str | Path) -> AlertRules:
    try:
        text = Path(path).read_text("utf-8")
    except OSError as exc:
        raise AlertRulesError(f"cannot read alert rules {path}: {exc}") from exc
    return parse_rules(text, source=str(path))


def parse_rules(text: str, *, source: str = "alert rules") -> AlertRules:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise AlertRulesError(f"{source}: not valid TOML: {exc}") from exc
    unknown = sorted(set(data) - {"rules", "notify"})
    if unknown:
        raise AlertRulesError(f"{source}: unknown section(s) {', '.join(unknown)}")
    raw_rules = data.get("rules", [])
    if not isinstance(raw_rules, list):
        raise AlertRulesError(f"{source}: 'rules' must be an array of tables ([[rules]])")
    rules = tuple(_rule(item, f"{source}: rule {i + 1}") for i, item in enumerate(raw_rules))
    names = [r.name for r in rules]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise AlertRulesError(f"{source}: rule names must be unique: {', '.join(duplicates)}")
    return AlertRules(rules, _notify(data.get("notify", {}), f"{source}: [notify]"))


def _known(item: dict[str, Any], cls: type[Any], where: str) -> None:
    allowed = {f.name for f in fields(cls)}
    unknown = sorted(set(item) - allowed)
    if unknown:
        raise AlertRulesError(
            f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(allowed))})"
        )


def _rule(item: Any, where: str) -> AlertRule:
    if not isinstance(item, dict):
        raise AlertRulesError(f"{where}: must be a table")
    _known(item, AlertRule, where)
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        raise AlertRulesError(f"{where}: 'name' is required")
    try:
        kind = RuleKind(str(item.get("kind")))
    except ValueError:
        kinds = ", ".join(k.value for k in RuleKind)
        raise AlertRulesError(f"{where} ({name}): 'kind' must be one of {kinds}") from None
    values = {**item, "kind": kind}
    values.setdefault("threshold", _DEFAULT_THRESHOLD[kind])
    try:
        rule = AlertRule(**values)
        threshold, window_s = float(rule.threshold), float(rule.window_s)
    except (TypeError, ValueError) as exc:
        raise AlertRulesError(f"{where} ({name}): {exc}") from exc
    if window_s <= 0 or threshold < 0 or int(rule.min_attempts) < 1:
        raise AlertRulesError(
            f"{where} ({name}): window_s must be positive, threshold not negative, "
            "min_attempts at least 1"
        )
    if rule.failure_class is not None and rule.failure_class not in {c.value for c in FailureClass}:
        raise AlertRulesError(f"{where} ({name}): unknown failure_class {rule.failure_class!r}")
    return AlertRule(**{**values, "threshold": threshold, "window_s": window_s})


def _notify(item: Any, where: str) -> Notify:
    if not isinstance(item, dict):
        raise AlertRulesError(f"{where}: must be a table")
    _known(item, Notify, where)
    notify = Notify(**item)
    url = notify.webhook_url
    if url is not None and not (url.startswith(("http://", "https://"))):
        raise AlertRulesError(f"{where}: webhook_url must be an http(s) URL")
    if notify.timeout_s <= 0 or notify.retries < 0:
        raise AlertRulesError(f"{where}: timeout_s must be positive and retries not negative")
    return notify


# -- measuring ----------------------------------------------------------------------------------
def measure(rule: AlertRule, store: Store, now: datetime) -> Measurement:
    """Read what the rule watches and whether it crosses the threshold now."""
    since = now - timedelta(seconds=rule.window_s)
    if rule.kind is RuleKind.DEAD_LETTER_GROWTH:
        count = store.count_dead_letters_since(since)
        return Measurement(
            count,
            count >= rule.threshold,
            f"{count} run(s) dead-lettered in the last {rule.window_s:g}s "
            f"(threshold {rule.threshold:g})",
        )
    if rule.kind is RuleKind.FAILURE_RATE:
        return _failure_rate(rule, store, since)
    if rule.kind is RuleKind.QUEUE_AGE:
        ages = {
            q.queue: (now - q.oldest_created_at).total_seconds()
            for q in store.queue_stats()
            if q.oldest_created_at is not None and rule.queue in (None, q.queue)
        }
        worst = max(ages, key=lambda q: ages[q], default=None)
        age = ages[worst] if worst is not None else 0.0
        return Measurement(
            age,
            worst is not None and age >= rule.threshold,
            f"oldest ready run in queue {worst} has waited {age:.0f}s"
            if worst is not None
            else "no run is waiting",
        )
    if rule.kind is RuleKind.AUDIT_BACKLOG:
        return _audit_backlog(rule, store, now)
    if rule.kind is RuleKind.REVIEW_SLA:
        overdue = sum(r.overdue for r in store.review_stats(now))
        return Measurement(
            overdue, overdue >= rule.threshold, f"{overdue} open review item(s) past their SLA"
        )
    open_breakers = sorted(
        b.key
        for b in store.get_breakers()
        if b.state.value != "closed" and rule.breaker in (None, b.key)
    )
    return Measurement(
        len(open_breakers),
        len(open_breakers) >= rule.threshold,
        f"circuit breaker(s) open: {', '.join(open_breakers)}"
        if open_breakers
        else "all circuit breakers closed",
    )


def _audit_backlog(rule: AlertRule, store: Store, now: datetime) -> Measurement:
    backlog = store.audit_backlog()
    if backlog.oldest_at is None:
        return Measurement(0.0, False, "every committed audit entry is in the hash chain")
    age = backlog.waited_s(now)
    return Measurement(
        age,
        age >= rule.threshold,
        f"{backlog.transactions} transaction(s) of audit entries not yet in the hash chain;"
        f" the oldest entry has waited {age:.0f}s",
    )


def _failure_rate(rule: AlertRule, store: Store, since: datetime) -> Measurement:
    totals: dict[str, int] = {}
    failed: dict[str, int] = {}
    for row in store.attempt_counts(since):
        if rule.workflow not in (None, row.workflow):
            continue
        totals[row.workflow] = totals.get(row.workflow, 0) + row.attempts
        if row.failure_class and rule.failure_class in (None, row.failure_class):
            failed[row.workflow] = failed.get(row.workflow, 0) + row.attempts
    rates = {
        wf: failed.get(wf, 0) / total for wf, total in totals.items() if total >= rule.min_attempts
    }
    worst = max(rates, key=lambda wf: rates[wf], default=None)
    if worst is None:
        return Measurement(0.0, False, f"fewer than {rule.min_attempts} attempts to judge")
    rate = rates[worst]
    what = f"{rule.failure_class} failures" if rule.failure_class else "failures"
    return Measurement(
        rate,
        rate >= rule.threshold,
        f"{what} in workflow {worst}: {failed.get(worst, 0)} of {totals[worst]} attempts "
        f"({rate:.0%}) in the last {rule.window_s:g}s",
    )
