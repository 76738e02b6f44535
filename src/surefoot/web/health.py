"""Operational endpoints, outside the API's auth: ``/healthz``, ``/readyz``, ``/metrics``.

Load balancers and Prometheus call them without credentials, so they say nothing a
scraper should not know: liveness, the readiness checks by name, and the metrics (names of
workflows, queues and failure classes; never inputs, outputs or errors). Keep the server on
a private interface, or put these paths behind the proxy's own access rules.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from surefoot.observability import metrics
from surefoot.ops import health

router = APIRouter(include_in_schema=False)


@router.get("/healthz")
def healthz() -> JSONResponse:
    """The process answers (nothing else: a restart would not fix the rest)."""
    return JSONResponse(health.liveness())


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Store reachable, schema current, workers heartbeating: 200 when all hold, else 503."""
    report = await run_in_threadpool(health.readiness, request.app.state.surefoot)
    return JSONResponse(report.to_json(), status_code=200 if report.ready else 503)


@router.get("/metrics")
async def prometheus(request: Request) -> Response:
    """Prometheus exposition: this process's counters and the store's gauges."""
    body, content_type = await run_in_threadpool(metrics.exposition, request.app.state.surefoot)
    return Response(body, media_type=content_type)
