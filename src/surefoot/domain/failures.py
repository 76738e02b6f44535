"""The five failure classes, the facts a failure is judged on, and the rule pipeline.

Classification is a list of rules; the first that matches wins, and its name is
stored with the attempt so an operator can see *why* a failure got its class.
Rules see only :class:`FailureFacts`, which the engine extracts from an
exception, so this module stays pure and every rule is testable on plain data.
There is no default retry: a failure no rule recognises is ``permanent``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum


class FailureClass(StrEnum):
    TRANSIENT = "transient"
    PERMANENT = "permanent"
    DATA = "data"
    POLICY = "policy"
    AMBIGUOUS = "ambiguous"


IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})


@dataclass(frozen=True)
class FailureFacts:
    """What the classifier may know about one failure."""

    error_type: str  # qualified name of the exception class
    error_mro: tuple[str, ...]  # qualified names, most specific first
    message: str = ""
    http_status: int | None = None
    http_method: str | None = None
    request_sent: bool = False  # the request left this process (maybe processed)
    timeout_kind: str | None = None  # "connect" | "read" | "write" | "pool" | "step"
    body: str = ""  # the first few KB of an error response
    retry_after_s: float | None = None
    step_idempotent: bool = False
    interrupted: bool = False  # the worker died mid-attempt
    declared_class: FailureClass | None = None  # from a Surefoot failure signal
    rule_hint: str | None = None  # e.g. the policy rule a PolicyViolation names

    def is_a(self, qualified_name: str) -> bool:
        return qualified_name in self.error_mro

    @property
    def method_is_idempotent(self) -> bool:
        return self.http_method is None or self.http_method.upper() in IDEMPOTENT_METHODS

    @property
    def effect_is_safe_to_repeat(self) -> bool:
        return self.step_idempotent or (self.http_method is not None and self.method_is_idempotent)


@dataclass(frozen=True)
class Classification:
    failure_class: FailureClass
    rule: str


@dataclass(frozen=True)
class Rule:
    """A named predicate that gives a class when it matches."""

    name: str
    failure_class: FailureClass | None
    matches: Callable[[FailureFacts], bool]
    pick: Callable[[FailureFacts], FailureClass] | None = field(default=None, compare=False)

    def apply(self, facts: FailureFacts) -> Classification | None:
        if not self.matches(facts):
            return None
        chosen = self.pick(facts) if self.pick is not None else self.failure_class
        assert chosen is not None, f"rule {self.name} has neither a class nor a pick"
        return Classification(chosen, self.name)


def on_exception(
    name: str, exception_types: Iterable[type[BaseException]], failure_class: FailureClass
) -> Rule:
    """A rule matching an exception type or any of its subclasses."""
    wanted = frozenset(_qualname(t) for t in exception_types)
    return Rule(name, failure_class, lambda f: bool(wanted.intersection(f.error_mro)))


def on_status(
    name: str, statuses: Iterable[int], failure_class: FailureClass, *, methods: Iterable[str] = ()
) -> Rule:
    """A rule matching HTTP statuses, optionally only for some methods."""
    codes = frozenset(statuses)
    verbs = frozenset(m.upper() for m in methods)
    return Rule(
        name,
        failure_class,
        lambda f: f.http_status in codes and (not verbs or (f.http_method or "").upper() in verbs),
    )


def on_body(name: str, pattern: str, failure_class: FailureClass) -> Rule:
    """A rule matching a regular expression in the error response body."""
    compiled = re.compile(pattern)
    return Rule(name, failure_class, lambda f: bool(f.body) and compiled.search(f.body) is not None)


def _qualname(t: type[BaseException]) -> str:
    return f"{t.__module__}.{t.__qualname__}"


def qualified_mro(exc: BaseException) -> tuple[str, ...]:
    return tuple(_qualname(t) for t in type(exc).__mro__ if issubclass(t, BaseException))


def _ambiguous_unless_safe(facts: FailureFacts) -> FailureClass:
    return FailureClass.TRANSIENT if facts.effect_is_safe_to_repeat else FailureClass.AMBIGUOUS


_CONNECT_ERRORS = ("builtins.ConnectionRefusedError", "socket.gaierror")
_MAYBE_SENT_ERRORS = (
    "builtins.ConnectionResetError",
    "builtins.BrokenPipeError",
    "builtins.ConnectionAbortedError",
)
_PROGRAMMING_ERRORS = (
    "builtins.TypeError",
    "builtins.AttributeError",
    "builtins.NameError",
    "builtins.KeyError",
    "builtins.IndexError",
    "builtins.AssertionError",
    "builtins.NotImplementedError",
    "builtins.ZeroDivisionError",
    "builtins.LookupError",
    "builtins.ImportError",
    "builtins.RecursionError",
)

DEFAULT_RULES: tuple[Rule, ...] = (
    Rule("interrupted", None, lambda f: f.interrupted, pick=_ambiguous_unless_safe),
    Rule(
        "declared",
        None,
        lambda f: f.declared_class is not None,
        pick=lambda f: f.declared_class or FailureClass.PERMANENT,
    ),
    Rule(
        "timeout:connect", FailureClass.TRANSIENT, lambda f: f.timeout_kind in ("connect", "pool")
    ),
    Rule(
        "timeout:after-send",
        None,
        lambda f: f.timeout_kind in ("read", "write", "step"),
        pick=_ambiguous_unless_safe,
    ),
    on_status("http:429", [429], FailureClass.TRANSIENT),
    on_status("http:502-504", [502, 503, 504], FailureClass.TRANSIENT),
    Rule("http:500", None, lambda f: f.http_status == 500, pick=_ambiguous_unless_safe),
    on_status("http:422", [422], FailureClass.DATA),
    on_status("http:409", [409], FailureClass.DATA),
    on_status("http:4xx", [400, 401, 403, 404, 405, 410], FailureClass.PERMANENT),
    Rule(
        "http:other-5xx",
        None,
        lambda f: f.http_status is not None and 500 <= f.http_status < 600,
        pick=_ambiguous_unless_safe,
    ),
    Rule(
        "http:other-4xx",
        FailureClass.PERMANENT,
        lambda f: f.http_status is not None and 400 <= f.http_status < 500,
    ),
    Rule(
        "network:connect",
        FailureClass.TRANSIENT,
        lambda f: any(f.is_a(n) for n in _CONNECT_ERRORS) or f.is_a("httpx.ConnectError"),
    ),
    Rule(
        "network:after-send",
        None,
        lambda f: (
            any(f.is_a(n) for n in _MAYBE_SENT_ERRORS)
            or f.is_a("httpx.RemoteProtocolError")
            or f.is_a("httpx.ReadError")
            or f.is_a("httpx.WriteError")
        ),
        pick=_ambiguous_unless_safe,
    ),
    Rule(
        "timeout:builtin",
        None,
        lambda f: f.is_a("builtins.TimeoutError"),
        pick=_ambiguous_unless_safe,
    ),
    Rule(
        "store:busy",
        FailureClass.TRANSIENT,
        lambda f: f.is_a("sqlite3.OperationalError") and "locked" in f.message,
    ),
    Rule(
        "store:serialization",
        FailureClass.TRANSIENT,
        lambda f: (
            f.is_a("psycopg.errors.SerializationFailure")
            or f.is_a("psycopg.errors.DeadlockDetected")
        ),
    ),
    Rule(
        "validation",
        FailureClass.DATA,
        lambda f: (
            f.is_a("pydantic_core._pydantic_core.ValidationError")
            or f.is_a("jsonschema.exceptions.ValidationError")
        ),
    ),
    Rule(
        "programming-error",
        FailureClass.PERMANENT,
        lambda f: any(f.is_a(n) for n in _PROGRAMMING_ERRORS),
    ),
    Rule("value-error", FailureClass.PERMANENT, lambda f: f.is_a("builtins.ValueError")),
)

FALLBACK = Classification(FailureClass.PERMANENT, "default:unknown")


def classify(facts: FailureFacts, rule_layers: Sequence[Sequence[Rule]]) -> Classification:
    """First match wins across layers (step rules, workflow rules, app rules, defaults).

    A failure that no rule recognises is ``permanent``: Surefoot never retries
    what it does not understand.
    """
    for layer in rule_layers:
        for rule in layer:
            result = rule.apply(facts)
            if result is not None:
                return result
    return FALLBACK
