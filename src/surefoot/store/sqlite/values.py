"""How values are stored in SQLite: timestamps as ISO 8601 text in UTC with microseconds,
structured values as compact JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any


def ts(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the store; Surefoot uses aware UTC")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def dt_required(value: str) -> datetime:
    return datetime.fromisoformat(value)


def dumps_json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), default=str)
