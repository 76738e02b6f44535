"""The operator console: server-rendered HTML over the operations in :mod:`surefoot.ops`.

Every page needs a signed-in user (``console_user``); every form carries the session's
CSRF token and every POST checks it and the permission again (a hidden button is not
access control). Templates escape everything; the CSS is ours, no front-end build.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI

from surefoot.errors import CsrfError
from surefoot.web.console import audit, dead_letters, login, overview, queues, reviews, runs
from surefoot.web.console.pages import stale_form

STATIC_DIR = Path(__file__).parent / "static"

router = APIRouter(include_in_schema=False)
for module in (login, overview, runs, dead_letters, reviews, queues, audit):
    router.include_router(module.router)


def install(api: FastAPI) -> None:
    """Console-specific error pages: a stale form is a page a person can act on, not JSON."""
    api.add_exception_handler(CsrfError, stale_form)


__all__ = ["STATIC_DIR", "install", "router"]
