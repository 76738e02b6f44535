"""Putting several PostgreSQL writes in one group-commit batch, deterministically."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from surefoot.store.postgres import PostgresStore

Outcome = tuple[str, Any]  # ("ok", result) or ("error", exception)


def calls_in_one_batch(
    store: PostgresStore,
    calls: Sequence[Callable[[], Any]],
    on_return: Callable[[Any], None] | None = None,
) -> list[Outcome]:
    """Each of ``calls`` (a write of ``store``) from its own thread, all in one batch in
    the order given: a first write holds the writer until they all wait for it.
    ``on_return`` is called with each result, on the caller's thread, as soon as its
    write returns."""
    entered, release = threading.Event(), threading.Event()

    def hold(_cur: object) -> None:
        entered.set()
        release.wait(10)

    holder = threading.Thread(target=store._write, args=(hold,))
    holder.start()
    assert entered.wait(10)
    outcomes: list[Outcome] = [("missing", None)] * len(calls)
    callers = []
    for n, call in enumerate(calls):

        def run(n: int = n, call: Callable[[], Any] = call) -> None:
            try:
                result = call()
                if on_return is not None:
                    on_return(result)
                outcomes[n] = ("ok", result)
            except Exception as exc:
                outcomes[n] = ("error", exc)

        caller = threading.Thread(target=run)
        caller.start()
        callers.append(caller)
        deadline = time.monotonic() + 10
        while len(store._committer._pending) != n + 1:
            if time.monotonic() > deadline:
                raise AssertionError("timed out waiting for the caller to queue")
            time.sleep(0.001)
    release.set()
    holder.join(10)
    for caller in callers:
        caller.join(30)
    return outcomes
