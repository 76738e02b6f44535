"""The App: a registry of workflows and steps bound to one store."""

from __future__ import annotations

import functools
import getpass
import hashlib
import os
import threading
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar, overload

from surefoot.config import Settings, from_environment
from surefoot.domain import codec
from surefoot.domain.failures import Rule
from surefoot.domain.ids import time_ordered_hex
from surefoot.domain.queues import QueueSpec, RateLimit
from surefoot.domain.records import NewRun, RunRecord
from surefoot.domain.retry import Retry
from surefoot.domain.routes import parse_routes
from surefoot.engine.context import current_execution
from surefoot.engine.crash import CrashPoints
from surefoot.engine.definitions import (
    STEP_OPTIONS,
    WORKFLOW_OPTIONS,
    StepDef,
    WorkflowDef,
    reject_unknown,
)
from surefoot.engine.handle import RunHandle
from surefoot.engine.runtime import Runtime, utc_now
from surefoot.engine.starts import MAX_START_MANY, Start, as_start
from surefoot.errors import (
    DefinitionError,
    SerializationError,
    WorkflowError,
    WorkflowNotFoundError,
)
from surefoot.observability import instrument, tracing
from surefoot.store.base import Store
from surefoot.store.open import open_store

P = ParamSpec("P")
R = TypeVar("R")


_USER_VARIABLES = ("LOGNAME", "USER", "LNAME", "USERNAME")  # what getpass.getuser reads


def default_actor() -> str:
    """The operating system's user name, as ``getpass.getuser`` gives it (``unknown``
    where it cannot tell); looked up once per value of the variables it reads, since
    without them it reads the user database."""
    return _user_named_by(tuple(os.environ.get(name) for name in _USER_VARIABLES))


@functools.lru_cache(maxsize=8)
def _user_named_by(_variables: tuple[str | None, ...]) -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


