"""The embedded default store: one SQLite file in WAL mode with ``synchronous=FULL``."""

from __future__ import annotations

from surefoot.store.sqlite.operators import OperatorMixin


class SQLiteStore(OperatorMixin):
    """A :class:`~surefoot.store.base.Store` over one SQLite file."""


__all__ = ["SQLiteStore"]
