"""The embedded default store: one SQLite file in WAL mode with ``synchronous=FULL``."""

from __future__ import annotations

from surefoot.store.sqlite.access import AccessMixin
from surefoot.store.sqlite.operators import OperatorMixin
from surefoot.store.sqlite.stats import StatsMixin


class SQLiteStore(OperatorMixin, AccessMixin, StatsMixin):
    """A :class:`~surefoot.store.base.Store` over one SQLite file."""


__all__ = ["SQLiteStore"]
