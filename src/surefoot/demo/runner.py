"""``surefoot demo``: start a worker and sample runs, show progress, summarise."""

from __future__ import annotations

import time
from collections import Counter

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

from surefoot.domain.records import RunFilter
from surefoot.domain.status import RunStatus
from surefoot.engine.starts import MAX_START_MANY, Start
from surefoot.engine.worker import Worker

console = Console()
SETTLED = {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.NEEDS_REVIEW}


def run_demo(runs_count: int, store: str, *, timeout_s: float = 120.0) -> Counter[str]:
    import os  # noqa: PLC0415

    os.environ["SUREFOOT_STORE_URL"] = store
    from surefoot.demo import app as demo  # noqa: PLC0415 - binds the app to the chosen store

    app = demo.app
    app.settings = app.settings.with_overrides(store_url=store)
    console.print(
        f"[bold]Surefoot demo[/] on {store}: {runs_count} invoices through "
        "fetch -> validate -> durable sleep -> post to a flaky ledger -> notify"
    )
    # The invoices arrive as one batch: committed together, at most MAX_START_MANY a call.
    invoices = [
        Start(args=(f"INV-{n:04d}",), idempotency_key=f"demo-INV-{n:04d}")
        for n in range(1, runs_count + 1)
    ]
    run_ids = [
        handle.run_id
        for first in range(0, len(invoices), MAX_START_MANY)
        for handle in app.start_many(demo.process_invoice, invoices[first : first + MAX_START_MANY])
    ]
    counts: Counter[str] = Counter()
    with (
        Worker(app, concurrency=8),
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            console=console,
        ) as progress,
    ):
        task = progress.add_task("settling", total=len(run_ids))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            runs = app.store.list_runs(RunFilter(limit=len(run_ids) + 1000))
            mine = [r for r in runs if r.run_id in set(run_ids)]
            counts = Counter(r.status.value for r in mine)
            settled = sum(counts[s.value] for s in SETTLED)
            progress.update(
                task,
                completed=settled,
                description="  ".join(f"{k}={v}" for k, v in sorted(counts.items())),
            )
            if settled == len(run_ids):
                break
            time.sleep(0.25)
    postings = demo.ledger.count_postings()
    duplicates = {k: v for k, v in postings.items() if v > 1}
    console.print(f"runs: {dict(counts)}")
    console.print(
        f"ledger postings: {sum(postings.values())}, duplicated invoices: {len(duplicates)}"
    )
    console.print("next:")
    for command in ("runs list", "review list", "dlq list", "audit verify"):
        console.print(f"  surefoot {command} surefoot.demo.app:app --store {store}")
    return counts
