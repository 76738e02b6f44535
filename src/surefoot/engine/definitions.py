"""Declared workflows and steps: their options, validated when they are declared."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from surefoot.domain import codec
from surefoot.domain.failures import FailureClass, Rule
from surefoot.domain.retry import Retry
from surefoot.domain.routes import Route, parse_routes
from surefoot.errors import DefinitionError

STEP_OPTIONS = (
    "name",
    "retry",
    "timeout_s",
    "idempotent",
    "reconcile",
    "compensate",
    "classify",
    "routes",
    "breaker",
    "rate_limit",
)
WORKFLOW_OPTIONS = ("name", "queue", "classify", "routes", "retry")

DEFAULT_STEP_RETRY = Retry()


def reject_unknown(kind: str, unknown: Mapping[str, Any], known: Iterable[str]) -> None:
    if not unknown:
        return
    known = list(known)
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, known, n=1)
        hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    raise DefinitionError(
        f"unknown {kind} option(s): {', '.join(hints)}; known: {', '.join(known)}"
    )


def _check_rules(rules: Iterable[Rule]) -> tuple[Rule, ...]:
    result = tuple(rules)
    for rule in result:
        if not isinstance(rule, Rule):
            raise DefinitionError(f"classify= takes Rule objects (see sf.rules), got {rule!r}")
    return result


@dataclass(frozen=True)
class StepDef:
    name: str
    fn: Callable[..., Any]
    is_async: bool
    signature: codec.Signature
    retry: Retry | None = None
    timeout_s: float | None = None
    idempotent: bool = False
    reconcile: Callable[..., Any] | None = None
    compensate: Callable[..., Any] | None = None
    rules: tuple[Rule, ...] = ()
    routes: dict[FailureClass, Route] = field(default_factory=dict)
    breaker: str | None = None
    rate_limit: str | None = None

    @classmethod
    def declare(
        cls,
        fn: Callable[..., Any],
        *,
        name: str | None,
        retry: Retry | None,
        timeout_s: float | None,
        idempotent: bool,
        reconcile: Callable[..., Any] | None,
        compensate: Callable[..., Any] | None,
        classify: Iterable[Rule],
        routes: Mapping[str, str] | None,
        breaker: str | None,
        rate_limit: str | None = None,
    ) -> StepDef:
        if not callable(fn):
            raise DefinitionError(f"@step decorates a function, got {fn!r}")
        if retry is not None and not isinstance(retry, Retry):
            raise DefinitionError(f"retry= takes sf.Retry(...), got {retry!r}")
        if timeout_s is not None and timeout_s <= 0:
            raise DefinitionError(f"timeout_s must be positive, got {timeout_s}")
        for hook_name, hook in (("reconcile", reconcile), ("compensate", compensate)):
            if hook is not None and not callable(hook):
                raise DefinitionError(f"{hook_name}= takes a function, got {hook!r}")
            if hook is not None and inspect.iscoroutinefunction(hook):
                raise DefinitionError(f"{hook_name}= hooks are plain functions, not async")
        return cls(
            name=name or fn.__qualname__,
            fn=fn,
            is_async=inspect.iscoroutinefunction(fn),
            signature=codec.Signature(fn),
            retry=retry,
            timeout_s=timeout_s,
            idempotent=bool(idempotent),
            reconcile=reconcile,
            compensate=compensate,
            rules=_check_rules(classify),
            routes=parse_routes(routes),
            breaker=breaker,
            rate_limit=rate_limit,
        )

    def encode_result(self, value: Any) -> tuple[str, Any]:
        return codec.roundtrip(
            value, self.signature.return_annotation, what=f"the result of step {self.name}"
        )

    def decode_result(self, text: str | None) -> Any:
        return codec.loads(
            text, self.signature.return_annotation, what=f"the stored result of step {self.name}"
        )


@dataclass(frozen=True)
class WorkflowDef:
    name: str
    fn: Callable[..., Any]
    is_async: bool
    signature: codec.Signature
    queue: str
    rules: tuple[Rule, ...] = ()
    routes: dict[FailureClass, Route] = field(default_factory=dict)
    retry: Retry | None = None

    @classmethod
    def declare(
        cls,
        fn: Callable[..., Any],
        *,
        name: str | None,
        queue: str,
        classify: Iterable[Rule],
        routes: Mapping[str, str] | None,
        retry: Retry | None,
    ) -> WorkflowDef:
        if not callable(fn):
            raise DefinitionError(f"@workflow decorates a function, got {fn!r}")
        params = list(inspect.signature(fn).parameters.values())
        if not params or params[0].kind not in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            raise DefinitionError(
                f"workflow {fn.__qualname__} must take the WorkflowContext as its first "
                "parameter: def my_workflow(ctx: sf.WorkflowContext, ...)"
            )
        return cls(
            name=name or fn.__name__,
            fn=fn,
            is_async=inspect.iscoroutinefunction(fn),
            signature=codec.Signature(fn, skip_first=True),
            queue=queue,
            rules=_check_rules(classify),
            routes=parse_routes(routes),
            retry=retry,
        )

    def encode_output(self, value: Any) -> str:
        return codec.dumps(
            value, self.signature.return_annotation, what=f"the output of workflow {self.name}"
        )

    def decode_output(self, text: str | None) -> Any:
        return codec.loads(
            text, self.signature.return_annotation, what=f"the output of workflow {self.name}"
        )
