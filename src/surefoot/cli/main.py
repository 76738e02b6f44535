"""``surefoot`` (also ``python -m surefoot``).

``surefoot worker`` is parsed and run without importing the other commands (Rich tables,
the operator layer, users and tokens): a worker that restarts after a crash is back at
work sooner. Every other command goes through :data:`surefoot.cli.commands.cli`.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from surefoot.errors import ConfigError, SurefootError


def main() -> None:
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        if sys.argv[1:2] == ["worker"]:
            from surefoot.cli.worker import worker_cli  # noqa: PLC0415 - see the docstring

            worker_cli(args=sys.argv[2:], prog_name=f"{_program()} worker")
        else:
            from surefoot.cli.commands import cli  # noqa: PLC0415 - see the docstring

            cli()
    except SurefootError as exc:
        # One plain line: scripts grep it, and user text in it is never read as markup.
        message = " ".join(str(exc).split())
        sys.stderr.write(f"error: {type(exc).__name__}: {message}\n")
        sys.exit(2 if isinstance(exc, ConfigError) else 1)


def _program() -> str:
    """How the program was called, as usage lines show it."""
    called = os.path.basename(sys.argv[0])
    return "python -m surefoot" if called == "__main__.py" else called


def __getattr__(name: str) -> Any:
    # ``from surefoot.cli.main import cli`` keeps working, without its cost at import.
    if name == "cli":
        from surefoot.cli.commands import cli  # noqa: PLC0415 - see the docstring

        return cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
