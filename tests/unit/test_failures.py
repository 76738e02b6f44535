"""The default classification table: every failure gets one class and the rule that chose it."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from surefoot.domain.failures import (
    DEFAULT_RULES,
    Classification,
    FailureClass,
    FailureFacts,
    Rule,
    classify,
    on_body,
    on_exception,
    on_status,
    qualified_mro,
)

T = FailureClass.TRANSIENT
P = FailureClass.PERMANENT
D = FailureClass.DATA
A = FailureClass.AMBIGUOUS
POLICY = FailureClass.POLICY


def facts(error: BaseException | None = None, **fields: Any) -> FailureFacts:
    mro = qualified_mro(error if error is not None else Exception("boom"))
    fields.setdefault("message", str(error) if error is not None else "boom")
    return FailureFacts(error_type=mro[0], error_mro=mro, **fields)


def default(f: FailureFacts) -> Classification:
    return classify(f, (DEFAULT_RULES,))


@pytest.mark.parametrize(
    ("status", "expected", "rule"),
    [
        (429, T, "http:429"),
        (502, T, "http:502-504"),
        (503, T, "http:502-504"),
        (504, T, "http:502-504"),
        (400, P, "http:4xx"),
        (401, P, "http:4xx"),
        (403, P, "http:4xx"),
        (404, P, "http:4xx"),
        (410, P, "http:4xx"),
        (422, D, "http:422"),
        (409, D, "http:409"),
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_http_status_gets_its_class_whatever_the_method(status, expected, rule, method):
    result = default(facts(http_status=status, http_method=method, request_sent=True))
    assert result == Classification(expected, rule)


@pytest.mark.parametrize(
    ("method", "step_idempotent", "expected"),
    [
        ("POST", False, A),
        ("PATCH", False, A),
        (None, False, A),
        ("GET", False, T),
        ("PUT", False, T),
        ("DELETE", False, T),
        ("POST", True, T),
    ],
)
def test_http_500_is_ambiguous_unless_the_request_or_step_is_idempotent(
    method, step_idempotent, expected
):
    result = default(facts(http_status=500, http_method=method, step_idempotent=step_idempotent))
    assert result == Classification(expected, "http:500")


@pytest.mark.parametrize(("method", "expected"), [("POST", A), ("GET", T)])
def test_other_5xx_follow_the_same_idempotency_rule_as_500(method, expected):
    assert default(facts(http_status=507, http_method=method)) == Classification(
        expected, "http:other-5xx"
    )


def test_unlisted_4xx_is_permanent():
    assert default(facts(http_status=418, http_method="GET")) == Classification(P, "http:other-4xx")


@pytest.mark.parametrize("kind", ["read", "write", "step"])
@pytest.mark.parametrize(
    ("method", "step_idempotent", "expected"),
    [("POST", False, A), (None, False, A), ("GET", False, T), ("POST", True, T)],
)
def test_timeout_after_send_is_ambiguous_unless_safe_to_repeat(
    kind, method, step_idempotent, expected
):
    result = default(facts(timeout_kind=kind, http_method=method, step_idempotent=step_idempotent))
    assert result == Classification(expected, "timeout:after-send")


@pytest.mark.parametrize("kind", ["connect", "pool"])
@pytest.mark.parametrize("method", ["POST", "GET", None])
def test_connect_timeout_is_transient_because_nothing_was_sent(kind, method):
    assert default(facts(timeout_kind=kind, http_method=method)) == Classification(
        T, "timeout:connect"
    )


@pytest.mark.parametrize(("step_idempotent", "expected"), [(False, A), (True, T)])
def test_interrupted_attempt_is_ambiguous_unless_the_step_is_idempotent(step_idempotent, expected):
    result = default(facts(interrupted=True, step_idempotent=step_idempotent))
    assert result == Classification(expected, "interrupted")


def test_interrupted_wins_over_everything_else_known_about_the_failure():
    result = default(
        facts(interrupted=True, declared_class=T, http_status=429, timeout_kind="connect")
    )
    assert result == Classification(A, "interrupted")


@pytest.mark.parametrize("declared", list(FailureClass))
def test_declared_class_is_taken_as_declared(declared):
    assert default(facts(declared_class=declared)) == Classification(declared, "declared")


def test_declared_class_wins_over_http_status():
    result = default(facts(declared_class=T, http_status=400, http_method="POST"))
    assert result == Classification(T, "declared")


class VendorQuirkError(Exception):
    pass


def test_unknown_exception_is_permanent_by_the_default_unknown_rule():
    assert default(facts(VendorQuirkError("odd"))) == Classification(P, "default:unknown")


def test_no_rules_at_all_still_classifies_as_permanent_unknown():
    assert classify(facts(), ()) == Classification(P, "default:unknown")


@pytest.mark.parametrize(
    ("error", "expected", "rule"),
    [
        (ConnectionRefusedError("refused"), T, "network:connect"),
        (ConnectionResetError("reset"), A, "network:after-send"),
        (BrokenPipeError("pipe"), A, "network:after-send"),
        (TimeoutError("slow"), A, "timeout:builtin"),
        (TypeError("bad call"), P, "programming-error"),
        (KeyError("missing"), P, "programming-error"),
        (ZeroDivisionError("div"), P, "programming-error"),
        (ValueError("bad value"), P, "value-error"),
    ],
)
def test_builtin_exceptions_get_their_default_class(error, expected, rule):
    assert default(facts(error)) == Classification(expected, rule)


def test_connection_reset_on_an_idempotent_step_is_transient():
    result = default(facts(ConnectionResetError("reset"), step_idempotent=True))
    assert result == Classification(T, "network:after-send")


def test_locked_sqlite_database_is_transient():
    result = default(facts(sqlite3.OperationalError("database is locked")))
    assert result == Classification(T, "store:busy")


def test_pydantic_validation_error_is_a_data_problem():
    class Invoice(BaseModel):
        amount: int

    with pytest.raises(ValidationError) as caught:
        Invoice.model_validate({"amount": "lots"})
    assert default(facts(caught.value)) == Classification(D, "validation")


def test_first_matching_rule_wins_within_a_layer():
    first = Rule("first", T, lambda f: True)
    second = Rule("second", P, lambda f: True)
    assert classify(facts(), ((first, second),)) == Classification(T, "first")


def test_first_match_wins_across_layers_step_before_workflow_before_app_before_defaults():
    step_rule = on_status("step:404", [404], T)
    workflow_rule = on_status("workflow:404", [404], D)
    app_rule = on_status("app:404", [404], POLICY)
    f = facts(http_status=404, http_method="GET")
    layers = [(step_rule,), (workflow_rule,), (app_rule,), DEFAULT_RULES]
    assert classify(f, layers) == Classification(T, "step:404")
    assert classify(f, layers[1:]) == Classification(D, "workflow:404")
    assert classify(f, layers[2:]) == Classification(POLICY, "app:404")
    assert classify(f, layers[3:]) == Classification(P, "http:4xx")


def test_a_layer_whose_rules_do_not_match_falls_through_to_the_next():
    unrelated = on_status("only-418", [418], T)
    f = facts(http_status=503, http_method="POST")
    assert classify(f, ((unrelated,), DEFAULT_RULES)) == Classification(T, "http:502-504")


def test_user_status_rule_overrides_the_default_class():
    rule = on_status("vendor:404-means-not-yet", [404], T)
    f = facts(http_status=404, http_method="GET")
    assert classify(f, ((rule,), DEFAULT_RULES)) == Classification(T, "vendor:404-means-not-yet")


def test_status_rule_limited_to_methods_matches_only_those_methods():
    rule = on_status("post-409", [409], A, methods=["post"])
    layers = ((rule,), DEFAULT_RULES)
    assert classify(facts(http_status=409, http_method="POST"), layers).rule == "post-409"
    assert classify(facts(http_status=409, http_method="GET"), layers).rule == "http:409"


def test_user_exception_rule_matches_subclasses():
    class QuirkSubclassError(VendorQuirkError):
        pass

    rule = on_exception("vendor-quirk", [VendorQuirkError], T)
    assert classify(facts(QuirkSubclassError("x")), ((rule,), DEFAULT_RULES)) == Classification(
        T, "vendor-quirk"
    )
    assert classify(facts(KeyError("x")), ((rule,), DEFAULT_RULES)).rule == "programming-error"


def test_user_body_rule_matches_the_error_body_and_beats_the_status_default():
    rule = on_body("duplicate-invoice", r"DuplicateInvoiceNumber", D)
    layers = ((rule,), DEFAULT_RULES)
    hit = facts(http_status=400, http_method="POST", body='{"code":"DuplicateInvoiceNumber"}')
    miss = facts(http_status=400, http_method="POST", body='{"code":"Other"}')
    assert classify(hit, layers) == Classification(D, "duplicate-invoice")
    assert classify(miss, layers) == Classification(P, "http:4xx")
    assert classify(facts(http_status=400), layers).rule == "http:4xx"


def test_every_default_rule_has_a_unique_name():
    names = [rule.name for rule in DEFAULT_RULES]
    assert len(names) == len(set(names))
    assert "default:unknown" not in names
