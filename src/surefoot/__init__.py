"""Surefoot: durable business automation. Every step committed, every failure classified."""

from typing import TYPE_CHECKING, Any

from surefoot.config import Settings
from surefoot.domain.failures import FailureClass, Rule, on_body, on_exception, on_status
from surefoot.domain.reconcile import CannotTell, Found, NotFound
from surefoot.domain.retry import Retry
from surefoot.domain.routes import Route
from surefoot.domain.status import AttemptOutcome, RunStatus
from surefoot.engine.app import App
from surefoot.engine.context import (
    Decision,
    StepContext,
    WorkflowContext,
    current_step,
    require_approval,
)
from surefoot.engine.handle import RunHandle
from surefoot.engine.starts import Start
from surefoot.engine.worker import Worker
from surefoot.errors import (
    AmbiguousError,
    ConfigError,
    DataError,
    IdempotencyKeyConflictError,
    NonDeterminismError,
    PermanentError,
    PolicyViolation,
    ResultTimeoutError,
    RunCancelledError,
    RunFailedError,
    SerializationError,
    StepFailedError,
    StepOutsideWorkflowError,
    StoreError,
    SurefootError,
    TransientError,
    WaitTimeoutError,
    WorkflowNotFoundError,
)

if TYPE_CHECKING:
    from surefoot.integrations.http import async_http_client, http_client

__version__ = "0.1.0"

__all__ = [
    "AmbiguousError",
    "App",
    "AttemptOutcome",
    "CannotTell",
    "ConfigError",
    "DataError",
    "Decision",
    "FailureClass",
    "Found",
    "IdempotencyKeyConflictError",
    "NonDeterminismError",
    "NotFound",
    "PermanentError",
    "PolicyViolation",
    "ResultTimeoutError",
    "Retry",
    "Route",
    "Rule",
    "RunCancelledError",
    "RunFailedError",
    "RunHandle",
    "RunStatus",
    "SerializationError",
    "Settings",
    "Start",
    "StepContext",
    "StepFailedError",
    "StepOutsideWorkflowError",
    "StoreError",
    "SurefootError",
    "TransientError",
    "WaitTimeoutError",
    "Worker",
    "WorkflowContext",
    "WorkflowNotFoundError",
    "__version__",
    "async_http_client",
    "current_step",
    "http_client",
    "on_body",
    "on_exception",
    "on_status",
    "require_approval",
]


def __getattr__(name: str) -> Any:
    """The HTTP client helpers, imported on first use: importing httpx takes a tenth of a
    second, which a worker whose steps make no HTTP calls need not spend at start."""
    if name in ("http_client", "async_http_client"):
        from surefoot.integrations import http  # noqa: PLC0415 - deferred on purpose

        return getattr(http, name)
    raise AttributeError(f"module 'surefoot' has no attribute {name!r}")
