"""Secrets never leave the process: redaction of log fields, span attributes and messages.

Two nets: a field whose *name* says it holds a secret (``password``, ``token``,
``authorization``...) is replaced whole, wherever it is nested; and any text is
scrubbed of what *looks* like a secret (``Bearer ...``, ``password=...``, JWTs, URL
credentials). Names and patterns are configurable (``Settings.redact_names``,
``Settings.redact_pattern``); the defaults below always apply.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "[redacted]"

DEFAULT_SECRET_NAMES = (
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "cookie",
    "credential",
    "private_key",
    "session",
)

DEFAULT_SECRET_PATTERNS = (
    # "Bearer <token>" / "Basic <credentials>" as in Authorization headers
    r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{4,}",
    # key=value, key: value and key 'value' where the key names a secret (the value goes)
    r"(?i)\b([a-z_]*(?:password|passwd|secret|token|api[_-]?key)[a-z_]*)"
    r"(\"?\s*[=:]\s*[\"']?|\s+[\"'])[^\s\"',;&}]+",
    # JSON Web Tokens
    r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*",
    # well-known API key shapes (Stripe, GitHub, Slack, AWS access key ids)
    r"\b(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{6,}|\bgh[pousr]_[A-Za-z0-9]{20,}"
    r"|\bxox[abpr]-[A-Za-z0-9-]{10,}|\bAKIA[0-9A-Z]{16}\b",
    # credentials inside URLs: scheme://user:password@host
    r"(?i)\b([a-z][a-z0-9+.-]*://[^:/\s@]+):[^@\s/]+@",
)


# What every default pattern needs somewhere in the text it matches, lowercased: a
# text holding none of these is left as it is by all of them, so they are not run on it
# (most log fields: timestamps, ids, names). Patterns from the settings always run.
DEFAULT_PATTERNS_NEED = (
    "bearer",
    "basic",
    "passw",
    "secret",
    "token",
    "api",
    "eyj",
    "_live_",
    "_test_",
    "gh",
    "xox",
    "akia",
    "://",
)
_NAME_MEMO_MAX = 4096


def may_match_default(value: str) -> bool:
    """Whether any default pattern could match ``value`` (False: none can)."""
    lowered = value.lower()
    for needed in DEFAULT_PATTERNS_NEED:  # noqa: SIM110 - any() over a generator: twice the time
        if needed in lowered:
            return True
    return False


class Redactor:
    """Replaces secrets in strings and in nested mappings and sequences."""

    def __init__(self, names: Iterable[str] = (), patterns: Iterable[str] = ()) -> None:
        every = (*DEFAULT_SECRET_NAMES, *names)
        self.names = tuple(dict.fromkeys(n.strip().lower() for n in every if n.strip()))
        self._defaults = [re.compile(p) for p in DEFAULT_SECRET_PATTERNS]
        self._custom = [re.compile(p) for p in patterns if p]
        self._secret_names: dict[str, bool] = {}  # field names seen, and whether secret

    def is_secret_name(self, key: str) -> bool:
        known = self._secret_names.get(key)
        if known is not None:
            return known
        lowered = key.lower()
        secret = any(name in lowered for name in self.names)
        if len(self._secret_names) < _NAME_MEMO_MAX:  # log field names are few
            self._secret_names[key] = secret
        return secret

    def text(self, value: str) -> str:
        if may_match_default(value):
            for pattern in self._defaults:
                value = pattern.sub(_replacement, value)
        for pattern in self._custom:
            value = pattern.sub(_replacement, value)
        return value

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return self.mapping(value)
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        if isinstance(value, int | float | bool) or value is None:
            return value
        return self.text(str(value))

    def mapping(self, values: Mapping[Any, Any]) -> dict[Any, Any]:
        return {
            key: REDACTED if isinstance(key, str) and self.is_secret_name(key) else self.value(v)
            for key, v in values.items()
        }


def _replacement(match: re.Match[str]) -> str:
    groups = match.groups()
    if len(groups) == 2:  # key=value: keep the key and the separator
        return f"{groups[0]}{groups[1]}{REDACTED}"
    if groups and groups[0] is not None and "://" in groups[0]:
        return f"{groups[0]}:{REDACTED}@"  # scheme://user:[redacted]@
    if groups and groups[0] is not None:
        return f"{groups[0]} {REDACTED}"  # Bearer [redacted]
    return REDACTED


_active = Redactor()


def configure(names: Iterable[str] = (), patterns: Iterable[str] = ()) -> Redactor:
    """Set the process-wide redactor (logging configuration calls this)."""
    global _active  # noqa: PLW0603 - one redactor per process, like the log configuration
    _active = Redactor(names, patterns)
    return _active


def active() -> Redactor:
    return _active
