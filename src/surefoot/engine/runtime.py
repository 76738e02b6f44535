"""What an execution needs from its App, gathered in one object."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from surefoot.config import Settings
from surefoot.domain.failures import FailureClass, Rule
from surefoot.domain.queues import RateLimit
from surefoot.domain.routes import Route
from surefoot.engine.crash import CrashPoints
from surefoot.engine.definitions import StepDef, WorkflowDef
from surefoot.store.base import Store

log = logging.getLogger("surefoot")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    store: Store
    settings: Settings
    workflows: dict[str, WorkflowDef]
    steps: dict[str, StepDef]
    rate_limits: dict[str, RateLimit] = field(default_factory=dict)
    rules: tuple[Rule, ...] = ()
    routes: dict[FailureClass, Route] = field(default_factory=dict)
    clock: Callable[[], datetime] = utc_now
    crash: CrashPoints = field(default_factory=lambda: CrashPoints(None))
    on_finished: Callable[[str], None] = lambda _run_id: None
    # Step name -> whether its last attempt in this process returned within quick_step_s.
    quick_steps: dict[str, bool] = field(default_factory=dict)
