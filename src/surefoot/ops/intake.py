"""Starting runs from a file of JSON lines, a batch at a time (``surefoot start-many``).

Each non-empty line is an object: ``input`` (a list of positional or an object of named
arguments, or null), and optionally ``idempotency_key``, ``partition_key`` and ``priority``.
Every line is read and its inputs checked against the workflow before anything is
committed; then the runs are committed ``batch`` at a time with ``App.start_many``, each
batch all or nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from surefoot.engine.app import App
from surefoot.engine.starts import MAX_START_MANY, Start
from surefoot.errors import ConfigError, SerializationError

FIELDS = frozenset({"input", "idempotency_key", "partition_key", "priority"})


@dataclass(frozen=True)
class StartLine:
    number: int  # 1-based, as an editor shows it
    start: Start


def read_lines(lines: Iterable[str]) -> list[StartLine]:
    """The runs a JSON-lines text asks for; ``ConfigError`` naming the first bad line."""
    found: list[StartLine] = []
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            item = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"line {number}: not valid JSON: {exc.msg}") from exc
        found.append(StartLine(number, _start_of(item, number)))
    return found


def _start_of(item: Any, number: int) -> Start:
    if not isinstance(item, dict):
        raise ConfigError(f"line {number}: expected a JSON object with an 'input'")
    unknown = sorted(set(item) - FIELDS)
    if unknown:
        raise ConfigError(f"line {number}: unknown field(s) {', '.join(unknown)}")
    given = item.get("input")
    if given is not None and not isinstance(given, (list, dict)):
        raise ConfigError(f"line {number}: 'input' must be a JSON list or object")
    for name in ("idempotency_key", "partition_key"):
        if item.get(name) is not None and not isinstance(item[name], str):
            raise ConfigError(f"line {number}: {name!r} must be a string")
    priority = item.get("priority")
    if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int)):
        raise ConfigError(f"line {number}: 'priority' must be an integer")
    return Start(
        args=tuple(given) if isinstance(given, list) else (),
        kwargs=given if isinstance(given, dict) else {},
        idempotency_key=item.get("idempotency_key"),
        partition_key=item.get("partition_key"),
        priority=priority,
    )


def check_inputs(app: App, workflow: str, lines: list[StartLine]) -> None:
    """``SerializationError`` naming the first line whose inputs do not fit ``workflow``."""
    signature = app.workflow_named(workflow).signature
    for line in lines:
        try:
            signature.encode_call(line.start.args, line.start.kwargs)
        except SerializationError as exc:
            raise SerializationError(f"line {line.number}: {exc}") from exc


def start_lines(
    app: App,
    workflow: str,
    lines: list[StartLine],
    *,
    batch: int = MAX_START_MANY,
    queue: str | None = None,
    priority: int = 0,
    actor: str | None = None,
    progress: Callable[[list[str]], None] = lambda _ids: None,
) -> list[str]:
    """Commit the runs ``batch`` at a time; their ids in line order. ``progress`` gets
    each batch's ids once it is committed. A refused batch raises its error; the batches
    before it stay committed (``progress`` has seen them)."""
    if not 1 <= batch <= MAX_START_MANY:
        raise ConfigError(f"the batch size must be 1 to {MAX_START_MANY}, got {batch}")
    check_inputs(app, workflow, lines)
    run_ids: list[str] = []
    for first in range(0, len(lines), batch):
        handles = app.start_many(
            workflow,
            [line.start for line in lines[first : first + batch]],
            queue=queue,
            priority=priority,
            actor=actor,
        )
        ids = [handle.run_id for handle in handles]
        run_ids.extend(ids)
        progress(ids)
    return run_ids
