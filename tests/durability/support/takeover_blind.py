"""A deliberately broken App for a negative control: its claims hide takeovers.

Every claim comes back as if the run had never been leased before, so the engine keeps
leaving idempotent steps' starts for their ends even after a worker died in one. The
test that a crash loop is recorded after a takeover must fail against it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import surefoot as sf
from surefoot.store.base import ClaimedRun, Store
from surefoot.store.sqlite import SQLiteStore
from tests.durability.support.flows import register


class TakeoverBlindStore(SQLiteStore):
    """Claims that say nothing of the expired lease they took over."""

    def claim(self, worker_id: str, **kwargs: Any) -> list[ClaimedRun]:
        claimed = super().claim(worker_id, **kwargs)
        return [replace(c, taken_over=False, interrupted=()) for c in claimed]


class TakeoverBlindApp(sf.App):
    """An App that opens a :class:`TakeoverBlindStore` for whatever URL it is given."""

    @property
    def store(self) -> Store:
        with self._lock:
            if self._store is None:
                self._store = TakeoverBlindStore(
                    self.settings.store_url, auto_migrate=self.settings.auto_migrate
                )
            return self._store


app = register(TakeoverBlindApp("takeover-blind"))
