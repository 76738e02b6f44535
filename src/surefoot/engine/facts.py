"""Extract :class:`FailureFacts` from a live exception (httpx errors included).

httpx is not imported here: an httpx error exists only once the code that raised it has
imported httpx, so it is looked up among the loaded modules, and a worker whose steps
make no HTTP calls starts without loading it.
"""

from __future__ import annotations

import sys
import traceback
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from types import ModuleType
from typing import Any

from surefoot.domain.codec import canonical
from surefoot.domain.failures import FailureClass, FailureFacts, qualified_mro
from surefoot.errors import (
    AmbiguousError,
    DataError,
    PermanentError,
    PolicyViolation,
    StepTimeoutError,
    TransientError,
)
from surefoot.observability import redaction

_BODY_LIMIT = 4096
_STORED_BODY_LIMIT = 2048  # enough for a validation error list; the rest is not kept
_DECLARED: tuple[tuple[type[BaseException], FailureClass], ...] = (
    (TransientError, FailureClass.TRANSIENT),
    (PermanentError, FailureClass.PERMANENT),
    (DataError, FailureClass.DATA),
    (PolicyViolation, FailureClass.POLICY),
    (AmbiguousError, FailureClass.AMBIGUOUS),
)


def parse_retry_after(value: str | None, now_epoch: float) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now_epoch)
    except (TypeError, ValueError):
        return None


@dataclass
class _HttpFacts:
    status: int | None = None
    method: str | None = None
    body: str = ""
    timeout_kind: str | None = None
    request_sent: bool = False
    retry_after: float | None = None


def _find_http(exc: BaseException, httpx: ModuleType) -> BaseException | None:
    """The httpx error behind ``exc`` (itself, or one in its cause chain)."""
    http_error: type[BaseException] = httpx.HTTPError
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, http_error):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _http_facts(http: Any, httpx: ModuleType, now_epoch: float) -> _HttpFacts:
    """What an httpx error tells: status, method, body, which timeout, whether it was sent."""
    facts = _HttpFacts()
    if isinstance(http, httpx.HTTPStatusError):
        facts.status = http.response.status_code
        facts.method = http.request.method
        facts.request_sent = True
        try:
            facts.body = http.response.text[:_BODY_LIMIT]
        except (httpx.ResponseNotRead, UnicodeDecodeError):
            facts.body = ""
        facts.retry_after = parse_retry_after(http.response.headers.get("Retry-After"), now_epoch)
    elif isinstance(http, httpx.RequestError):
        try:
            facts.method = http.request.method
        except RuntimeError:
            facts.method = None
        if isinstance(http, httpx.ConnectTimeout):
            facts.timeout_kind = "connect"
        elif isinstance(http, httpx.PoolTimeout):
            facts.timeout_kind = "pool"
        elif isinstance(http, httpx.ReadTimeout):
            facts.timeout_kind, facts.request_sent = "read", True
        elif isinstance(http, httpx.WriteTimeout):
            facts.timeout_kind, facts.request_sent = "write", True
    return facts


def extract_facts(exc: BaseException, *, step_idempotent: bool, now_epoch: float) -> FailureFacts:
    declared: FailureClass | None = None
    for signal_type, cls in _DECLARED:
        if isinstance(exc, signal_type):
            declared = cls
            break
    retry_after = exc.retry_after_s if isinstance(exc, TransientError) else None
    httpx = sys.modules.get("httpx")
    http = _find_http(exc, httpx) if httpx is not None else None
    web = _http_facts(http, httpx, now_epoch) if httpx is not None and http else _HttpFacts()
    timeout_kind = "step" if isinstance(exc, StepTimeoutError) else web.timeout_kind
    return FailureFacts(
        error_type=qualified_mro(exc)[0],
        error_mro=qualified_mro(exc) + (qualified_mro(http) if http and http is not exc else ()),
        message=str(exc)[:_BODY_LIMIT],
        http_status=web.status,
        http_method=web.method,
        request_sent=web.request_sent,
        timeout_kind=timeout_kind,
        body=web.body,
        retry_after_s=retry_after or web.retry_after,
        step_idempotent=step_idempotent,
        declared_class=declared,
        rule_hint=exc.rule if isinstance(exc, PolicyViolation) else None,
    )


def interrupted_facts(*, step_idempotent: bool) -> FailureFacts:
    return FailureFacts(
        error_type="surefoot.Interrupted",
        error_mro=("surefoot.Interrupted",),
        message="the worker stopped during the attempt",
        step_idempotent=step_idempotent,
        interrupted=True,
    )


def error_json(exc: BaseException, facts: FailureFacts | None = None) -> str:
    """The stored form of an exception: type, message, traceback and HTTP facts."""
    scrub = redaction.active().text  # stored errors are shown to operators: no secrets
    payload: dict[str, Any] = {
        "type": qualified_mro(exc)[0],
        "message": scrub(str(exc)[:_BODY_LIMIT]),
        "traceback": scrub("".join(traceback.format_exception(exc))[-8000:]),
    }
    if facts is not None and facts.http_status is not None:
        payload["http_status"] = facts.http_status
        payload["http_method"] = facts.http_method
        if facts.body:
            payload["body"] = scrub(facts.body[:_STORED_BODY_LIMIT])
    if isinstance(exc, DataError) and exc.errors:
        payload["errors"] = exc.errors
    if isinstance(exc, PolicyViolation):
        payload["rule"] = exc.rule
    return canonical(payload)
