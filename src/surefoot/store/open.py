"""Open a store from its URL."""

from __future__ import annotations

from urllib.parse import urlsplit

from surefoot.errors import StoreUrlError
from surefoot.store.base import Store


def open_store(url: str, *, auto_migrate: bool = True, create: bool = True) -> Store:
    """Open (and with ``create``, create) the store at ``url``."""
    scheme = urlsplit(url).scheme
    # Each store is imported when used: a SQLite worker starts without loading psycopg.
    if scheme == "sqlite":
        from surefoot.store.sqlite import SQLiteStore  # noqa: PLC0415

        return SQLiteStore(url, auto_migrate=auto_migrate, create=create)
    if scheme in ("postgresql", "postgres"):
        from surefoot.store.postgres import PostgresStore  # noqa: PLC0415

        return PostgresStore(url, auto_migrate=auto_migrate, create=create)
    raise StoreUrlError(
        f"unknown store URL scheme {scheme!r} (expected sqlite:///path/to/file.db or "
        "postgresql://user@host:5432/database)"
    )
