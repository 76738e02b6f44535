"""Routes and classifier rules as data: what each failure class does, and where that
was decided (default, app, workflow or step)."""

from __future__ import annotations

from dataclasses import dataclass

from surefoot.domain.failures import DEFAULT_RULES, FailureClass
from surefoot.domain.routes import DEFAULT_ROUTES, Route
from surefoot.engine.app import App


@dataclass(frozen=True)
class RouteRow:
    scope: str  # "app", "workflow:NAME" or "step:NAME"
    failure_class: FailureClass
    route: Route
    source: str  # "default" or the scope that overrides it


@dataclass(frozen=True)
class RuleRow:
    scope: str
    order: int
    rule: str
    failure_class: str  # a class, or "depends" for rules that pick by facts


def route_table(app: App) -> list[RouteRow]:
    rows: list[RouteRow] = []
    for cls in FailureClass:
        route, source = DEFAULT_ROUTES[cls], "default"
        if cls in app.routes:
            route, source = app.routes[cls], "app"
        rows.append(RouteRow("app", cls, route, source))
    for name in sorted(app.workflows):
        for cls, route in sorted(app.workflows[name].routes.items()):
            rows.append(RouteRow(f"workflow:{name}", cls, route, f"workflow:{name}"))
    for name in sorted(app.steps):
        for cls, route in sorted(app.steps[name].routes.items()):
            rows.append(RouteRow(f"step:{name}", cls, route, f"step:{name}"))
    return rows


def rule_table(app: App) -> list[RuleRow]:
    """Classifier rules in the order they are tried (first match wins): a step's own
    rules, then its workflow's, then the app's, then the defaults."""
    rows: list[RuleRow] = []
    scopes = [(f"step:{n}", s.rules) for n, s in sorted(app.steps.items())]
    scopes += [(f"workflow:{n}", w.rules) for n, w in sorted(app.workflows.items())]
    scopes += [("app", app.rules), ("default", DEFAULT_RULES)]
    for scope, rules in scopes:
        for order, rule in enumerate(rules, start=1):
            cls = rule.failure_class.value if rule.failure_class else "depends"
            rows.append(RuleRow(scope, order, rule.name, cls))
    return rows
