"""RunHandle: what ``app.start`` returns."""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any

from surefoot.domain.records import RunRecord
from surefoot.domain.status import RunStatus
from surefoot.errors import (
    ResultTimeoutError,
    RunCancelledError,
    RunFailedError,
    RunNotFoundError,
)

if TYPE_CHECKING:
    from surefoot.engine.app import App

_FAST_LOOKS = 20  # result() looks every 1 ms this many times before backing off


class RunHandle:
    """A committed run. ``result()`` waits for its end; the run does not need this
    process to survive: any worker on the store carries it."""

    def __init__(self, app: App, run_id: str) -> None:
        self.app = app
        self.run_id = run_id

    def __repr__(self) -> str:
        return f"RunHandle({self.run_id!r})"

    def record(self) -> RunRecord:
        run = self.app.store.get_run(self.run_id)
        if run is None:
            raise RunNotFoundError(f"no run {self.run_id!r}")
        return run

    def status(self) -> RunStatus:
        return self.record().status

    def result(self, timeout: float | None = None) -> Any:
        """The workflow's output once the run succeeded.

        Raises ``RunFailedError`` (reason and class in the message),
        ``RunCancelledError``, or ``ResultTimeoutError`` after ``timeout`` seconds.
        """
        with self.app.awaiting_changes():
            return self._wait_for_result(timeout)

    def _wait_for_result(self, timeout: float | None) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        # A worker of this process wakes the wait below when it ends an execution, and
        # so does another process's: on SQLite any commit it makes, on PostgreSQL the end
        # of a run it carried (NOTIFY). Polling only backs those up (from 2 ms, backing
        # off to 250 ms); a store that tells nothing is polled every 1 ms for the first
        # ~20 ms (a short run ends within milliseconds; each look reads one row).
        woken = self.app.has_local_workers() or self.app.watch_store_changes()
        delay, looks = (0.002, _FAST_LOOKS) if woken else (0.001, 0)
        while True:
            since = self.app.changes()
            run = self.record()
            if run.status.is_terminal:
                return self._outcome(run)
            if deadline is not None and time.monotonic() >= deadline:
                raise ResultTimeoutError(
                    f"run {self.run_id} is still {run.status} after {timeout:g}s"
                )
            wait = delay if deadline is None else min(delay, max(0.0, deadline - time.monotonic()))
            self.app.wait_for_change(wait, since)
            looks += 1
            if looks >= _FAST_LOOKS:
                delay = min(delay * 2, 0.25)

    async def result_async(self, timeout: float | None = None) -> Any:
        return await asyncio.to_thread(self.result, timeout)

    def _outcome(self, run: RunRecord) -> Any:
        if run.status is RunStatus.SUCCEEDED:
            return (
                self.app.workflow_named(run.workflow).decode_output(run.output)
                if run.workflow in self.app.workflows
                else json.loads(run.output or "null")
            )
        detail = json.loads(run.error or "{}")
        reason = detail.get("reason") or "no reason recorded"
        if run.status is RunStatus.CANCELLED:
            raise RunCancelledError(f"run {self.run_id} was cancelled: {reason}")
        cls = detail.get("failure_class", "unknown")
        raise RunFailedError(f"run {self.run_id} failed ({cls}): {reason}")