class App:
    """Workflows and steps, bound to a store URL. Opening the store is lazy."""

    def __init__(
        self,
        name: str,
        *,
        store: str | Store | None = None,
        classify: Iterable[Rule] = (),
        routes: Mapping[str, str] | None = None,
        settings: Settings | None = None,
        **overrides: Any,
    ) -> None:
        self.name = name
        base = settings or from_environment()
        if isinstance(store, str):
            overrides["store_url"] = store
        self.settings = base.with_overrides(**overrides)
        self._store: Store | None = (
            store if store is not None and not isinstance(store, str) else None
        )
        self.workflows: dict[str, WorkflowDef] = {}
        self.queues: dict[str, QueueSpec] = {}
        self.rate_limits: dict[str, RateLimit] = {}
        self.steps: dict[str, StepDef] = {}
        self.rules = tuple(classify)
        self.routes = parse_routes(routes)
        self._runtime: Runtime | None = None
        self._lock = threading.Lock()
        self._finished = threading.Condition()
        self._changes = 0  # counts what wakes wait_for_change, under _finished
        self._awaiting = 0  # callers waiting for a change (awaiting_changes), under _finished
        self._unwatch: Callable[[], None] | None = None  # the store-change subscription
        self._wakers: list[Callable[[], None]] = []

    # -- the store and the runtime --------------------------------------------------------
    @property
    def store(self) -> Store:
        with self._lock:
            if self._store is None:
                self._store = open_store(
                    self.settings.store_url,
                    auto_migrate=self.settings.auto_migrate,
                    create=self.settings.create_store,
                )
            return self._store

    @property
    def runtime(self) -> Runtime:
        store = self.store
        with self._lock:
            if self._runtime is None:
                self._runtime = Runtime(
                    store=store,
                    settings=self.settings,
                    workflows=self.workflows,
                    rate_limits=self.rate_limits,
                    steps=self.steps,
                    rules=self.rules,
                    routes=self.routes,
                    clock=utc_now,
                    crash=CrashPoints(self.settings.crash_at),
                    on_finished=self._notify,
                )
            return self._runtime

    def close(self) -> None:
        with self._lock:
            unwatch, self._unwatch = self._unwatch, None
            if unwatch is not None:
                unwatch()
            if self._store is not None:
                self._store.close()
            self._store = None
            self._runtime = None

    def _notify(self, _run_id: str | None = None) -> None:
        with self._finished:
            self._changes += 1
            self._finished.notify_all()

    def changes(self) -> int:
        """A counter that ``wait_for_change`` waits to move; read it before looking at
        the store, so that a change made meanwhile is not slept through."""
        with self._finished:
            return self._changes

    def wait_for_change(self, timeout_s: float, since: int | None = None) -> None:
        """Block until a local worker finishes an execution, or another process commits
        to a store whose changes are watched (``watch_store_changes``), or the timeout
        passes. With ``since`` (from ``changes``), return at once if one came since."""
        with self._finished:
            if since is None or self._changes == since:
                self._finished.wait(timeout_s)

    def watch_store_changes(self) -> bool:
        """Have ``wait_for_change`` also woken by what other processes commit, where the
        store can tell (SQLite: any commit; PostgreSQL: a run's end); whether it can. The
        subscription lasts until ``close``."""
        store = self.store
        with self._lock:
            if self._unwatch is None:
                self._unwatch = store.subscribe_changes(self._notify, waiting=self._awaited)
                if self._unwatch is None:
                    self._unwatch = _unwatched
            return self._unwatch is not _unwatched

    @contextmanager
    def awaiting_changes(self) -> Iterator[None]:
        """Count a caller waiting for changes (``RunHandle.result``) while it does: while
        none does, a store that has to look for other processes' commits may look less
        often."""
        with self._finished:
            self._awaiting += 1
        try:
            yield
        finally:
            with self._finished:
                self._awaiting -= 1

    def _awaited(self) -> bool:
        return self._awaiting > 0

    def has_local_workers(self) -> bool:
        """Whether a worker runs in this process (its finishes wake ``wait_for_change``)."""
        return bool(self._wakers)

    def add_waker(self, wake: Callable[[], None]) -> None:
        self._wakers.append(wake)

    def remove_waker(self, wake: Callable[[], None]) -> None:
        if wake in self._wakers:
            self._wakers.remove(wake)

    # -- declaring ---------------------------------------------------------------------------
    @overload
    def step(self, fn: Callable[P, R], /) -> Callable[P, R]: ...
    @overload
    def step(
        self,
        fn: None = None,
        /,
        *,
        name: str | None = None,
        retry: Retry | None = None,
        timeout_s: float | None = None,
        idempotent: bool = False,
        reconcile: Callable[..., Any] | None = None,
        compensate: Callable[..., Any] | None = None,
        classify: Iterable[Rule] = (),
        routes: Mapping[str, str] | None = None,
        breaker: str | None = None,
        rate_limit: str | None = None,
        **unknown: Any,
    ) -> Callable[[Callable[P, R]], Callable[P, R]]: ...

    def step(
        self,
        fn: Callable[P, R] | None = None,
        /,
        *,
        name: str | None = None,
        retry: Retry | None = None,
        timeout_s: float | None = None,
        idempotent: bool = False,
        reconcile: Callable[..., Any] | None = None,
        compensate: Callable[..., Any] | None = None,
        classify: Iterable[Rule] = (),
        routes: Mapping[str, str] | None = None,
        breaker: str | None = None,
        rate_limit: str | None = None,
        **unknown: Any,
    ) -> Callable[P, R] | Callable[[Callable[P, R]], Callable[P, R]]:
        """Declare a step: its result is committed and never recomputed on replay."""
        reject_unknown("step", unknown, STEP_OPTIONS)

        def decorate(func: Callable[P, R]) -> Callable[P, R]:
            definition = StepDef.declare(
                func,
                name=name,
                retry=retry,
                timeout_s=timeout_s,
                idempotent=idempotent,
                reconcile=reconcile,
                compensate=compensate,
                classify=classify,
                routes=routes,
                breaker=breaker,
                rate_limit=rate_limit,
            )
            if definition.name in self.steps:
                raise DefinitionError(f"a step named {definition.name!r} is already declared")
            self.steps[definition.name] = definition
            return _step_wrapper(definition)

        return decorate(fn) if fn is not None else decorate

    @overload
    def workflow(self, fn: Callable[P, R], /) -> Callable[P, R]: ...
    @overload
    def workflow(
        self,
        fn: None = None,
        /,
        *,
        name: str | None = None,
        queue: str | None = None,
        classify: Iterable[Rule] = (),
        routes: Mapping[str, str] | None = None,
        retry: Retry | None = None,
        **unknown: Any,
    ) -> Callable[[Callable[P, R]], Callable[P, R]]: ...

    def workflow(
        self,
        fn: Callable[P, R] | None = None,
        /,
        *,
        name: str | None = None,
        queue: str | None = None,
        classify: Iterable[Rule] = (),
        routes: Mapping[str, str] | None = None,
        retry: Retry | None = None,
        **unknown: Any,
    ) -> Callable[P, R] | Callable[[Callable[P, R]], Callable[P, R]]:
        """Declare a workflow: deterministic orchestration of steps and durable waits."""
        reject_unknown("workflow", unknown, WORKFLOW_OPTIONS)

        def decorate(func: Callable[P, R]) -> Callable[P, R]:
            definition = WorkflowDef.declare(
                func,
                name=name,
                queue=queue or self.settings.default_queue,
                classify=classify,
                routes=routes,
                retry=retry,
            )
            if definition.name in self.workflows:
                raise DefinitionError(f"a workflow named {definition.name!r} is already declared")
            self.workflows[definition.name] = definition
            func.__surefoot_workflow__ = definition.name  # type: ignore[attr-defined]
            return func

        return decorate(fn) if fn is not None else decorate

    def queue(
        self,
        name: str,
        *,
        concurrency: int | None = None,
        worker_concurrency: int | None = None,
        max_depth: int | None = None,
        retry_after_s: float = 1.0,
    ) -> QueueSpec:
        """Declare a queue's limits (every worker of the app applies the same)."""
        if name in self.queues:
            raise DefinitionError(f"queue {name!r} is already declared")
        spec = QueueSpec(name, concurrency, worker_concurrency, max_depth, retry_after_s)
        self.queues[name] = spec
        return spec

    def rate_limit(self, key: str, *, per_s: float, burst: int = 1) -> RateLimit:
        """Declare a token bucket shared by all workers; steps use it with
        ``@app.step(rate_limit=key)``, one token per attempt."""
        if key in self.rate_limits:
            raise DefinitionError(f"rate limit {key!r} is already declared")
        limit = RateLimit(key, per_s, burst)
        self.rate_limits[key] = limit
        return limit

    def check_definitions(self) -> None:
        """Fail fast on references to undeclared rate limits (workers call this)."""
        for step in self.steps.values():
            if step.rate_limit is not None and step.rate_limit not in self.rate_limits:
                known = ", ".join(sorted(self.rate_limits)) or "none"
                raise DefinitionError(
                    f"step {step.name} uses rate limit {step.rate_limit!r}, which is not "
                    f"declared with app.rate_limit(...) (declared: {known})"
                )

    def workflow_named(self, name: str) -> WorkflowDef:
        try:
            return self.workflows[name]
        except KeyError:
            known = ", ".join(sorted(self.workflows)) or "none"
            raise WorkflowNotFoundError(
                f"no workflow named {name!r} in app {self.name!r} (known: {known})"
            ) from None

    def _resolve(self, workflow: Callable[..., Any] | str) -> WorkflowDef:
        if isinstance(workflow, str):
            return self.workflow_named(workflow)
        name = getattr(workflow, "__surefoot_workflow__", None)
        if name is None or name not in self.workflows:
            raise WorkflowNotFoundError(
                f"{getattr(workflow, '__qualname__', workflow)!r} is not a workflow of app "
                f"{self.name!r}; declare it with @app.workflow"
            )
        return self.workflows[name]

    # -- starting and events -------------------------------------------------------------------
    def start(
        self,
        workflow: Callable[..., Any] | str,
        /,
        *args: Any,
        idempotency_key: str | None = None,
        queue: str | None = None,
        priority: int = 0,
        partition_key: str | None = None,
        correlation_id: str | None = None,
        actor: str | None = None,
        debounce_key: str | None = None,
        debounce_s: float | None = None,
        **kwargs: Any,
    ) -> RunHandle:
        """Commit a new run and return its handle. Returns only after the commit.

        The same ``idempotency_key`` returns the same run (never a second one);
        reusing it for another workflow or other inputs raises
        ``IdempotencyKeyConflictError``. With ``debounce_key`` and ``debounce_s``, starts
        of one workflow with that key within the window become one run, started
        ``debounce_s`` after the last of them, with the last inputs. A queue declared
        with ``max_depth`` raises ``BackPressureError`` when full.
        """
        definition = self._resolve(workflow)
        inputs = definition.signature.encode_call(args, kwargs)
        return self._start_encoded(
            definition,
            inputs,
            idempotency_key=idempotency_key,
            queue=queue,
            priority=priority,
            partition_key=partition_key,
            correlation_id=correlation_id,
            actor=actor,
            debounce_key=debounce_key,
            debounce_s=debounce_s,
        )

    def start_json(
        self, workflow: str, inputs: Mapping[str, Any] | list[Any] | None, **options: Any
    ) -> RunHandle:
        """Start from JSON inputs (a list of positional args or an object of named ones)."""
        definition = self.workflow_named(workflow)
        args: list[Any]
        kwargs: dict[str, Any]
        if inputs is None:
            args, kwargs = [], {}
        elif isinstance(inputs, list):
            args, kwargs = inputs, {}
        elif isinstance(inputs, Mapping):
            args, kwargs = [], dict(inputs)
        else:
            raise WorkflowError(
                f"inputs must be a JSON list or object, got {type(inputs).__name__}"
            )
        encoded = definition.signature.encode_call(args, kwargs)
        return self._start_encoded(definition, encoded, **options)

    def _start_encoded(
        self,
        definition: WorkflowDef,
        inputs: str,
        *,
        idempotency_key: str | None = None,
        queue: str | None = None,
        priority: int = 0,
        partition_key: str | None = None,
        correlation_id: str | None = None,
        actor: str | None = None,
        debounce_key: str | None = None,
        debounce_s: float | None = None,
    ) -> RunHandle:
        if (debounce_key is None) != (debounce_s is None):
            raise WorkflowError("debounce_key and debounce_s go together")
        if debounce_key is not None and idempotency_key is not None:
            raise WorkflowError(
                "a run is either debounced or keyed for idempotency, not both: a debounced "
                "run's inputs change until it starts"
            )
        if debounce_s is not None and not debounce_s > 0:
            raise WorkflowError(f"debounce_s must be positive, got {debounce_s}")
        now = utc_now()
        queue_name = queue or definition.queue
        correlation_id = correlation_id or time_ordered_hex()
        with tracing.start_span(definition.name, correlation_id) as traced:
            new = self._new_run(
                definition,
                inputs,
                traced.traceparent,
                idempotency_key=idempotency_key,
                queue=queue_name,
                priority=priority,
                partition_key=partition_key,
                correlation_id=correlation_id,
                debounce_key=debounce_key,
                not_before=now + timedelta(seconds=debounce_s) if debounce_s is not None else None,
            )
            record, created = self.store.create_run(
                new, now, actor or default_actor(), queue=self.queues.get(queue_name)
            )
            traced.created(record.run_id)
        if created:
            instrument.run_started(record.workflow, record.run_id, record.correlation_id)
        for wake in list(self._wakers):
            wake()
        return RunHandle(self, record.run_id)

    def start_many(
        self,
        workflow: Callable[..., Any] | str,
        /,
        starts: Iterable[Start | Sequence[Any]],
        *,
        queue: str | None = None,
        priority: int = 0,
        correlation_id: str | None = None,
        actor: str | None = None,
    ) -> list[RunHandle]:
        """Commit many runs of one workflow in one transaction; their handles, in order.

        Each item is a :class:`~surefoot.Start` (arguments and this run's own idempotency
        key, partition key, priority, correlation id) or a tuple of positional arguments.
        Each run is what ``start`` would make of it, and a repeated idempotency key returns
        the run already made for it, here or before. All or nothing: inputs that cannot be
        encoded, a key reused with other inputs, or a ``max_depth`` queue that cannot take
        them all (``BackPressureError``) store none. At most 1,000 runs per call.
        """
        made = self.start_many_records(
            workflow,
            starts,
            queue=queue,
            priority=priority,
            correlation_id=correlation_id,
            actor=actor,
        )
        return [RunHandle(self, record.run_id) for record, _ in made]

    def start_many_records(
        self,
        workflow: Callable[..., Any] | str,
        /,
        starts: Iterable[Start | Sequence[Any]],
        *,
        queue: str | None = None,
        priority: int = 0,
        correlation_id: str | None = None,
        actor: str | None = None,
    ) -> list[tuple[RunRecord, bool]]:
        """:meth:`start_many`, returning each run as stored and whether this call created
        it (False where its idempotency key named a run already, or repeats one earlier in
        the batch)."""
        definition = self._resolve(workflow)
        items = [as_start(item, index) for index, item in enumerate(starts)]
        if len(items) > MAX_START_MANY:
            raise WorkflowError(
                f"start_many takes at most {MAX_START_MANY} runs per call, got {len(items)}; "
                "split the batch"
            )
        queue_name = queue or definition.queue
        spec = self.queues.get(queue_name)
        if spec is not None and spec.max_depth is not None and len(items) > spec.max_depth:
            raise WorkflowError(
                f"{len(items)} runs can never fit queue {queue_name!r} (max_depth="
                f"{spec.max_depth}); split the batch"
            )
        encoded = []
        for index, item in enumerate(items):
            try:
                encoded.append(definition.signature.encode_call(item.args, item.kwargs))
            except SerializationError as exc:
                raise SerializationError(f"start_many item {index}: {exc}") from exc
        if not items:
            return []
        now = utc_now()
        with tracing.start_span(definition.name, correlation_id, runs=len(items)) as traced:
            news = [
                self._new_run(
                    definition,
                    inputs,
                    traced.traceparent_for_run(),
                    idempotency_key=item.idempotency_key,
                    queue=queue_name,
                    priority=priority if item.priority is None else item.priority,
                    partition_key=item.partition_key,
                    correlation_id=item.correlation_id or correlation_id,
                )
                for item, inputs in zip(items, encoded, strict=True)
            ]
            made = self.store.create_runs(
                news, now, actor or default_actor(), queues={queue_name: spec} if spec else None
            )
        for record, created in made:
            if created:
                instrument.run_started(record.workflow, record.run_id, record.correlation_id)
        for wake in list(self._wakers):
            wake()
        return made

    @staticmethod
    def _new_run(
        definition: WorkflowDef,
        inputs: str,
        traceparent: str,
        *,
        idempotency_key: str | None,
        queue: str,
        priority: int,
        partition_key: str | None,
        correlation_id: str | None,
        debounce_key: str | None = None,
        not_before: datetime | None = None,
    ) -> NewRun:
        return NewRun(
            run_id=time_ordered_hex(),
            workflow=definition.name,
            queue=queue,
            inputs=inputs,
            inputs_hash=hashlib.sha256(inputs.encode()).hexdigest(),
            idempotency_key=idempotency_key,
            priority=priority,
            partition_key=partition_key,
            correlation_id=correlation_id or time_ordered_hex(),
            debounce_key=debounce_key,
            not_before=not_before,
            trace_context=traceparent,
        )

    def send_event(
        self,
        run: str,
        name: str,
        payload: Any = None,
        *,
        event_key: str | None = None,
        actor: str | None = None,
    ) -> None:
        """Deliver an event to a run (by run id or idempotency key). Committed on return;
        a repeated ``event_key`` is stored once."""
        text = codec.dumps(payload, what="the event payload")
        self.store.send_event(
            run, name, text, event_key=event_key, now=utc_now(), actor=actor or default_actor()
        )
        for wake in list(self._wakers):
            wake()

    def wake_workers(self) -> None:
        """Tell this process's workers that work may be ready (others poll)."""
        for wake in list(self._wakers):
            wake()

    def handle(self, run_id: str) -> RunHandle:
        return RunHandle(self, run_id)


def _step_wrapper(definition: StepDef) -> Callable[..., Any]:
    fn = definition.fn
    if definition.is_async:

        @functools.wraps(fn)
        def async_wrapper(*args: Any, **kwargs: Any) -> Coroutine[Any, Any, Any]:
            execution = current_execution(definition.name)
            if not execution.is_async:
                raise WorkflowError(
                    f"async step {definition.name} was called from the sync workflow "
                    f"{execution.workflow.name}; make the workflow async or the step sync"
                )
            return execution.call_step_async(definition, args, kwargs)

        return async_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return current_execution(definition.name).call_step(definition, args, kwargs)

    return wrapper


def _unwatched() -> None:
    """The store cannot tell what other processes commit: nothing to stop."""
