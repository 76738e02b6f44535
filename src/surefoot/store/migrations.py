"""Numbered, immutable SQL migrations shipped inside the package."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations(dialect: str) -> list[Migration]:
    folder = resources.files("surefoot.store.sql").joinpath(dialect)
    found: list[Migration] = []
    for item in folder.iterdir():
        match = _NAME.match(item.name)
        if match:
            found.append(Migration(int(match.group(1)), item.name, item.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise RuntimeError(f"migration numbering has a gap before {migration.name}")
    return found


# The table that records applied migrations; the migrator and ``schema_sql`` share this text.
SCHEMA_TABLE_DDL = (
    "CREATE TABLE IF NOT EXISTS surefoot_schema "
    "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
)
_NOW = {
    "sqlite": "strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')",
    "postgres": "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')",
}


def schema_sql(dialect: str) -> str:
    """The whole schema as DDL (``surefoot db sql``): the migrations table, every migration
    in order, and the rows that mark them applied, so a store built from this text opens at
    the current version."""
    migrations = load_migrations(dialect)
    parts = [f"{SCHEMA_TABLE_DDL};"]
    parts += [m.sql for m in migrations]
    parts += [
        f"INSERT INTO surefoot_schema (version, name, applied_at) VALUES "
        f"({m.version}, '{m.name}', {_NOW[dialect]});"
        for m in migrations
    ]
    return "\n".join(parts) + "\n"
