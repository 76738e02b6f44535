"""What every API route shares: its declared permission, the caller, paging."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Query, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from surefoot.domain.access import Permission, Principal
from surefoot.engine.app import App
from surefoot.web.api.fields import ErrorBody
from surefoot.web.auth.deps import api_user, surefoot_app

PERMISSION_EXTENSION = "x-permission"
MAX_LIMIT = 500


_ERRORS: dict[int, str] = {
    400: "The request is not valid (a bad option or argument).",
    401: "No valid credentials: send Authorization: Bearer <token>.",
    403: "The caller's role lacks the permission (or a session call lacks its CSRF token).",
    404: "The run, item, user or token does not exist.",
    409: "The current state does not allow this action.",
    422: "The request does not match the document, or the action is not valid here.",
    429: "The queue is full; retry after the Retry-After header's seconds.",
    503: "The store is unavailable; retry shortly.",
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text} for status, text in _ERRORS.items()
}


def requires(
    permission: Permission, responses: dict[int | str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Keyword arguments for a route decorator: the permission check, the same permission
    declared in the OpenAPI document (``x-permission``) for clients and for the role x
    endpoint test, and the typed error answers."""
    return {
        "dependencies": [Depends(api_user(permission))],
        "openapi_extra": {PERMISSION_EXTENSION: permission.value},
        "responses": {**ERROR_RESPONSES, **(responses or {})},
    }


def _query_names(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


class ApiRoute(APIRoute):
    """An API route that refuses query parameters it does not declare (422), so a
    mistyped filter (``?stauts=failed``) is an error, not a listing of everything."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        known = _query_names(self.dependant)

        async def strict(request: Request) -> Response:
            unknown = sorted(set(request.query_params) - known)
            if unknown:
                raise RequestValidationError(
                    [
                        {
                            "loc": ("query", name),
                            "msg": "unknown query parameter",
                            "type": "extra_forbidden",
                        }
                        for name in unknown
                    ]
                )
            return await handler(request)

        return strict


def _principal(request: Request) -> Principal:
    principal: Principal = request.state.principal
    return principal


Caller = Annotated[Principal, Depends(_principal)]
Surefoot = Annotated[App, Depends(surefoot_app)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size.")]
Offset = Annotated[int, Query(ge=0, le=2**31, description="Items to skip.")]


def actor_name(principal: Principal) -> str:
    """The name the audit log records for what this caller does."""
    return principal.name
