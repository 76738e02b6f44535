"""Every ``surefoot`` command; :mod:`surefoot.cli.main` is the entry point."""

from __future__ import annotations

import dataclasses
import sys
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.progress import Progress

from surefoot.cli import render
from surefoot.cli.access import tokens_cli, users_cli
from surefoot.cli.loading import load_app, parse_json
from surefoot.cli.observability import alerts_cli
from surefoot.cli.serve import serve
from surefoot.cli.worker import worker
from surefoot.config import from_environment
from surefoot.demo.runner import run_demo
from surefoot.domain.failures import FailureClass
from surefoot.domain.records import DeadLetterFilter, RunFilter
from surefoot.domain.status import ReviewStatus, RunStatus
from surefoot.engine.app import default_actor
from surefoot.errors import ConfigError, SurefootError
from surefoot.ops import audit as audit_ops
from surefoot.ops import dead_letter, intake, queues, review, routes, runs
from surefoot.store.migrations import schema_sql
from surefoot.store.open import open_store

cli = typer.Typer(
    help="Surefoot: durable business automation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
runs_cli = typer.Typer(help="List, inspect, cancel and fork runs.", no_args_is_help=True)
dlq_cli = typer.Typer(
    help="The dead-letter queue: list, show, redrive, discard.", no_args_is_help=True
)
review_cli = typer.Typer(help="The review and exception queue.", no_args_is_help=True)
queues_cli = typer.Typer(
    help="Pause and resume queues; see circuit breakers.", no_args_is_help=True
)
audit_cli = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
db_cli = typer.Typer(help="The store's schema.", no_args_is_help=True)
cli.add_typer(runs_cli, name="runs")
cli.add_typer(dlq_cli, name="dlq")
cli.add_typer(review_cli, name="review")
cli.add_typer(queues_cli, name="queues")
cli.add_typer(audit_cli, name="audit")
cli.add_typer(db_cli, name="db")
cli.add_typer(users_cli, name="users")
cli.add_typer(tokens_cli, name="tokens")
cli.add_typer(alerts_cli, name="alerts")
cli.command("serve")(serve)
cli.command("worker")(worker)

AppArg = Annotated[str, typer.Argument(help="The app, as module:attribute.")]
StoreOpt = Annotated[str | None, typer.Option("--store", help="Store URL (overrides the app's).")]
ActorOpt = Annotated[str | None, typer.Option("--actor", help="Who acts (default: OS user).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _actor(actor: str | None) -> str:
    return actor or default_actor()


def _since(minutes: float | None) -> datetime | None:
    return None if minutes is None else datetime.now(UTC) - timedelta(minutes=minutes)


# -- start ------------------------------------------------------------------------------------
@cli.command()
def start(
    app: AppArg,
    workflow: Annotated[str, typer.Argument(help="Workflow name.")],
    input_json: Annotated[
        str | None,
        typer.Option(
            "--input", help="Inputs as JSON: a list of positional or an object of named args."
        ),
    ] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="Same key, same run.")] = None,
    queue: Annotated[str | None, typer.Option(help="Queue (default: the workflow's).")] = None,
    priority: Annotated[int, typer.Option(help="Higher runs first.")] = 0,
    wait: Annotated[bool, typer.Option(help="Wait for the result.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait with --wait.")] = 60.0,
    store: StoreOpt = None,
    actor: ActorOpt = None,
) -> None:
    """Start a run; prints its run id once it is committed."""
    loaded = load_app(app, store=store, create=True)
    handle = loaded.start_json(
        workflow,
        parse_json(input_json, "--input"),
        idempotency_key=idempotency_key,
        queue=queue,
        priority=priority,
        actor=_actor(actor),
    )
    render.console.print(handle.run_id)
    if wait:
        render.as_json(handle.result(timeout=timeout))


@cli.command("start-many")
def start_many(
    app: AppArg,
    workflow: Annotated[str, typer.Argument(help="Workflow name.")],
    path: Annotated[
        str,
        typer.Argument(
            help="JSON lines, one run each: {input, idempotency_key?, partition_key?,"
            " priority?}; - reads standard input."
        ),
    ],
    batch: Annotated[int, typer.Option(help="Runs per transaction (1-1000).")] = 1000,
    queue: Annotated[str | None, typer.Option(help="Queue (default: the workflow's).")] = None,
    priority: Annotated[int, typer.Option(help="Priority of lines that give none.")] = 0,
    store: StoreOpt = None,
    actor: ActorOpt = None,
) -> None:
    """Start one run per line of a file, committed a batch at a time; prints the run ids.

    Every line is checked before anything is committed."""
    text = sys.stdin.read() if path == "-" else _read_text(path)
    lines = intake.read_lines(text.splitlines())
    loaded = load_app(app, store=store, create=True)
    done: list[str] = []
    with Progress(console=render.err) as progress:
        task = progress.add_task("starting", total=len(lines))

        def committed(ids: list[str]) -> None:
            for run_id in ids:
                render.console.print(run_id)
            done.extend(ids)
            progress.advance(task, len(ids))

        try:
            intake.start_lines(
                loaded,
                workflow,
                lines,
                batch=batch,
                queue=queue,
                priority=priority,
                actor=_actor(actor),
                progress=committed,
            )
        except SurefootError:
            if done:  # nothing is committed when the first batch (or a check) fails
                render.err.print(
                    f"stopped at line {lines[len(done)].number}: the {len(done)} run(s) of the"
                    " lines before it are committed; starting the file again does not start"
                    " a line with an idempotency key twice"
                )
            raise
    render.err.print(f"started {len(done)} run(s) from {len(lines)} line(s)")


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as file:
            return file.read()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc


@cli.command("send-event")
def send_event(
    app: AppArg,
    run: Annotated[str, typer.Argument(help="Run id or idempotency key.")],
    name: Annotated[str, typer.Argument(help="Event name.")],
    payload: Annotated[str | None, typer.Option(help="Payload as JSON.")] = None,
    event_key: Annotated[str | None, typer.Option(help="Dedupe key.")] = None,
    store: StoreOpt = None,
    actor: ActorOpt = None,
) -> None:
    """Deliver an event to a run waiting in ctx.wait_for (or about to)."""
    loaded = load_app(app, store=store)
    loaded.send_event(
        run, name, parse_json(payload, "--payload"), event_key=event_key, actor=_actor(actor)
    )
    render.console.print(f"event {name!r} committed for {run}")


# -- runs -----------------------------------------------------------------------------------------
@runs_cli.command("list")
def runs_list(
    app: AppArg,
    status: Annotated[list[RunStatus] | None, typer.Option(help="Filter by status.")] = None,
    workflow: Annotated[str | None, typer.Option(help="Filter by workflow.")] = None,
    queue: Annotated[str | None, typer.Option(help="Filter by queue.")] = None,
    correlation_id: Annotated[str | None, typer.Option(help="Filter by correlation id.")] = None,
    since_minutes: Annotated[
        float | None, typer.Option(help="Created in the last N minutes.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    json_out: JsonOpt = False,
    store: StoreOpt = None,
) -> None:
    """List runs, newest first."""
    loaded = load_app(app, store=store)
    found, total = runs.list_runs(
        loaded,
        RunFilter(
            status=tuple(status or ()),
            workflow=workflow,
            queue=queue,
            correlation_id=correlation_id,
            created_after=_since(since_minutes),
            limit=limit,
            offset=offset,
        ),
    )
    if json_out:
        render.as_json([dataclasses.asdict(r) for r in found])
    else:
        render.runs_table(found, total, offset)


@runs_cli.command("show")
def runs_show(
    app: AppArg,
    run_id: Annotated[str, typer.Argument(help="Run id or idempotency key.")],
    json_out: JsonOpt = False,
    store: StoreOpt = None,
) -> None:
    """The run's timeline: every step attempt with its outcome, class, rule and key."""
    view = runs.timeline(load_app(app, store=store), run_id)
    if json_out:
        render.as_json(dataclasses.asdict(view))
    else:
        render.timeline(view)


@runs_cli.command("cancel")
def runs_cancel(
    app: AppArg,
    run_id: str,
    reason: Annotated[str | None, typer.Option(help="Why (goes to the audit log).")] = None,
    store: StoreOpt = None,
    actor: ActorOpt = None,
) -> None:
    """Cancel a run: compensations of its committed steps run, then it ends cancelled."""
    loaded = load_app(app, store=store)
    before = runs.get_run(loaded, run_id)
    run = runs.cancel_run(loaded, run_id, actor=_actor(actor), reason=reason)
    render.console.print(f"cancel requested for {run.run_id} (was {before.status})")


@runs_cli.command("fork")
def runs_fork(
    app: AppArg,
    run_id: str,
    from_position: Annotated[int, typer.Option(help="First position to execute again.")],
    input_json: Annotated[
        str | None, typer.Option("--input", help="Edited inputs as JSON.")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask to confirm.")] = False,
    store: StoreOpt = None,
    actor: ActorOpt = None,
) -> None:
    """A new run that reuses committed steps before --from-position."""
    loaded = load_app(app, store=store)
    repeated = runs.steps_to_repeat(loaded, run_id, from_position)
    if repeated and not yes:
        render.err.print(
            "these steps already committed in the source run and will run AGAIN under new "
            "idempotency keys (external systems will not dedupe them):"
        )
        for entry in repeated:
            render.err.print(f"  position {entry.position}: {entry.name}")
        if not typer.confirm("fork anyway?"):
            raise typer.Exit(1)
    new = runs.fork_run(
        loaded,
        run_id,
        from_position=from_position,
        inputs=parse_json(input_json, "--input"),
        actor=_actor(actor),
    )
    render.console.print(new.run_id)


# -- dead-letter ----------------------------------------------------------------------------------
def _dl_filter(
    workflow: str | None,
    failure_class: FailureClass | None,
    reason: str | None,
    since_minutes: float | None,
) -> DeadLetterFilter:
    return DeadLetterFilter(
        workflow=workflow,
        failure_class=failure_class,
        reason_contains=reason,
        after=_since(since_minutes),
    )


WorkflowOpt = Annotated[str | None, typer.Option(help="Filter by workflow.")]
ClassOpt = Annotated[FailureClass | None, typer.Option("--class", help="Filter by class.")]
ReasonOpt = Annotated[str | None, typer.Option(help="Reason or error contains this text.")]
SinceOpt = Annotated[float | None, typer.Option(help="Dead-lettered in the last N minutes.")]


@dlq_cli.command("list")
def dlq_list(
    app: AppArg,
    workflow: WorkflowOpt = None,
    failure_class: ClassOpt = None,
    reason: ReasonOpt = None,
    since_minutes: SinceOpt = None,
    json_out: JsonOpt = False,
    store: StoreOpt = None,
) -> None:
    """Open dead-letter entries."""
    found = dead_letter.matching(
        load_app(app, store=store), _dl_filter(workflow, failure_class, reason, since_minutes)
    )
    if json_out:
        render.as_json([dataclasses.asdict(d) for d in found])
    else:
        render.dead_letters_table(found)


@dlq_cli.command("show")
def dlq_show(app: AppArg, run_id: str, store: StoreOpt = None) -> None:
    """A dead-letter entry and the run's timeline."""
    loaded = load_app(app, store=store)
    render.as_json(dataclasses.asdict(dead_letter.get_dead_letter(loaded, run_id)))
    render.timeline(runs.timeline(loaded, run_id))


def _bulk(loaded: Any, dl_filter: DeadLetterFilter, verb: str, yes: bool, action: Any) -> None:
    targets = dead_letter.matching(loaded, dl_filter)
    if not targets:
        render.console.print("no dead-letter entry matches")
        return
    if not yes and not typer.confirm(f"{verb} {len(targets)} run(s)?"):
        raise typer.Exit(1)
    with Progress(console=render.err) as progress:
        task = progress.add_task(verb, total=len(targets))
        result = dead_letter.bulk(
            loaded,
            dl_filter,
            action,
            progress=lambda done, _total: progress.update(task, completed=done),
        )
    render.console.print(f"{verb}: {result.done} of {result.matched}")
    for run_id, why in (result.refused or {}).items():
        render.err.print(f"  refused {run_id}: {why}")


@dlq_cli.command("redrive")
def dlq_redrive(
    app: AppArg,
    run_ids: Annotated[list[str] | None, typer.Argument(help="Runs to redrive.")] = None,
    all_matching: Annotated[
        bool, typer.Option(help="Redrive every entry the filters match.")
    ] = False,
    workflow: WorkflowOpt = None,
    failure_class: ClassOpt = None,
    reason: ReasonOpt = None,
    since_minutes: SinceOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask to confirm.")] = False,
    note: Annotated[str | None, typer.Option(help="Why (goes to the audit log).")] = None,
    store: StoreOpt = None,
    actor: ActorOpt = None,
) -> None:
    """Resume dead-lettered runs from the step that failed."""
    loaded = load_app(app, store=store)
    who = _actor(actor)
    if run_ids:
        for run_id in run_ids:
            dead_letter.redrive(loaded, run_id, actor=who, reason=note)
            render.console.print(f"redriven {run_id}")
        return
    if not all_matching:
        raise ConfigError("name runs to redrive, or pass --all-matching with filters")
    _bulk(
        loaded,
        _dl_filter(workflow, failure_class, reason, since_minutes),
        "redrive",
        yes,
        lambda run_id: dead_letter.redrive(loaded, run_id, actor=who, reason=note),
    )


@dlq_cli.command("discard")
def dlq_discard(
    app: AppArg,
    run_ids: Annotated[list[str] | None, typer.Argument(help="Runs to discard.")] = None,
    reason_text: Annotated[str, typer.Option("--reason", help="Why (required).")] = "",
    all_matching: Annotated[
        bool, typer.Option(help="Discard every entry the filters match.")
    ] = False,
    workflow: WorkflowOpt = None,
    failure_class: ClassOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y")] = False,
    store: StoreOpt = None,
    actor: ActorOpt = None,
) -> None:
    """Close dead-letter entries without running them again."""
    loaded = load_app(app, store=store)
    who = _actor(actor)
    if not reason_text.strip():
        raise ConfigError("discard needs --reason")
    if run_ids:
        for run_id in run_ids:
            dead_letter.discard(loaded, run_id, actor=who, reason=reason_text)
            render.console.print(f"discarded {run_id}")
        return
    if not all_matching:
        raise ConfigError("name runs to discard, or pass --all-matching with filters")
    _bulk(
        loaded,
        _dl_filter(workflow, failure_class, None, None),
        "discard",
        yes,
        lambda run_id: dead_letter.discard(loaded, run_id, actor=who, reason=reason_text),
    )


# -- review ---------------------------------------------------------------------------------------
@review_cli.command("list")
def review_list(
    app: AppArg,
    status: Annotated[
        ReviewStatus | None, typer.Option(help="open, decided or cancelled.")
    ] = ReviewStatus.OPEN,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    json_out: JsonOpt = False,
    store: StoreOpt = None,
) -> None:
    """Review items, highest priority first."""
    found = review.list_reviews(load_app(app, store=store), status, limit=limit, offset=offset)
    if json_out:
        render.as_json([dataclasses.asdict(i) for i in found])
    else:
        render.reviews_table(found)


@review_cli.command("show")
def review_show(app: AppArg, item_id: str, store: StoreOpt = None) -> None:
    """One review item with its payload."""
    item = review.get_review(load_app(app, store=store), item_id)
    data = dataclasses.asdict(item) | {"payload": review.payload(item)}
    render.as_json(data)


@review_cli.command("decide")
def review_decide(
    app: AppArg,
    item_id: str,
    action: Annotated[str, typer.Argument(help="One of the item's actions.")],
    value: Annotated[str | None, typer.Option(help="JSON value (skip / happened).")] = None,
    inputs: Annotated[str | None, typer.Option(help="Edited step inputs as a JSON object.")] = None,
    comment: Annotated[str | None, typer.Option(help="Why.")] = None,
    store: StoreOpt = None,
    actor: ActorOpt = None,
) -> None:
    """Decide a review item; the run resumes."""
    options: dict[str, Any] = {}
    if value is not None:
        options["value"] = parse_json(value, "--value")
    decided = review.decide(
        load_app(app, store=store),
        item_id,
        action,
        actor=_actor(actor),
        inputs=parse_json(inputs, "--inputs"),
        comment=comment,
        **options,
    )
    render.console.print(f"decided {decided.item_id}: {action}; run {decided.run_id} resumes")


# -- queues ---------------------------------------------------------------------------------------
@queues_cli.command("list")
def queues_list(app: AppArg, store: StoreOpt = None) -> None:
    """Queues with their paused flag, ready runs and declared limits; rate limits; breakers."""
    loaded = load_app(app, store=store)
    for name, paused, ready in queues.list_queues(loaded):
        spec = loaded.queues.get(name)
        limits = ""
        if spec is not None:
            parts = [
                f"{label}={value}"
                for label, value in (
                    ("concurrency", spec.concurrency),
                    ("worker_concurrency", spec.worker_concurrency),
                    ("max_depth", spec.max_depth),
                )
                if value is not None
            ]
            limits = " ".join(parts)
        state = "PAUSED" if paused else "active"
        render.console.print(f"{name:<24} {state:<8} ready={ready:<6} {limits}".rstrip())
    for limit in loaded.rate_limits.values():
        render.console.print(f"rate limit {limit.key}: {limit.per_s:g}/s, burst {limit.burst}")
    for breaker in queues.list_breakers(loaded):
        render.console.print(
            f"breaker {breaker.key}: {breaker.state.value} "
            f"(consecutive failures {breaker.consecutive_failures})"
        )


@queues_cli.command("reset-breaker")
def queues_reset_breaker(
    app: AppArg,
    key: str,
    reason: str | None = None,
    store: StoreOpt = None,
    actor: ActorOpt = None,
) -> None:
    """Close a circuit breaker by hand; waiting runs retry at their next wake-up."""
    before = queues.reset_breaker(
        load_app(app, store=store), key, actor=_actor(actor), reason=reason
    )
    render.console.print(f"breaker {key}: {before.state.value} -> closed")


@queues_cli.command("pause")
def queues_pause(
    app: AppArg,
    queue: str,
    reason: str | None = None,
    store: StoreOpt = None,
    actor: ActorOpt = None,
) -> None:
    """Stop claiming runs of a queue; runs already executing go on until they next wait
    or finish."""
    queues.pause(load_app(app, store=store), queue, actor=_actor(actor), reason=reason)
    render.console.print(f"paused {queue}")


@queues_cli.command("resume")
def queues_resume(
    app: AppArg,
    queue: str,
    reason: str | None = None,
    store: StoreOpt = None,
    actor: ActorOpt = None,
) -> None:
    """Claim runs of a paused queue again."""
    queues.resume(load_app(app, store=store), queue, actor=_actor(actor), reason=reason)
    render.console.print(f"resumed {queue}")


# -- audit ----------------------------------------------------------------------------------------
@audit_cli.command("list")
def audit_list(
    app: AppArg,
    run_id: Annotated[str | None, typer.Option(help="Only this run.")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 200,
    store: StoreOpt = None,
) -> None:
    """Audit entries, oldest first."""
    loaded = load_app(app, store=store)
    found = []
    for entry in audit_ops.entries(loaded, entity_id=run_id):
        found.append(entry)
        if len(found) >= limit:
            break
    render.audit_table(found)


@audit_cli.command("head")
def audit_head(app: AppArg, store: StoreOpt = None) -> None:
    """Print the chain head as SEQ:HASH; keep copies off this machine."""
    head = load_app(app, store=store).store.audit_head()
    render.console.print(f"{head[0]}:{head[1]}" if head else "0:" + "0" * 64)


@audit_cli.command("verify")
def audit_verify(
    app: AppArg,
    expect: Annotated[
        str | None, typer.Option(help="A SEQ:HASH from `audit head` kept elsewhere.")
    ] = None,
    store: StoreOpt = None,
) -> None:
    """Check the hash chain; exit 1 if any entry was modified, deleted or reordered."""
    loaded = load_app(app, store=store)
    anchor = audit_ops.parse_anchor(expect) if expect else None
    with Progress(console=render.err, transient=True) as progress:
        task = progress.add_task("verifying", total=None)
        problems = audit_ops.verify(
            loaded, progress=lambda n: progress.update(task, completed=n), expect=anchor
        )
    head = loaded.store.audit_head()
    if problems:
        for problem in problems:
            render.err.print(f"[red]entry {problem.seq}: {problem.problem}[/]")
        raise typer.Exit(1)
    render.console.print(
        f"audit chain intact: {head[0] if head else 0} entries, head "
        f"{head[1][:16] if head else '-'}"
    )


# -- db -------------------------------------------------------------------------------------------
@db_cli.command("upgrade")
def db_upgrade(
    store: Annotated[
        str | None, typer.Option(help="Store URL (default SUREFOOT_STORE_URL).")
    ] = None,
) -> None:
    """Apply pending schema migrations."""
    url = store or from_environment().store_url
    opened = open_store(url, auto_migrate=True)
    render.console.print(f"{opened.url}: schema version {opened.schema_version()}")
    opened.close()


@db_cli.command("sql")
def db_sql(
    dialect: Annotated[str, typer.Option(help="sqlite or postgres (postgresql)")] = "sqlite",
) -> None:
    """Print the schema DDL (migrations table, every migration, applied-version rows)."""
    known = {"sqlite": "sqlite", "postgres": "postgres", "postgresql": "postgres"}
    if dialect not in known:
        raise ConfigError(f"--dialect must be sqlite or postgres, got {dialect!r}")
    sys.stdout.write(schema_sql(known[dialect]))


@cli.command("routes")
def routes_cmd(app: AppArg, json_out: JsonOpt = False, store: StoreOpt = None) -> None:
    """Routes per failure class (defaults and overrides) and classifier rules in order."""
    loaded = load_app(app, store=store)
    route_rows, rule_rows = routes.route_table(loaded), routes.rule_table(loaded)
    if json_out:
        render.as_json(
            {
                "routes": [dataclasses.asdict(r) for r in route_rows],
                "rules": [dataclasses.asdict(r) for r in rule_rows],
            }
        )
        return
    render.routes_tables(route_rows, rule_rows)


@cli.command()
def demo(
    runs_count: Annotated[
        int, typer.Option("--runs", help="How many runs to start (with --no-serve).")
    ] = 40,
    store: Annotated[str, typer.Option(help="Store URL.")] = "sqlite:///surefoot-demo.db",
    serve: Annotated[
        bool,
        typer.Option(
            "--serve/--no-serve",
            help="Serve the console with a live sample app (default), or run sample runs in "
            "the terminal to completion and exit.",
        ),
    ] = True,
    host: Annotated[str, typer.Option(help="Console address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Console port.")] = 8000,
) -> None:
    """The accounts-payable demo on SQLite: the console with invoices paid through a
    flaky service (sign in as admin), or with --no-serve a terminal run to completion."""
    if serve:
        # Imported here: the web stack would slow every other command's start-up.
        from surefoot.demo.serve import serve_demo  # noqa: PLC0415

        serve_demo(store, host=host, port=port)
    else:
        run_demo(runs_count, store)
