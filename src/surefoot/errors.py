"""Every exception Surefoot raises, in one tree (docs/reference/errors.md shows the same).

* SurefootError
  + ConfigError
    - StoreUrlError
    - NoCredentialsError           serve with auth on, and nobody could sign in
    - AlertRulesError              the alert rules file cannot be read or is invalid
  + StoreError                     wraps driver errors; the original is ``__cause__``
    - StoreUnavailableError        the store cannot be opened or reached
    - SchemaTooNewError            written by a newer Surefoot; refuse rather than damage it
    - SchemaOutdatedError          older than this code and automatic migration is off
    - LeaseLostError               another worker took the run over; nothing was written
  + WorkflowError
    - WorkflowNotFoundError        no workflow registered under that name
    - StepOutsideWorkflowError     a step was called with no workflow running
    - NonDeterminismError          replay met a different step than history recorded
    - StepFailedError              a step's failure delivered to workflow code (route ``raise``)
    - WaitTimeoutError             ``ctx.wait_for`` reached its timeout
    - StepTimeoutError             a step ran past its ``timeout_s``
    - DefinitionError              a decorator got an option it does not know
  + SerializationError             inputs, results or payloads that are not JSON
  + RunError
    - RunNotFoundError
    - IdempotencyKeyConflictError  same key, different workflow or inputs
    - RunFailedError               ``RunHandle.result`` of a failed run
    - RunCancelledError            ``RunHandle.result`` of a cancelled run
    - ResultTimeoutError           ``RunHandle.result`` waited longer than its timeout
    - RunAlreadyFinishedError      an event or action for a run that has ended
    - BackPressureError            the queue is full; retry after ``retry_after_s``
    - InvalidTransitionError       an operator action that the run's status does not allow
  + ReviewError
    - ReviewItemNotFoundError
    - InvalidDecisionError         an action the item does not allow, or a missing value
  + AuditError
  + AccessError                    users, tokens, sessions and roles
    - AuthenticationError          unknown user, wrong password, bad or expired credential
      . SignInRequiredError        a console page needs a signed-in user (redirect to /login)
    - PermissionDeniedError        the principal's role lacks the permission
    - UserNotFoundError · UserExistsError · TokenNotFoundError
    - CsrfError                    a form or cookie-authenticated call without its CSRF token
* Failure signals a step raises to pick its class (see ``domain.failures``):
  TransientError, PermanentError, DataError, PolicyViolation, AmbiguousError
  (all SurefootError subclasses, so ``except SurefootError`` sees them).
* Suspended(BaseException)         control flow: the run waits durably
  + Parked                         the run waits for a person (review item)
* Released(BaseException)          control flow: the worker hands the run back (drain)
* Cancelled(BaseException)         control flow: an operator cancelled the run
* LeaseRevoked(BaseException)      control flow: another worker owns the run now
* StoreInterrupted(BaseException)  control flow: the store stayed unreachable past its retries;
                                   the execution stops where it is and the run is resumed
                                   later (its lease expires), never failed for it

Control-flow signals derive from BaseException so that workflow code's
``except Exception`` cannot swallow them. Every exception here pickles and
round-trips through ``__reduce__`` with its arguments.
"""

from __future__ import annotations

from typing import Any


class SurefootError(Exception):
    """Unexpected Surefoot error."""

    def __init__(self, message: str | None = None) -> None:
        self.message = message or (self.__doc__ or type(self).__name__).strip()
        super().__init__(self.message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message,))


class ConfigError(SurefootError):
    """The configuration is invalid."""


class AlertRulesError(ConfigError):
    """The alert rules file cannot be read or is invalid."""


class StoreUrlError(ConfigError):
    """The store URL is not one Surefoot can open."""


class NoCredentialsError(ConfigError):
    """Authentication is on and no enabled user or usable API token exists."""


class StoreError(SurefootError):
    """The store failed."""


class StoreUnavailableError(StoreError):
    """The store cannot be opened or reached."""


class SchemaTooNewError(StoreError):
    """The store was written by a newer version of Surefoot."""


class SchemaOutdatedError(StoreError):
    """The store's schema is older than this code; run `surefoot db upgrade`."""


class LeaseLostError(StoreError):
    """Another worker owns this run now; the write was refused."""


class WorkflowError(SurefootError):
    """A workflow or step misbehaved."""


class WorkflowNotFoundError(WorkflowError):
    """No workflow is registered under that name."""


class StepOutsideWorkflowError(WorkflowError):
    """A step was called while no workflow was running."""


class NonDeterminismError(WorkflowError):
    """Replay met a different step than the run's history recorded."""


class DefinitionError(WorkflowError):
    """A workflow or step was declared with an invalid option."""


class WaitTimeoutError(WorkflowError):
    """A durable wait reached its timeout before the event arrived."""


class StepTimeoutError(WorkflowError):
    """A step ran longer than its timeout."""


