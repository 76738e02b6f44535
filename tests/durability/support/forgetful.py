"""A deliberately broken App for the negative control: its store forgets committed steps.

Replay reads a history whose journal has lost every step result, so each
execution runs committed steps again. The exactly-once checker must catch it;
if it did not, a green durability run could be proving nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import surefoot as sf
from surefoot.domain.records import History
from surefoot.domain.status import JournalKind
from surefoot.store.base import Store
from surefoot.store.sqlite import SQLiteStore
from tests.durability.support.flows import register


class ForgetfulStore(SQLiteStore):
    """Claims and history loads come back without the committed step results."""

    @staticmethod
    def _histories_txn(cur: sqlite3.Cursor, run_ids: Sequence[str]) -> dict[str, History]:
        histories = SQLiteStore._histories_txn(cur, run_ids)
        for history in histories.values():
            for position, entry in list(history.journal.items()):
                if entry.kind is JournalKind.STEP:
                    del history.journal[position]
        return histories


class ForgetfulApp(sf.App):
    """An App that opens a :class:`ForgetfulStore` for whatever URL it is given."""

    @property
    def store(self) -> Store:
        with self._lock:
            if self._store is None:
                self._store = ForgetfulStore(
                    self.settings.store_url, auto_migrate=self.settings.auto_migrate
                )
            return self._store


app = register(ForgetfulApp("forgetful"))
