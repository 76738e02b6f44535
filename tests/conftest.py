"""Fixtures shared by every test layer: a fresh SQLite store per test, apps, workers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import surefoot as sf


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """A new, empty SQLite store file for this test."""
    return f"sqlite:///{tmp_path / 'surefoot.db'}"


@pytest.fixture
def make_app(store_url: str) -> Iterator[Callable[..., sf.App]]:
    """Build apps bound to this test's store, with instant retries and fast polling."""
    apps: list[sf.App] = []

    def factory(name: str = "test", **overrides: Any) -> sf.App:
        settings: dict[str, Any] = {
            "store": store_url,
            "instant_retries": True,
            "poll_interval_s": 0.02,
            "lease_s": 5.0,
            "heartbeat_s": 1.0,
            "drain_timeout_s": 5.0,
        }
        settings.update(overrides)
        app = sf.App(name, **settings)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        app.close()


@pytest.fixture
def start_worker() -> Iterator[Callable[..., sf.Worker]]:
    """Start in-thread workers; every one is drained and stopped at teardown."""
    workers: list[sf.Worker] = []

    def factory(app: sf.App, **options: Any) -> sf.Worker:
        worker = sf.Worker(app, **options).start()
        workers.append(worker)
        return worker

    yield factory
    for worker in workers:
        worker.stop(timeout=10)
