"""The REST API under ``/api/v1``: an adapter over :mod:`surefoot.ops`, no rules inside.

Every operation declares the permission it needs as the OpenAPI extension
``x-permission`` (the role policy is :data:`surefoot.domain.access.ROLE_PERMISSIONS`).
"""

from __future__ import annotations

from fastapi import APIRouter

from surefoot.web.api import access, alerts, audit, dead_letters, queues, reviews, runs

router = APIRouter(prefix="/api/v1")
for module in (runs, dead_letters, reviews, queues, audit, alerts, access):
    router.include_router(module.router)

__all__ = ["router"]
