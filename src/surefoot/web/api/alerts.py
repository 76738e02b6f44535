"""Alerts: the recorded firings and resolutions, and the rules firing now."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel

from surefoot.domain.access import Permission as Perm
from surefoot.domain.stats import AlertEvent
from surefoot.ops import alerts
from surefoot.web.api.common import ApiRoute, Limit, Surefoot, requires

router = APIRouter(prefix="/alerts", tags=["alerts"], route_class=ApiRoute)


class Alert(BaseModel):
    rule: str
    state: str
    severity: str
    summary: str
    at: datetime
    value: float | None
    threshold: float | None

    @classmethod
    def of(cls, event: AlertEvent) -> Alert:
        return cls(
            rule=event.rule,
            state=event.state.value,
            severity=event.severity,
            summary=event.summary,
            at=event.at,
            value=event.value,
            threshold=event.threshold,
        )


@router.get("", response_model=list[Alert], **requires(Perm.READ))
def list_alerts(app: Surefoot, limit: Limit = 50, rule: str | None = None) -> list[Alert]:
    """Firings and resolutions, newest first; ``rule`` narrows to one rule."""
    return [Alert.of(e) for e in alerts.list_alerts(app, rule=rule, limit=limit)]


@router.get("/firing", response_model=list[Alert], **requires(Perm.READ))
def firing(app: Surefoot) -> list[Alert]:
    """The rules firing now, each with the event that started it."""
    return [Alert.of(e) for e in alerts.firing_alerts(app)]
