"""How values are stored in SQLite: timestamps as ISO 8601 text in UTC with microseconds,
structured values as compact JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

# The last datetime formatted and its text: a write formats the same ``now`` for many
# columns and audit entries. Replaced as one tuple, so threads never see half of it; it
# holds its datetime, so no other object can take that identity while it is kept.
_last: tuple[datetime, str] = (datetime(1970, 1, 1, tzinfo=UTC), "1970-01-01T00:00:00.000000+00:00")


def ts(value: datetime | None) -> str | None:
    if value is None:
        return None
    last = _last
    if last[0] is value:
        return last[1]
    return _format(value)


def _format(value: datetime) -> str:
    global _last  # noqa: PLW0603 - the one-entry memo above
    if value.tzinfo is UTC:
        text = value.isoformat(timespec="microseconds")
    elif value.tzinfo is None:
        raise ValueError("naive datetime given to the store; Surefoot uses aware UTC")
    else:
        text = value.astimezone(UTC).isoformat(timespec="microseconds")
    _last = (value, text)
    return text


def dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def dt_required(value: str) -> datetime:
    return datetime.fromisoformat(value)


def dumps_json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), default=str)
