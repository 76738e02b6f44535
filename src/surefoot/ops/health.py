"""Health: ``/healthz`` (the process is alive) and ``/readyz`` (it can do its job).

Readiness checks, each reported with its own result: the store answers, its schema is
the one this code needs, and (when workers are expected) at least one worker has
heartbeated recently. The checks run in a helper thread bounded by ``timeout_s``, so
a store that hangs makes the answer "not ready", never a hung probe.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from surefoot.engine.app import App
from surefoot.engine.runtime import utc_now
from surefoot.errors import SchemaOutdatedError, SchemaTooNewError, SurefootError
from surefoot.store.base import SCHEMA_VERSION

_STARTED = time.monotonic()
log = logging.getLogger("surefoot.health")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Readiness:
    ready: bool
    checks: tuple[Check, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "checks": {c.name: {"ok": c.ok, "detail": c.detail} for c in self.checks},
        }


def liveness() -> dict[str, Any]:
    """The process answers: nothing else is checked (a restart would not fix the rest)."""
    return {"status": "alive", "pid": os.getpid(), "uptime_s": round(time.monotonic() - _STARTED)}


def heartbeat_max_age(app: App) -> timedelta:
    """How old the newest heartbeat may be: a live worker beats every ``heartbeat_s``;
    past ``lease_s`` its runs are being taken over anyway."""
    return timedelta(seconds=max(app.settings.lease_s, 3 * app.settings.heartbeat_s))


def _checks(app: App, expect_workers: bool, now: datetime) -> list[Check]:
    try:
        store = app.store
        version = store.schema_version()
    # Details stay in the log: /readyz answers without credentials, and error messages
    # name the store (a file path, a host and database).
    except SchemaOutdatedError as exc:  # reachable, but not usable
        log.warning("not ready: %s", exc)
        detail = "older than this code needs: run `surefoot db upgrade`"
        return [Check("store", True, "reachable"), Check("schema", False, detail)]
    except SchemaTooNewError as exc:
        log.warning("not ready: %s", exc)
        detail = "written by a newer Surefoot: upgrade this server"
        return [Check("store", True, "reachable"), Check("schema", False, detail)]
    except SurefootError as exc:
        log.warning("not ready: the store could not be read: %s", exc)
        return [
            Check("store", False, f"{type(exc).__name__} (details in the server log)"),
            Check("schema", False, "unknown: the store could not be read"),
        ]
    checks = [Check("store", True, "reachable")]
    if version == SCHEMA_VERSION:
        checks.append(Check("schema", True, f"version {version}"))
    else:
        checks.append(
            Check(
                "schema",
                False,
                f"version {version}, this code needs {SCHEMA_VERSION}: run `surefoot db upgrade`",
            )
        )
    if expect_workers:
        try:
            beats = [b for b in store.worker_beats() if b.stopped_at is None]
        except SurefootError as exc:
            log.warning("not ready: worker heartbeats could not be read: %s", exc)
            checks.append(Check("workers", False, f"{type(exc).__name__} (see the server log)"))
            return checks
        limit = heartbeat_max_age(app)
        live = [b for b in beats if now - b.heartbeat_at <= limit]
        if live:
            checks.append(Check("workers", True, f"{len(live)} heartbeating"))
        else:
            checks.append(
                Check(
                    "workers",
                    False,
                    f"no worker heartbeat in the last {limit.total_seconds():g}s",
                )
            )
    return checks


def readiness(
    app: App,
    *,
    expect_workers: bool = True,
    now: datetime | None = None,
    timeout_s: float = 5.0,
) -> Readiness:
    """Whether this process can serve: see the module docstring for the checks."""
    at = now or utc_now()
    box: list[list[Check]] = []
    worker = threading.Thread(
        target=lambda: box.append(_checks(app, expect_workers, at)),
        name="surefoot-readiness",
        daemon=True,
    )
    worker.start()
    worker.join(timeout_s)
    checks = box[0] if box else [Check("store", False, f"no answer within {timeout_s:g}s")]
    return Readiness(all(c.ok for c in checks), tuple(checks))
