"""The public surface is pinned: a name added or removed by accident fails here, and every
exception Surefoot raises survives pickling with its message and attributes."""

from __future__ import annotations

import importlib
import inspect
import pickle
from typing import Any

import pytest

import surefoot as sf
from surefoot import errors

EXPECTED_ALL = [
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


def test_all_is_sorted():
    assert sf.__all__ == sorted(sf.__all__)


def test_all_is_exactly_the_pinned_public_surface():
    assert sf.__all__ == EXPECTED_ALL


@pytest.mark.parametrize("name", EXPECTED_ALL)
def test_every_public_name_is_importable_from_the_package(name):
    module = importlib.import_module("surefoot")
    assert getattr(module, name) is not None
    namespace: dict[str, Any] = {}
    exec(f"from surefoot import {name}", namespace)
    assert namespace[name] is getattr(sf, name)


def test_star_import_gives_exactly_the_public_names():
    namespace: dict[str, Any] = {}
    exec("from surefoot import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(EXPECTED_ALL)


def test_version_is_a_string():
    assert isinstance(sf.__version__, str)
    assert sf.__version__


def _exception_classes() -> list[type[BaseException]]:
    return [
        cls
        for _name, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, BaseException) and cls.__module__ == errors.__name__
    ]


ERRORS = _exception_classes()
SUREFOOT_ERRORS = [cls for cls in ERRORS if issubclass(cls, errors.SurefootError)]
CONTROL_FLOW = [cls for cls in ERRORS if not issubclass(cls, Exception)]


def test_the_error_module_defines_the_documented_tree():
    names = {cls.__name__ for cls in ERRORS}
    for documented in (
        "SurefootError",
        "ConfigError",
        "StoreUrlError",
        "StoreError",
        "StoreUnavailableError",
        "SchemaTooNewError",
        "SchemaOutdatedError",
        "LeaseLostError",
        "WorkflowError",
        "WorkflowNotFoundError",
        "StepOutsideWorkflowError",
        "NonDeterminismError",
        "StepFailedError",
        "WaitTimeoutError",
        "StepTimeoutError",
        "DefinitionError",
        "SerializationError",
        "RunError",
        "RunNotFoundError",
        "IdempotencyKeyConflictError",
        "RunFailedError",
        "RunCancelledError",
        "ResultTimeoutError",
        "RunAlreadyFinishedError",
        "InvalidTransitionError",
        "ReviewError",
        "ReviewItemNotFoundError",
        "InvalidDecisionError",
        "AuditError",
        "TransientError",
        "PermanentError",
        "DataError",
        "PolicyViolation",
        "AmbiguousError",
        "Suspended",
        "Parked",
        "Released",
        "Cancelled",
        "LeaseRevoked",
        "StoreInterrupted",
    ):
        assert documented in names


def test_every_error_name_ends_in_error_except_signals_and_control_flow():
    allowed = {
        "PolicyViolation",
        "Suspended",
        "Parked",
        "Released",
        "Cancelled",
        "LeaseRevoked",
        "StoreInterrupted",
    }
    for cls in ERRORS:
        assert cls.__name__.endswith("Error") or cls.__name__ in allowed, cls


@pytest.mark.parametrize("cls", SUREFOOT_ERRORS, ids=lambda c: c.__name__)
def test_every_surefoot_error_pickles_with_its_type_and_message(cls):
    original = cls("the message for operators")
    restored = pickle.loads(pickle.dumps(original))
    assert type(restored) is cls
    assert restored.message == "the message for operators"
    assert str(restored) == "the message for operators"
    assert restored.args == original.args


@pytest.mark.parametrize("cls", SUREFOOT_ERRORS, ids=lambda c: c.__name__)
def test_every_surefoot_error_defaults_its_message_to_its_docstring(cls):
    error = cls()
    assert error.message == (cls.__doc__ or cls.__name__).strip()
    assert pickle.loads(pickle.dumps(error)).message == error.message


@pytest.mark.parametrize("cls", CONTROL_FLOW, ids=lambda c: c.__name__)
def test_control_flow_signals_cannot_be_caught_by_except_exception_and_pickle(cls):
    assert not issubclass(cls, Exception)
    restored = pickle.loads(pickle.dumps(cls("run-1")))
    assert type(restored) is cls
    assert restored.args == ("run-1",)


def test_failure_signals_are_surefoot_errors():
    for cls in (
        sf.TransientError,
        sf.PermanentError,
        sf.DataError,
        sf.PolicyViolation,
        sf.AmbiguousError,
    ):
        assert issubclass(cls, sf.SurefootError)


def test_step_failed_error_round_trips_with_step_class_and_type():
    original = sf.StepFailedError(
        "vendor refused", step="post_invoice", failure_class="data", error_type="httpx.HTTPError"
    )
    restored = pickle.loads(pickle.dumps(original))
    assert type(restored) is sf.StepFailedError
    assert (restored.message, restored.step, restored.failure_class, restored.error_type) == (
        "vendor refused",
        "post_invoice",
        "data",
        "httpx.HTTPError",
    )


def test_transient_error_round_trips_with_retry_after():
    restored = pickle.loads(pickle.dumps(sf.TransientError("busy", retry_after_s=2.5)))
    assert type(restored) is sf.TransientError
    assert restored.message == "busy"
    assert restored.retry_after_s == 2.5
    assert pickle.loads(pickle.dumps(sf.TransientError("busy"))).retry_after_s is None


class VendorBusyError(sf.TransientError):
    """The vendor asked us to come back later."""


def test_transient_error_subclass_round_trips_as_the_subclass():
    restored = pickle.loads(pickle.dumps(VendorBusyError("busy", retry_after_s=1.0)))
    assert type(restored) is VendorBusyError
    assert restored.retry_after_s == 1.0


def test_data_error_round_trips_with_its_validation_errors():
    restored = pickle.loads(
        pickle.dumps(sf.DataError("invoice invalid", errors=["vendor missing", "total != sum"]))
    )
    assert type(restored) is sf.DataError
    assert restored.message == "invoice invalid"
    assert restored.errors == ["vendor missing", "total != sum"]


def test_policy_violation_round_trips_with_its_rule():
    restored = pickle.loads(pickle.dumps(sf.PolicyViolation("too much", rule="amount-over-limit")))
    assert type(restored) is sf.PolicyViolation
    assert restored.message == "too much"
    assert restored.rule == "amount-over-limit"
