"""Facts taken from live exceptions (httpx and Surefoot's failure signals) classify as designed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

import surefoot as sf
from surefoot.domain.failures import DEFAULT_RULES, Classification, FailureClass, classify
from surefoot.engine.facts import error_json, extract_facts, parse_retry_after

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def status_error(status: int, method: str = "POST", headers: dict[str, str] | None = None):
    request = httpx.Request(method, "https://vendor.example/invoices")
    response = httpx.Response(status, headers=headers or {}, text="vendor says no", request=request)
    return httpx.HTTPStatusError(f"{status}", request=request, response=response)


def classified(exc: BaseException, *, step_idempotent: bool = False) -> Classification:
    found = extract_facts(exc, step_idempotent=step_idempotent, now_epoch=NOW.timestamp())
    return classify(found, (DEFAULT_RULES,))


def test_503_with_retry_after_seconds_is_transient_and_carries_the_delay():
    exc = status_error(503, headers={"Retry-After": "7"})
    found = extract_facts(exc, step_idempotent=False, now_epoch=NOW.timestamp())
    assert found.retry_after_s == 7.0
    assert found.http_status == 503
    assert found.http_method == "POST"
    assert found.body == "vendor says no"
    assert classify(found, (DEFAULT_RULES,)) == Classification(
        FailureClass.TRANSIENT, "http:502-504"
    )


def test_retry_after_http_date_becomes_seconds_from_now():
    later = format_datetime(NOW + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(later, NOW.timestamp()) == pytest.approx(30.0)


@pytest.mark.parametrize("value", [None, "", "soon", "not a date"])
def test_unreadable_retry_after_is_ignored(value):
    assert parse_retry_after(value, NOW.timestamp()) is None


def test_retry_after_in_the_past_is_zero_not_negative():
    assert parse_retry_after("-5", NOW.timestamp()) == 0.0


def test_http_error_wrapped_by_user_code_is_still_found_through_the_cause_chain():
    def call_vendor() -> None:
        try:
            raise status_error(429)
        except httpx.HTTPStatusError as inner:
            raise RuntimeError("vendor call failed") from inner

    with pytest.raises(RuntimeError) as caught:
        call_vendor()
    assert classified(caught.value) == Classification(FailureClass.TRANSIENT, "http:429")


def test_read_timeout_after_post_is_ambiguous():
    request = httpx.Request("POST", "https://vendor.example/payments")
    exc = httpx.ReadTimeout("timed out", request=request)
    assert classified(exc) == Classification(FailureClass.AMBIGUOUS, "timeout:after-send")


def test_read_timeout_after_get_is_transient():
    request = httpx.Request("GET", "https://vendor.example/payments/1")
    exc = httpx.ReadTimeout("timed out", request=request)
    assert classified(exc) == Classification(FailureClass.TRANSIENT, "timeout:after-send")


def test_connect_timeout_is_transient_even_for_post():
    request = httpx.Request("POST", "https://vendor.example/payments")
    exc = httpx.ConnectTimeout("no route", request=request)
    assert classified(exc) == Classification(FailureClass.TRANSIENT, "timeout:connect")


def test_step_timeout_is_ambiguous_unless_the_step_is_idempotent():
    exc = sf.errors.StepTimeoutError("too slow")
    assert classified(exc).failure_class is FailureClass.AMBIGUOUS
    assert classified(exc, step_idempotent=True).failure_class is FailureClass.TRANSIENT


@pytest.mark.parametrize(
    ("signal", "expected"),
    [
        (sf.TransientError("busy", retry_after_s=3.0), FailureClass.TRANSIENT),
        (sf.PermanentError("gone"), FailureClass.PERMANENT),
        (sf.DataError("bad", errors=["vendor missing"]), FailureClass.DATA),
        (sf.PolicyViolation("over limit", rule="amount"), FailureClass.POLICY),
        (sf.AmbiguousError("unsure"), FailureClass.AMBIGUOUS),
    ],
)
def test_failure_signals_declare_their_class(signal, expected):
    assert classified(signal) == Classification(expected, "declared")


def test_transient_signal_passes_its_retry_after_and_policy_signal_its_rule():
    transient = extract_facts(
        sf.TransientError("busy", retry_after_s=3.0), step_idempotent=False, now_epoch=0.0
    )
    policy = extract_facts(
        sf.PolicyViolation("x", rule="amount"), step_idempotent=False, now_epoch=0
    )
    assert transient.retry_after_s == 3.0
    assert policy.rule_hint == "amount"


def test_stored_error_keeps_type_message_status_and_validation_errors():
    stored = json.loads(
        error_json(
            status_error(422), extract_facts(status_error(422), step_idempotent=False, now_epoch=0)
        )
    )
    assert stored["type"] == "httpx.HTTPStatusError"
    assert stored["http_status"] == 422
    assert stored["http_method"] == "POST"
    data = json.loads(error_json(sf.DataError("bad", errors=["vendor missing"])))
    assert data["errors"] == ["vendor missing"]
    assert data["message"] == "bad"
