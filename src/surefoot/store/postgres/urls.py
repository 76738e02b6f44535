"""A PostgreSQL store URL: checked, given Surefoot's connection defaults, and shown
without its password."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from surefoot.errors import StoreUrlError

# Connection settings Surefoot chooses unless the URL says otherwise: fail fast on a
# dead network instead of hanging, and name the connections for pg_stat_activity.
_DEFAULTS = {
    "application_name": "surefoot",
    "connect_timeout": "10",
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
}

_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&#]*")


def redacted(url: str) -> str:
    """The URL without its password (in the user part or the query), for messages."""
    netloc = urlsplit(url).netloc
    userinfo, at, hosts = netloc.rpartition("@")
    if at and ":" in userinfo:
        url = url.replace(netloc, f"{userinfo.split(':', 1)[0]}:***@{hosts}", 1)
    return _QUERY_PASSWORD.sub(r"\1***", url)


def conninfo_for(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise StoreUrlError(
            f"not a PostgreSQL URL: {redacted(url)!r} "
            "(expected postgresql://user@host:5432/database)"
        )
    try:
        given = conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise StoreUrlError(f"invalid PostgreSQL URL {redacted(url)!r}: {exc}") from exc
    extra = {key: value for key, value in _DEFAULTS.items() if key not in given}
    return make_conninfo(url, **extra)
