"""Misused declarations and calls fail at once with a typed error that says what to do."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import surefoot as sf
from surefoot.errors import DefinitionError, WorkflowError


def test_step_called_outside_a_workflow_is_refused_without_running(make_app):
    app: sf.App = make_app()
    calls: list[int] = []

    @app.step
    def charge(amount: int) -> int:
        calls.append(amount)
        return amount

    with pytest.raises(sf.StepOutsideWorkflowError, match=r"outside a workflow.*__wrapped__"):
        charge(5)
    assert calls == []


def test_undecorated_step_body_stays_callable_for_unit_tests(make_app):
    app: sf.App = make_app()

    @app.step
    def charge(amount: int) -> int:
        return amount * 2

    assert charge.__wrapped__(5) == 10  # type: ignore[attr-defined]


def test_async_step_called_outside_a_workflow_is_refused(make_app):
    app: sf.App = make_app()

    @app.step
    async def fetch(n: int) -> int:
        return n

    with pytest.raises(sf.StepOutsideWorkflowError):
        fetch(1)  # type: ignore[unused-coroutine]


def test_current_step_outside_a_step_is_refused():
    with pytest.raises(sf.StepOutsideWorkflowError, match="only available inside a step"):
        sf.current_step()


def test_async_step_from_a_sync_workflow_fails_the_run_with_the_reason_and_never_runs(
    make_app, start_worker
):
    app: sf.App = make_app()
    calls: list[int] = []

    @app.step
    async def fetch(n: int) -> int:
        calls.append(n)
        await asyncio.sleep(0)
        return n

    @app.step
    def double(n: int) -> int:
        return 2 * n

    @app.workflow
    def sync_flow(ctx: sf.WorkflowContext, n: int) -> int:
        return fetch(n)  # type: ignore[return-value]

    @app.workflow
    def fine(ctx: sf.WorkflowContext, n: int) -> int:
        return double(n)

    start_worker(app)
    done = app.start(fine, 2)
    assert done.result(timeout=10) == 4
    before = done.record()
    bad = app.start(sync_flow, 1)
    with pytest.raises(sf.RunFailedError, match=r"async step .*fetch.* sync workflow sync_flow"):
        bad.result(timeout=10)
    assert calls == []
    assert done.record() == before
    assert done.result(timeout=1) == 4


def test_step_called_inside_another_step_is_refused(make_app, start_worker):
    app: sf.App = make_app()

    @app.step
    def inner(n: int) -> int:
        return n

    @app.step
    def outer(n: int) -> int:
        return inner(n)

    @app.workflow
    def flow(ctx: sf.WorkflowContext, n: int) -> int:
        return outer(n)

    start_worker(app)
    with pytest.raises(sf.RunFailedError, match="steps do not nest"):
        app.start(flow, 1).result(timeout=10)


@pytest.mark.parametrize(
    ("option", "hint"),
    [("retries", "retry"), ("idempotant", "idempotent"), ("timeout", "timeout_s")],
)
def test_unknown_step_option_is_a_definition_error_with_a_did_you_mean_hint(make_app, option, hint):
    app: sf.App = make_app()
    options: dict[str, Any] = {option: 1}
    with pytest.raises(DefinitionError, match=f"did you mean '{hint}'"):

        @app.step(**options)
        def charge(amount: int) -> int:
            return amount

    assert app.steps == {}


def test_unknown_workflow_option_is_a_definition_error_with_a_did_you_mean_hint(make_app):
    app: sf.App = make_app()
    with pytest.raises(DefinitionError, match=r"unknown workflow option.*did you mean 'queue'"):

        @app.workflow(queu="invoices")
        def flow(ctx: sf.WorkflowContext) -> None: ...

    assert app.workflows == {}


def test_unknown_option_without_a_close_match_lists_the_known_options(make_app):
    app: sf.App = make_app()
    with pytest.raises(DefinitionError, match=r"'zzz'; known: name, retry") as caught:
        app.step(zzz=True)
    assert "did you mean" not in str(caught.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"retry": 3}, r"retry= takes sf\.Retry"),
        ({"timeout_s": 0}, "timeout_s must be positive"),
        ({"reconcile": "lookup"}, "reconcile= takes a function"),
        ({"routes": {"flaky": "retry"}}, "unknown failure class 'flaky'"),
        ({"routes": {"data": "ignore"}}, "unknown route 'ignore'"),
        ({"classify": ["not a rule"]}, "classify= takes Rule objects"),
    ],
)
def test_invalid_step_option_value_is_a_definition_error(make_app, options, message):
    app: sf.App = make_app()
    with pytest.raises(DefinitionError, match=message):

        @app.step(**options)
        def charge(amount: int) -> int:
            return amount


def test_async_reconcile_hook_is_refused(make_app):
    app: sf.App = make_app()

    async def lookup(step: sf.StepContext, key: str) -> sf.NotFound:
        return sf.NotFound()

    with pytest.raises(DefinitionError, match="plain functions, not async"):

        @app.step(reconcile=lookup)
        def charge(amount: int) -> int:
            return amount


def test_workflow_without_a_context_parameter_is_refused(make_app):
    app: sf.App = make_app()
    with pytest.raises(DefinitionError, match="WorkflowContext as its first parameter"):

        @app.workflow
        def flow() -> None: ...


def test_two_steps_with_one_name_are_refused_and_the_first_is_kept(make_app):
    app: sf.App = make_app()

    @app.step(name="charge")
    def first(amount: int) -> int:
        return amount

    with pytest.raises(DefinitionError, match="already declared"):

        @app.step(name="charge")
        def second(amount: int) -> int:
            return amount

    assert app.steps["charge"].fn.__name__ == "first"


def test_two_workflows_with_one_name_are_refused(make_app):
    app: sf.App = make_app()

    @app.workflow(name="flow")
    def first(ctx: sf.WorkflowContext) -> None: ...

    with pytest.raises(DefinitionError, match="already declared"):

        @app.workflow(name="flow")
        def second(ctx: sf.WorkflowContext) -> None: ...


def test_app_level_unknown_route_is_a_definition_error(store_url):
    with pytest.raises(DefinitionError, match="unknown route"):
        sf.App("bad", store=store_url, routes={"transient": "forever"})


def test_definition_errors_are_workflow_errors_and_surefoot_errors():
    assert issubclass(DefinitionError, WorkflowError)
    assert issubclass(DefinitionError, sf.SurefootError)


def test_step_called_with_arguments_that_do_not_fit_fails_the_run_before_running_it(
    make_app, start_worker
):
    app: sf.App = make_app()
    calls: list[int] = []

    @app.step
    def charge(amount: int) -> int:
        calls.append(amount)
        return amount

    @app.workflow
    def flow(ctx: sf.WorkflowContext) -> int:
        return charge(1, 2)  # type: ignore[call-arg]

    start_worker(app)
    handle = app.start(flow)
    with pytest.raises(sf.RunFailedError, match=r"\(permanent\).*do not fit"):
        handle.result(timeout=10)
    assert calls == []
    assert app.store.list_attempts(handle.run_id) == []


def test_step_result_that_is_not_json_fails_the_run_as_permanent(make_app, start_worker):
    app: sf.App = make_app()
    calls: list[int] = []

    @app.step
    def build() -> object:
        calls.append(1)
        return object()

    @app.workflow
    def flow(ctx: sf.WorkflowContext) -> None:
        build()

    start_worker(app)
    handle = app.start(flow)
    with pytest.raises(sf.RunFailedError, match=r"\(permanent\).*not JSON-serializable"):
        handle.result(timeout=10)
    assert calls == [1], "a result type cannot be fixed by retrying"
    (attempt,) = app.store.list_attempts(handle.run_id)
    assert attempt.failure_class is sf.FailureClass.PERMANENT
