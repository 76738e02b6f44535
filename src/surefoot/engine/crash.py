"""Named crash points at every commit boundary, for durability tests.

``Settings.crash_at = "step.before_commit@3"`` kills the process with SIGKILL
the third time execution passes that point: no ``finally`` blocks, no atexit,
exactly like a power cut. Unset (the default), a crash point is one attribute
read.

| point | where |
| --- | --- |
| ``step.attempt_committed`` | the attempt's start is committed; the step body has not run |
| ``step.before_commit`` | the step body returned; its result is not committed |
| ``step.after_commit`` | the result is committed; the next step has not started |
| ``wait.suspended`` | a durable wait (sleep, event, retry backoff) is committed |
| ``run.before_finish`` | the workflow returned; the run's end is not committed |
| ``compensation.before_commit`` | a compensation ran; it is not committed |
"""

from __future__ import annotations

import os
import signal
import threading

from surefoot.config import CRASH_POINTS

POINTS = CRASH_POINTS


class CrashPoints:
    def __init__(self, spec: str | None) -> None:
        self._name: str | None = None
        self._remaining = 0
        self._lock = threading.Lock()
        if spec:
            name, _, count = spec.partition("@")
            if name not in POINTS:
                raise ValueError(f"unknown crash point {name!r} (known: {sorted(POINTS)})")
            self._name = name
            self._remaining = int(count or "1")

    def reached(self, name: str) -> None:
        if self._name != name:
            return
        with self._lock:
            self._remaining -= 1
            if self._remaining == 0:
                os.kill(os.getpid(), signal.SIGKILL)
