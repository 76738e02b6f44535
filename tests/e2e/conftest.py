"""Fixtures for the CLI end-to-end tests: the CLI bound to this test's store, and the same
app in-process to set up state quickly."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import surefoot as sf
from tests.e2e.cli_app import build_app
from tests.e2e.support import Cli


@pytest.fixture
def cli_env(store_url: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUREFOOT_")}
    env.pop("COLUMNS", None)
    switches = tmp_path / "switches"
    switches.mkdir()
    env.update({"SUREFOOT_STORE_URL": store_url, "CLI_APP_SWITCHES": str(switches)})
    return env


@pytest.fixture
def cli(cli_env: dict[str, str]) -> Cli:
    """The CLI with a wide terminal, so that tables are not folded."""
    return Cli({**cli_env, "COLUMNS": "400"}, Path(cli_env["CLI_APP_SWITCHES"]))


@pytest.fixture
def plain_cli(cli_env: dict[str, str]) -> Cli:
    """The CLI as a script or a CI log runs it: no terminal and no COLUMNS."""
    return Cli(dict(cli_env), Path(cli_env["CLI_APP_SWITCHES"]))


@pytest.fixture
def local_app(
    store_url: str, cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[], sf.App]]:
    """The same app in this process, on the same store."""
    monkeypatch.setenv("CLI_APP_SWITCHES", cli_env["CLI_APP_SWITCHES"])
    apps: list[sf.App] = []

    def factory() -> sf.App:
        app = build_app(store_url)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        app.close()
