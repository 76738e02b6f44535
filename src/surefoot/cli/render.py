"""Rich tables and panels for runs, timelines, dead letters, reviews and audit."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from surefoot.domain.audit import AuditEntry
from surefoot.domain.records import DeadLetter, ReviewItem, RunRecord
from surefoot.ops.routes import RouteRow, RuleRow
from surefoot.ops.runs import Timeline, age

console = Console()
err = Console(stderr=True)

STATUS_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "cancelled": "bright_black",
    "running": "cyan",
    "pending": "white",
    "waiting": "yellow",
    "needs_review": "magenta",
    "compensating": "bright_red",
    "interrupted": "bright_red",
    "reconciled": "blue",
}


def styled(value: str | None) -> Text:
    value = value or ""
    return Text(value, style=STATUS_STYLE.get(value, ""))


def _short_error(text: str | None) -> str:
    if not text:
        return ""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return text[:120]
    if isinstance(data, dict):
        kind = str(data.get("type", "")).rsplit(".", 1)[-1]
        message = data.get("message") or data.get("reason") or ""
        return f"{kind}: {message}".strip(": ")[:160]
    return str(data)[:120]


def runs_table(runs: Sequence[RunRecord], total: int, offset: int) -> None:
    table = Table(
        title=f"runs {offset + 1}-{offset + len(runs)} of {total}" if runs else "no runs match"
    )
    for column in ("run_id", "workflow", "queue", "status", "waiting on", "age", "error"):
        table.add_column(column, overflow="fold")
    for run in runs:
        waiting = run.wait_reason or ""
        if run.wake_at is not None and run.status.value == "waiting":
            waiting += f" until {run.wake_at:%H:%M:%S}"
        table.add_row(
            run.run_id,
            run.workflow,
            run.queue,
            styled(run.status.value),
            waiting,
            age(run.created_at),
            _short_error(run.error),
        )
    console.print(table)


def timeline(view: Timeline) -> None:
    run = view.run
    console.print(
        f"[bold]run {run.run_id}[/]  {run.workflow}  queue={run.queue}  status=",
        styled(run.status.value),
        sep="",
    )
    details = {
        "idempotency_key": run.idempotency_key,
        "correlation_id": run.correlation_id,
        "created_at": run.created_at.isoformat(),
        "generation": run.generation,
        "deliveries": run.deliveries,
        "lease_owner": run.lease_owner,
        "wait_reason": run.wait_reason,
        "forked_from_run_id": run.forked_from_run_id,
    }
    for key, value in details.items():
        if value not in (None, ""):
            console.print(f"  {key}: {value}")
    console.print(f"  inputs: {run.inputs}")
    if run.output is not None:
        console.print(f"  output: {run.output}")
    if run.error is not None:
        console.print(f"  error: {run.error}")
    table = Table(title="timeline")
    for column in (
        "pos",
        "step",
        "attempt",
        "started_at",
        "finished_at",
        "outcome",
        "class",
        "rule",
        "route / decision",
        "idempotency_key",
        "error",
    ):
        table.add_column(column, overflow="fold")
    attempted = set()
    rows: list[tuple[tuple[int, int, int], list[Any]]] = []
    for attempt in view.attempts:
        attempted.add(attempt.position)
        undo = attempt.kind.value != "step"
        label = f"{attempt.step} (undo)" if undo else attempt.step
        route = " / ".join(x for x in (attempt.route, attempt.decision) if x)
        rows.append(
            (
                (attempt.position, int(undo), attempt.attempt),
                [
                    str(attempt.position),
                    label,
                    str(attempt.attempt),
                    f"{attempt.started_at:%H:%M:%S.%f}"[:-3],
                    f"{attempt.finished_at:%H:%M:%S.%f}"[:-3] if attempt.finished_at else "",
                    styled(attempt.outcome.value),
                    attempt.failure_class.value if attempt.failure_class else "",
                    attempt.rule or "",
                    route,
                    attempt.idempotency_key,
                    _short_error(attempt.error),
                ],
            )
        )
    for entry in view.journal:
        if entry.position in attempted:
            continue
        note = entry.kind.value
        if entry.wake_at is not None:
            note += f" until {entry.wake_at:%H:%M:%S}"
        reused = " (reused from fork)" if run.forked_from_run_id else ""
        rows.append(
            (
                (entry.position, 0, 0),
                [
                    str(entry.position),
                    f"{entry.name}{reused}",
                    "",
                    f"{entry.created_at:%H:%M:%S.%f}"[:-3],
                    f"{entry.committed_at:%H:%M:%S.%f}"[:-3] if entry.committed_at else "",
                    styled(entry.status.value),
                    "",
                    "",
                    note,
                    "",
                    _short_error(entry.error),
                ],
            )
        )
    for _key, cells in sorted(rows, key=lambda row: row[0]):
        table.add_row(*cells)
    console.print(table)
    if view.reviews:
        reviews_table(view.reviews, title="review items")


def dead_letters_table(items: Sequence[DeadLetter]) -> None:
    table = Table(title=f"dead-letter ({len(items)})")
    for column in ("run_id", "workflow", "class", "step", "attempts", "reason", "status", "age"):
        table.add_column(column, overflow="fold")
    for dead in items:
        table.add_row(
            dead.run_id,
            dead.workflow,
            dead.failure_class.value,
            dead.step or "",
            str(dead.attempts),
            dead.reason[:200],
            dead.status.value,
            age(dead.dead_lettered_at),
        )
    console.print(table)


def reviews_table(items: Sequence[ReviewItem], *, title: str = "review queue") -> None:
    table = Table(title=f"{title} ({len(items)})")
    for column in ("item_id", "kind", "title", "run_id", "actions", "status", "age"):
        table.add_column(column, overflow="fold")
    for item in items:
        table.add_row(
            item.item_id,
            item.kind,
            item.title,
            item.run_id,
            ", ".join(item.actions),
            item.status.value,
            age(item.created_at),
        )
    console.print(table)


def audit_table(entries: Sequence[AuditEntry]) -> None:
    table = Table(title=f"audit ({len(entries)} entries)")
    for column in ("seq", "at", "actor", "action", "entity_id", "before -> after", "reason"):
        table.add_column(column, overflow="fold")
    for entry in entries:
        change = f"{_compact(entry.before)} -> {_compact(entry.after)}"
        table.add_row(
            str(entry.seq),
            entry.at[:23],
            entry.actor,
            entry.action,
            entry.entity_id,
            change,
            entry.reason or "",
        )
    console.print(table)


def routes_tables(route_rows: Sequence[RouteRow], rule_rows: Sequence[RuleRow]) -> None:
    table = Table(title="routes (a step's override beats its workflow's, which beats the app's)")
    for column in ("scope", "class", "route", "source"):
        table.add_column(column)
    for row in route_rows:
        table.add_row(row.scope, row.failure_class.value, row.route.value, row.source)
    console.print(table)
    rules = Table(title="classifier rules, in the order they are tried (first match wins)")
    for column in ("scope", "#", "rule", "class"):
        rules.add_column(column)
    for rule in rule_rows:
        rules.add_row(rule.scope, str(rule.order), rule.rule, rule.failure_class)
    console.print(rules)


def _compact(value: Any) -> str:
    if value is None:
        return "-"
    return json.dumps(value, separators=(",", ":"), default=str)[:120]


def as_json(value: Any) -> None:
    console.print_json(json.dumps(value, default=str))
