"""Fixtures of the integration tests: a fault server per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.support.fault_server import FaultServer


@pytest.fixture
def server() -> Iterator[FaultServer]:
    """A fresh fault server on an ephemeral loopback port, stopped after the test."""
    with FaultServer() as running:
        yield running
