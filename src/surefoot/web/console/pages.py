"""Rendering shared by every console page: the template environment, the page frame
(who is signed in, the no-auth banner, the CSRF token), paging and readable problems."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode, urlsplit

import jinja2
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from surefoot.domain.access import Permission, Principal
from surefoot.engine.app import App
from surefoot.errors import (
    InvalidDecisionError,
    InvalidTransitionError,
    ReviewItemNotFoundError,
    RunNotFoundError,
    SurefootError,
)
from surefoot.web import errors
from surefoot.web.auth.deps import console_user, csrf_token, current_principal, verify_csrf
from surefoot.web.console import states

TEMPLATE_DIR = Path(__file__).parent / "templates"
PAGE_SIZES = (25, 50, 100, 200)

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
    autoescape=True,  # every value is escaped unless a template says otherwise (none does)
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["short_error"] = states.short_error
_env.filters["pretty_json"] = states.pretty_json
_env.filters["utc"] = states.utc
_env.filters["brief"] = states.brief
_env.filters["compact"] = states.compact
_env.filters["first_line"] = states.first_line
_env.filters["tracebacks"] = states.tracebacks
templates = Jinja2Templates(env=_env)

# Fixed messages shown after a redirect (?notice=KEY): never text taken from the URL.
NOTICES = {
    "redriven": "Redriven: the run resumes from the step that failed.",
    "discarded": "Discarded: the dead-letter entry is closed; the run will not run again.",
    "cancelled": "Cancel requested: the run stops at its next step boundary.",
    "forked": "Forked: a new run executes from the chosen step.",
    "event": "Event committed: the run receives it at its next wait.",
    "decided": "Decision recorded: the run resumes.",
    "paused": "Queue paused: no new runs are claimed from it.",
    "resumed": "Queue resumed.",
    "breaker": "Breaker closed: waiting runs try again at their next wake-up.",
}


def surefoot_app(request: Request) -> App:
    app: App = request.app.state.surefoot
    return app


def now() -> datetime:
    return datetime.now(UTC)


def render(
    request: Request,
    principal: Principal | None,
    template: str,
    *,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    settings = request.app.state.web_settings
    notice = NOTICES.get(request.query_params.get("notice", ""))
    at = now()
    frame = {
        "principal": principal,
        "P": Permission,
        "insecure": bool(getattr(settings, "insecure_no_auth", False)),
        "csrf": csrf_token(request),
        "notice": notice,
        "now": at,
        "ago": lambda when: states.ago(when, at),
        "path": request.url.path,
        "app_name": surefoot_app(request).name,
    }
    response: HTMLResponse = templates.TemplateResponse(
        request, template, {**frame, **context}, status_code=status_code
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def problem(request: Request, principal: Principal, exc: SurefootError) -> HTMLResponse:
    """An error from an operation, as a page a person can read (never a stack trace)."""
    status = 400
    if isinstance(exc, RunNotFoundError | ReviewItemNotFoundError):
        status = 404
    elif isinstance(exc, InvalidTransitionError | InvalidDecisionError):
        status = 409
    return render(
        request,
        principal,
        "problem.html",
        status_code=status,
        title="That did not work",
        kind=type(exc).__name__,
        message=str(exc),
        back=_same_site_path(request),
    )


def _same_site_path(request: Request) -> str:
    """The referring page's path when it is a page of this server, else empty."""
    referer = urlsplit(request.headers.get("referer", ""))
    if referer.netloc != request.url.netloc or not referer.path.startswith("/"):
        return ""
    return referer.path + (f"?{referer.query}" if referer.query else "")


def forbidden(request: Request, principal: Principal, permission: Permission) -> HTMLResponse:
    return render(
        request,
        principal,
        "problem.html",
        status_code=403,
        title="Not allowed",
        kind="PermissionDeniedError",
        message=(
            f"Your role ({principal.role.value}) does not have the {permission.value!r} "
            "permission. Ask an admin if you need it."
        ),
        back="",
    )


async def stale_form(request: Request, exc: Exception) -> Response:
    """A console form whose CSRF token no longer matches (the session expired, or the
    server restarted): nothing was done. Back to sign-in when nobody is signed in, else a
    readable 403 page. API calls keep their JSON answer."""
    if request.url.path.startswith("/api/"):
        return await errors.surefoot_error(request, exc)
    principal = await run_in_threadpool(current_principal, request)
    back = _same_site_path(request)
    if principal is None:
        return RedirectResponse(f"/login?next={quote(back or '/', safe='/')}", status_code=303)
    return await run_in_threadpool(
        render,
        request,
        principal,
        "problem.html",
        status_code=403,
        title="This form has expired",
        kind="CsrfError",
        message="Nothing was changed. Reload the page and try again.",
        back=back,
    )


def see_other(path: str, notice: str | None = None) -> RedirectResponse:
    if notice:
        path += ("&" if "?" in path else "?") + urlencode({"notice": notice})
    return RedirectResponse(path, status_code=303)


@dataclass(frozen=True)
class Paging:
    limit: int
    offset: int
    shown: int
    total: int | None
    base: str  # the query string without limit/offset

    @property
    def first(self) -> int:
        return self.offset + 1 if self.shown else 0

    @property
    def last(self) -> int:
        return self.offset + self.shown

    @property
    def has_next(self) -> bool:
        if self.total is not None:
            return self.offset + self.shown < self.total
        return self.shown >= self.limit

    def link(self, offset: int) -> str:
        query = f"{self.base}&" if self.base else ""
        return f"?{query}limit={self.limit}&offset={max(0, offset)}"

    @property
    def next_link(self) -> str:
        return self.link(self.offset + self.limit)

    @property
    def prev_link(self) -> str:
        return self.link(self.offset - self.limit)


def page_args(request: Request, default: int = 50) -> tuple[int, int]:
    """limit and offset from the query, clamped to sane values."""
    try:
        limit = int(request.query_params.get("limit", default))
        offset = int(request.query_params.get("offset", 0))
    except ValueError:
        return default, 0
    return min(max(limit, 1), 500), max(offset, 0)


def paging(request: Request, limit: int, offset: int, shown: int, total: int | None) -> Paging:
    kept = [
        (key, value)
        for key, value in request.query_params.multi_items()
        if key not in ("limit", "offset", "notice") and value != ""
    ]
    return Paging(limit, offset, shown, total, urlencode(kept))


def field(request: Request, name: str) -> str | None:
    """A query parameter, stripped; None when absent or empty."""
    value = request.query_params.get(name, "").strip()
    return value or None


User = Annotated[Principal, Depends(console_user)]
CHECK_CSRF = [Depends(verify_csrf)]
