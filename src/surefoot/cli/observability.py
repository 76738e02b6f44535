"""``surefoot alerts ...``: alert rules, their firings and resolutions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import typer
from rich.table import Table

from surefoot.cli import render
from surefoot.cli.loading import load_app
from surefoot.domain.stats import AlertEvent, AlertState
from surefoot.engine.app import App
from surefoot.errors import ConfigError
from surefoot.ops.alert_rules import AlertRules, load_rules
from surefoot.ops.alerts import evaluate_once, event_json, firing_alerts, list_alerts

alerts_cli = typer.Typer(
    help="Alert rules: what fired and resolved, the rules in force, evaluate now.",
    no_args_is_help=True,
)

AppArg = Annotated[str, typer.Argument(help="The app, as module:attribute.")]
StoreOpt = Annotated[str | None, typer.Option("--store", help="Store URL (overrides the app's).")]
RulesOpt = Annotated[
    str | None,
    typer.Option("--rules", help="Alert rules TOML file (default: SUREFOOT_ALERT_RULES_PATH)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _rules(app: App, path: str | None) -> AlertRules:
    chosen = path or app.settings.alert_rules_path
    if not chosen:
        raise ConfigError("no alert rules file: pass --rules FILE or set SUREFOOT_ALERT_RULES_PATH")
    return load_rules(chosen)


def _events_table(events: Sequence[AlertEvent], title: str) -> None:
    table = Table(title=title)
    for column in ("at", "rule", "state", "severity", "value", "threshold", "summary"):
        table.add_column(column)
    for event in events:
        table.add_row(
            event.at.isoformat(timespec="seconds"),
            event.rule,
            event.state.value.upper() if event.state is AlertState.FIRING else event.state.value,
            event.severity,
            "" if event.value is None else f"{event.value:g}",
            "" if event.threshold is None else f"{event.threshold:g}",
            event.summary,
        )
    render.console.print(table)


@alerts_cli.command("list")
def list_command(
    app: AppArg,
    rule: Annotated[str | None, typer.Option(help="Only this rule.")] = None,
    firing: Annotated[bool, typer.Option(help="Only the rules firing now.")] = False,
    limit: Annotated[int, typer.Option(help="At most this many events.")] = 50,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Recorded firings and resolutions, newest first."""
    loaded = load_app(app, store=store)
    events = firing_alerts(loaded) if firing else list_alerts(loaded, rule=rule, limit=limit)
    if as_json:
        render.as_json([event_json(e, loaded.name) for e in events])
        return
    _events_table(events, "alerts firing" if firing else "alert events")


@alerts_cli.command("rules")
def rules_command(app: AppArg, rules: RulesOpt = None, as_json: JsonOpt = False) -> None:
    """The rules in force, as parsed from the rules file."""
    loaded = load_app(app)
    parsed = _rules(loaded, rules)
    rows = [
        {
            "name": r.name,
            "kind": r.kind.value,
            "threshold": r.threshold,
            "window_s": r.window_s,
            "severity": r.severity,
            "scope": ", ".join(
                f"{k}={v}"
                for k, v in (
                    ("workflow", r.workflow),
                    ("failure_class", r.failure_class),
                    ("queue", r.queue),
                    ("breaker", r.breaker),
                )
                if v
            ),
        }
        for r in parsed.rules
    ]
    if as_json:
        render.as_json({"rules": rows, "webhook": bool(parsed.notify.webhook_url)})
        return
    table = Table(title=f"alert rules (webhook: {'yes' if parsed.notify.webhook_url else 'no'})")
    columns = ("name", "kind", "threshold", "window_s", "severity", "scope")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row[c]) for c in columns))
    render.console.print(table)


@alerts_cli.command("evaluate")
def evaluate_command(
    app: AppArg, rules: RulesOpt = None, store: StoreOpt = None, as_json: JsonOpt = False
) -> None:
    """Evaluate every rule once now: record and send what changed, print it."""
    loaded = load_app(app, store=store)
    changes = evaluate_once(loaded, _rules(loaded, rules))
    if as_json:
        render.as_json([event_json(e, loaded.name) for e in changes])
        return
    if not changes:
        render.console.print("no alert changed state")
        return
    _events_table(changes, "alert changes")