class StepFailedError(WorkflowError):
    """A step failed and its route delivers the failure to the workflow code."""

    def __init__(
        self,
        message: str | None = None,
        *,
        step: str = "",
        failure_class: str = "",
        error_type: str = "",
    ) -> None:
        super().__init__(message)
        self.step = step
        self.failure_class = failure_class
        self.error_type = error_type

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild_step_failed,
            (self.message, self.step, self.failure_class, self.error_type),
        )


def _rebuild_step_failed(
    message: str, step: str, failure_class: str, error_type: str
) -> StepFailedError:
    return StepFailedError(message, step=step, failure_class=failure_class, error_type=error_type)


class SerializationError(SurefootError):
    """A value could not be stored as JSON."""


class RunError(SurefootError):
    """An operation on a run was refused."""


class RunNotFoundError(RunError):
    """No run has that id or idempotency key."""


class IdempotencyKeyConflictError(RunError):
    """The idempotency key belongs to a run of another workflow or with other inputs."""


class RunFailedError(RunError):
    """The run failed."""


class RunCancelledError(RunError):
    """The run was cancelled."""


class ResultTimeoutError(RunError):
    """The run did not finish within the timeout."""


class RunAlreadyFinishedError(RunError):
    """The run has already finished."""


class BackPressureError(RunError):
    """The queue holds as many waiting runs as it is allowed to; nothing was stored.
    Try again after ``retry_after_s`` (ingress answers 429/503 with Retry-After)."""

    def __init__(
        self, message: str | None = None, *, queue: str = "", retry_after_s: float = 1.0
    ) -> None:
        super().__init__(message)
        self.queue = queue
        self.retry_after_s = retry_after_s

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_back_pressure, (self.message, self.queue, self.retry_after_s))


def _rebuild_back_pressure(message: str, queue: str, retry_after_s: float) -> BackPressureError:
    return BackPressureError(message, queue=queue, retry_after_s=retry_after_s)


class InvalidTransitionError(RunError):
    """The run's status does not allow this action."""


class ReviewError(SurefootError):
    """A review operation was refused."""


class ReviewItemNotFoundError(ReviewError):
    """No review item has that id."""


class InvalidDecisionError(ReviewError):
    """The decision is not one this review item allows."""


class AuditError(SurefootError):
    """The audit log could not be read or written."""


class AccessError(SurefootError):
    """Access to Surefoot was refused."""


class AuthenticationError(AccessError):
    """Sign-in failed: unknown user, wrong password, or a bad or expired credential."""


class SignInRequiredError(AuthenticationError):
    """This page needs a signed-in user."""

    def __init__(self, message: str | None = None, *, next_path: str = "/") -> None:
        super().__init__(message)
        self.next_path = next_path

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_sign_in_required, (self.message, self.next_path))


def _rebuild_sign_in_required(message: str, next_path: str) -> SignInRequiredError:
    return SignInRequiredError(message, next_path=next_path)


class PermissionDeniedError(AccessError):
    """Your role does not allow this action."""


class UserNotFoundError(AccessError):
    """No user has that name."""


class UserExistsError(AccessError):
    """A user with that name already exists."""


class TokenNotFoundError(AccessError):
    """No API token has that id."""


class CsrfError(AccessError):
    """The form or request did not carry this session's CSRF token."""


# -- failure signals: raise one of these inside a step to choose its class ---------


class TransientError(SurefootError):
    """A failure likely to pass if the step is tried again."""

    def __init__(self, message: str | None = None, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_transient, (type(self), self.message, self.retry_after_s))


def _rebuild_transient(
    cls: type[TransientError], message: str, retry_after_s: float | None
) -> TransientError:
    return cls(message, retry_after_s=retry_after_s)


class PermanentError(SurefootError):
    """A failure that will never succeed as is."""


class DataError(SurefootError):
    """The input record is invalid or conflicts; a person must correct it."""

    def __init__(self, message: str | None = None, *, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.errors = list(errors or [])

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_data, (type(self), self.message, self.errors))


def _rebuild_data(cls: type[DataError], message: str, errors: list[str]) -> DataError:
    return cls(message, errors=errors)


class PolicyViolation(SurefootError):  # noqa: N818 - the name DESIGN.md gives it
    """A rule or limit blocks this step until a person approves."""

    def __init__(self, message: str | None = None, *, rule: str = "policy") -> None:
        super().__init__(message)
        self.rule = rule

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_policy, (type(self), self.message, self.rule))


def _rebuild_policy(cls: type[PolicyViolation], message: str, rule: str) -> PolicyViolation:
    return cls(message, rule=rule)


class AmbiguousError(SurefootError):
    """The step's effect may or may not have happened."""


# -- control flow -----------------------------------------------------------------


class Suspended(BaseException):
    """The run waits durably; the worker unwinds it and holds nothing meanwhile."""


class Parked(Suspended):
    """The run waits for a person to decide a review item."""


class Released(BaseException):
    """The worker is draining and hands the run back at a step boundary."""


class Cancelled(BaseException):
    """An operator cancelled the run."""


class LeaseRevoked(BaseException):
    """Another worker took the run over; this execution must stop writing."""


class StoreInterrupted(BaseException):
    """The store failed past its own retries during an execution. The run is not failed
    for it: the execution stops, its lease expires, and the run resumes from its history."""
