"""How the console names a run's state: never a bare "running" or "waiting" when the run is
really retrying, parked for a person, stalled on a dead worker or behind an open breaker."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from surefoot.domain.records import RunRecord
from surefoot.domain.status import RunStatus


@dataclass(frozen=True)
class State:
    label: str  # what the operator reads: "retrying", "stalled", ...
    tone: str  # a CSS class: ok, busy, wait, warn, bad, muted, review
    detail: str = ""  # "retry of post_payment at 22:54:50Z", ...
    attention: str | None = None  # why it needs a person, or None


_WAIT_LABELS = {
    "retry": ("retrying", "warn", "retrying"),
    "breaker": ("breaker open", "warn", "breaker open"),
    "rate": ("rate limited", "wait", None),
    "sleep": ("sleeping", "wait", None),
    "event": ("waiting for event", "wait", None),
    "debounce": ("debounced", "wait", None),
}


def run_state(run: RunRecord, now: datetime) -> State:
    """The state to show for ``run`` at ``now``."""
    status = run.status
    reason = run.wait_reason or ""
    kind, _, target = reason.partition(":")
    when = f" at {utc(run.wake_at)}" if run.wake_at else ""
    if status is RunStatus.WAITING:
        label, tone, attention = _WAIT_LABELS.get(kind, ("waiting", "wait", None))
        detail = f"{target}{when}" if target else when.strip()
        return State(label, tone, detail.strip(), attention)
    if status is RunStatus.RUNNING:
        if run.lease_expires_at is not None and run.lease_expires_at < now:
            return State(
                "stalled",
                "bad",
                f"lease of {run.lease_owner or 'a worker'} expired {ago(run.lease_expires_at, now)}"
                " ago; another worker takes it over",
                "stalled",
            )
        if run.cancel_requested:
            return State("cancelling", "warn", "cancel requested", None)
        return State("running", "busy", run.lease_owner or "")
    if status is RunStatus.NEEDS_REVIEW:
        detail = f"review item {target[:12]}" if target else reason
        return State("needs review", "review", detail, "needs_review")
    if status is RunStatus.COMPENSATING:
        return State("compensating", "bad", "undoing committed steps", "compensating")
    if status is RunStatus.FAILED:
        return State("failed", "bad", short_error(run.error), "failed")
    if status is RunStatus.SUCCEEDED:
        return State("succeeded", "ok")
    if status is RunStatus.CANCELLED:
        return State("cancelled", "muted")
    return State(status.value, "muted", reason)


ATTENTION_LABELS = {
    "failed": "failed: dead-lettered, waiting for a redrive or a discard",
    "needs_review": "parked: a person must decide a review item",
    "retrying": "retrying after a transient failure",
    "breaker open": "held behind an open circuit breaker",
    "compensating": "compensating: undoing committed steps after a failure",
    "stalled": "stalled: its worker's lease expired",
}


def utc(at: datetime | None) -> str:
    if at is None:
        return ""
    return at.strftime("%Y-%m-%d %H:%M:%SZ")


def ago(at: datetime | None, now: datetime) -> str:
    """A compact age: 45s, 12m, 3h, 2d."""
    if at is None:
        return ""
    seconds = max(0.0, (now - at).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def short_error(text: str | None, limit: int = 160) -> str:
    """One line from a stored error (JSON with type and message, or plain text)."""
    if not text:
        return ""
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError:
        return first_line(text)[:limit]
    if isinstance(data, dict):
        kind = str(data.get("type", "")).rsplit(".", 1)[-1]
        message = first_line(str(data.get("message") or data.get("reason") or ""))
        status = data.get("http_status")
        line = f"{kind}: {message}".strip(": ")
        if status is not None and str(status) not in line:
            line = f"{line} (HTTP {status})"
        return line[:limit]
    return str(data)[:limit]


def first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def brief(text: str | None, limit: int = 180) -> str:
    """Whitespace collapsed, cut at ``limit`` characters (the page keeps the full text in a
    tooltip)."""
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def without_tracebacks(value: Any) -> tuple[Any, list[str]]:
    """``value`` with every ``traceback`` key taken out, and the tracebacks found: pages
    show the error first and the stack only on request."""
    found: list[str] = []

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            kept = {}
            for key, item in node.items():
                if key == "traceback" and isinstance(item, str):
                    found.append(item)
                else:
                    kept[key] = strip(item)
            return kept
        if isinstance(node, list):
            return [strip(item) for item in node]
        return node

    return strip(value), found


def compact(value: Any, limit: int = 120) -> str:
    """A value as one line of JSON, cut at ``limit`` characters ("-" for None)."""
    if value is None:
        return "-"
    return brief(json.dumps(value, ensure_ascii=False, default=str), limit)


def pretty_json(text: str | None) -> str:
    if text is None:
        return ""
    try:
        value, _tracebacks = without_tracebacks(json.loads(text))
    except json.JSONDecodeError:
        return text
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def tracebacks(text: str | None) -> list[str]:
    if not text:
        return []
    try:
        return without_tracebacks(json.loads(text))[1]
    except json.JSONDecodeError:
        return []
