"""Fixtures for durability tests: an external ledger, an App with the durability
workflows on this test's store, and subprocesses that are always reaped."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import surefoot as sf
from tests.durability.support import flows
from tests.durability.support.ledger import LEDGER_ENV, Ledger
from tests.durability.support.procs import Processes


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Ledger:
    """The external system's ledger; in-process steps find it through the environment."""
    path = tmp_path / "ledger.db"
    monkeypatch.setenv(LEDGER_ENV, str(path))
    return Ledger(path)


@pytest.fixture
def app(make_app: Callable[..., sf.App], ledger: Ledger) -> sf.App:
    """The durability workflows, bound to this test's store."""
    return flows.register(make_app("durability"))


@pytest.fixture
def processes(tmp_path: Path, store_url: str, ledger: Ledger) -> Iterator[Processes]:
    procs = Processes(tmp_path, store_url, ledger.path)
    try:
        yield procs
    finally:
        procs.close()
