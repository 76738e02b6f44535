"""The app ``surefoot serve`` and ``surefoot users|tokens`` load in the CLI tests (the
store comes from ``--store``)."""

from __future__ import annotations

import surefoot as sf
from tests.web import flows

app = flows.declare(sf.App("served", poll_interval_s=0.05))
