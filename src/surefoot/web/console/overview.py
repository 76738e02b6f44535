"""The overview: the numbers that matter now."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from surefoot.domain.breaker import BreakerPolicy
from surefoot.web.console import states, summary
from surefoot.web.console.pages import User, now, render, surefoot_app

router = APIRouter()


@router.get("/", response_class=HTMLResponse)
def overview_page(request: Request, principal: User) -> Response:
    app = surefoot_app(request)
    numbers = summary.overview(app, now())
    policy = BreakerPolicy(app.settings.breaker_failure_threshold, app.settings.breaker_cooldown_s)
    return render(
        request,
        principal,
        "overview.html",
        title="Overview",
        o=numbers,
        labels=states.ATTENTION_LABELS,
        breakers=[(b, b.reopens_at(policy)) for b in numbers.open_breakers],
        total_runs=sum(numbers.by_status.values()),
    )
