"""Field types of request bodies and parameters, and the error body every error shares."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, StrictInt

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]")


def _iso_only(value: Any) -> Any:
    """Refuse numbers (pydantic would read them as Unix times): the document says
    RFC 3339 date-time, with its offset."""
    if isinstance(value, str) and _ISO_DATE.match(value):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"not an RFC 3339 date-time: {value!r}") from None
    if isinstance(value, datetime):
        return value
    raise ValueError("expected an RFC 3339 date-time with an offset, e.g. 2030-01-31T09:00:00Z")


def _json_integer(value: Any) -> Any:
    """JSON Schema's integer: 49 and 49.0, never "49" or true."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


JsonInt = Annotated[StrictInt, BeforeValidator(_json_integer)]

# A run's priority: a JSON integer within 32 bits (the bounds stay in the document, also
# where the field may be null).
Priority = Annotated[
    StrictInt, Field(ge=-(2**31), le=2**31, title="Priority"), BeforeValidator(_json_integer)
]

# A point in time a client sends: RFC 3339 with an offset.
Timestamp = Annotated[AwareDatetime, BeforeValidator(_iso_only)]


class ErrorDetail(BaseModel):
    """``code`` is stable (snake_case, one per error class); ``message`` is for people.
    Some errors add fields: ``reference`` (500, 503: quote it to find the server log
    entry), ``retry_after_s`` (429), ``fields`` (422: what was invalid, where)."""

    model_config = ConfigDict(extra="allow")

    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class Strict(BaseModel):
    """Request bodies refuse fields they do not know."""

    model_config = ConfigDict(extra="forbid")
