"""Errors as typed JSON: ``{"error": {"code": "run_not_found", "message": "..."}}``.

One table maps each class of :mod:`surefoot.errors` to an HTTP status and a stable
snake_case code; the most specific class wins. Store errors and anything unexpected
answer with a generic message and a ``reference`` id; the details (SQL, URLs, stack)
go only to the server log.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Match

from surefoot import errors as e
from surefoot.web.auth.deps import NO_AUTH_WARNING, WARNING_HEADER

log = logging.getLogger("surefoot.web")

# class -> (status, code). Order does not matter: the nearest class in the MRO wins.
ERROR_TABLE: dict[type[BaseException], tuple[int, str]] = {
    e.SurefootError: (500, "internal_error"),
    e.ConfigError: (400, "invalid_request"),
    e.StoreError: (503, "store_unavailable"),
    e.WorkflowError: (422, "invalid_workflow_call"),
    e.WorkflowNotFoundError: (404, "workflow_not_found"),
    e.SerializationError: (422, "invalid_input"),
    e.RunError: (409, "run_conflict"),
    e.RunNotFoundError: (404, "run_not_found"),
    e.IdempotencyKeyConflictError: (409, "idempotency_key_conflict"),
    e.RunAlreadyFinishedError: (409, "run_already_finished"),
    e.InvalidTransitionError: (409, "invalid_transition"),
    e.BackPressureError: (429, "back_pressure"),
    e.ReviewError: (409, "review_conflict"),
    e.ReviewItemNotFoundError: (404, "review_item_not_found"),
    e.InvalidDecisionError: (422, "invalid_decision"),
    e.AuditError: (400, "invalid_audit_request"),
    e.AccessError: (403, "access_denied"),
    e.AuthenticationError: (401, "authentication_required"),
    e.PermissionDeniedError: (403, "permission_denied"),
    e.CsrfError: (403, "csrf_failed"),
    e.UserNotFoundError: (404, "user_not_found"),
    e.UserExistsError: (409, "user_exists"),
    e.TokenNotFoundError: (404, "token_not_found"),
}

# Classes whose message may carry driver text, SQL or a URL: never shown.
_OPAQUE = (e.StoreError,)

_HTTP_CODES = {
    400: "bad_request",
    401: "authentication_required",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def status_and_code(exc: BaseException) -> tuple[int, str]:
    for cls in type(exc).__mro__:
        if cls in ERROR_TABLE:
            return ERROR_TABLE[cls]
    return 500, "internal_error"


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def _reference() -> str:
    return uuid.uuid4().hex[:16]


async def surefoot_error(request: Request, exc: Exception) -> Response:
    """A typed error as its JSON answer (the sign-in redirect for console pages)."""
    if isinstance(exc, e.SignInRequiredError) and not request.url.path.startswith("/api/"):
        return RedirectResponse(f"/login?next={quote(exc.next_path, safe='/')}", status_code=303)
    status, code = status_and_code(exc)
    headers: dict[str, str] = {}
    extra: dict[str, Any] = {}
    if status >= 500:
        reference = _reference()
        log.error(
            "request %s %s failed (reference %s)",
            request.method,
            request.url.path,
            reference,
            exc_info=exc,
        )
        message = (
            "the store is unavailable; try again shortly"
            if isinstance(exc, _OPAQUE)
            else "an internal error occurred"
        )
        extra["reference"] = reference
    else:
        message = str(exc)
    if isinstance(exc, e.BackPressureError):
        retry_after = max(1, round(exc.retry_after_s))
        headers["Retry-After"] = str(retry_after)
        extra["retry_after_s"] = exc.retry_after_s
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(error_body(code, message, **extra), status_code=status, headers=headers)


async def _validation_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    fields = [
        {
            "location": [str(part) for part in item.get("loc", ())],
            "message": str(item.get("msg", "")),
            "type": str(item.get("type", "")),
        }
        for item in exc.errors()
    ]
    return JSONResponse(
        error_body("validation_error", "the request is not valid", fields=fields),
        status_code=422,
    )


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")
_PARAM = re.compile(r"\{[^}/]+\}")


def _documented(app: FastAPI) -> list[tuple[re.Pattern[str], int, list[str]]]:
    """Each documented path as (pattern, literal segments, methods), built once."""
    cached: list[tuple[re.Pattern[str], int, list[str]]] | None = getattr(
        app.state, "surefoot_allow", None
    )
    if cached is None:
        cached = []
        for template, item in app.openapi().get("paths", {}).items():
            methods = sorted(m.upper() for m in item if m.upper() in _METHODS)
            if "GET" in methods:
                methods = sorted({*methods, "HEAD"})
            pattern = re.compile(
                "^"
                + _PARAM.sub("[^/]+", re.escape(template).replace(r"\{", "{").replace(r"\}", "}"))
                + "$"
            )
            literals = sum(1 for part in template.split("/") if part and "{" not in part)
            cached.append((pattern, literals, methods))
        app.state.surefoot_allow = cached
    return cached


def _allowed_methods(request: Request) -> str:
    """The methods of the most specific documented path that matches (the router only
    names the first route's, though a path may have several); for pages outside the
    document, every method some route serves here."""
    path = request.url.path
    documented = [
        (lits, methods) for rx, lits, methods in _documented(request.app) if rx.match(path)
    ]
    if documented:
        return ", ".join(max(documented)[1])
    allowed = []
    for method in _METHODS:
        probe = {**request.scope, "method": method}
        if any(route.matches(probe)[0] is Match.FULL for route in request.app.routes):
            allowed.append(method)
    return ", ".join(allowed)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    return JSONResponse(error_body(code, message), status_code=exc.status_code, headers=headers)


async def _unexpected(request: Request, exc: Exception) -> Response:
    reference = _reference()
    log.error(
        "request %s %s failed (reference %s)",
        request.method,
        request.url.path,
        reference,
        exc_info=exc,
    )
    # This answer is made outside the app's middleware, so it adds the warning itself.
    headers = {WARNING_HEADER: NO_AUTH_WARNING} if _auth_off(request) else None
    return JSONResponse(
        error_body("internal_error", "an internal error occurred", reference=reference),
        status_code=500,
        headers=headers,
    )


def _auth_off(request: Request) -> bool:
    settings = getattr(request.app.state, "web_settings", None)
    return bool(getattr(settings, "insecure_no_auth", False))


def install(api: FastAPI) -> None:
    """Register the handlers on an app."""
    api.add_exception_handler(e.SurefootError, surefoot_error)
    api.add_exception_handler(RequestValidationError, _validation_error)
    api.add_exception_handler(StarletteHTTPException, _http_error)
    api.add_exception_handler(Exception, _unexpected)
