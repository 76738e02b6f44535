"""Helpers for the CLI end-to-end tests."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import surefoot as sf

PROJECT_ROOT = Path(__file__).resolve().parents[2]
APP = "tests.e2e.cli_app:app"


@dataclass
class Cli:
    """``python -m surefoot`` as a subprocess, in the project root, with a fixed environment."""

    env: dict[str, str]
    switches: Path

    def __call__(self, *args: str, expect: int | None = 0) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "surefoot", *args],
            cwd=PROJECT_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if expect is not None:
            assert done.returncode == expect, (
                f"surefoot {' '.join(args)} exited {done.returncode}, expected {expect}\n"
                f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
            )
        return done

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").stdout)

    def switch_on(self, name: str) -> None:
        (self.switches / name).touch()

    def switch_off(self, name: str) -> None:
        (self.switches / name).unlink()


def drain(app: sf.App) -> None:
    """Run a worker in this thread until no run is ready."""
    sf.Worker(app, concurrency=2).run(install_signal_handlers=False, until_idle=True)
