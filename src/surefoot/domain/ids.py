"""Identifiers that sort by creation time.

Run ids (and the correlation ids Surefoot makes up) are UUIDs of version 7 (RFC 9562,
section 5.7), written as 32 lowercase hex digits like any other UUID: 48 bits of Unix
time in milliseconds, then 74 random bits. They are as unique as random ones, but
consecutive runs get neighbouring ids, so everything the stores index by run id (the
runs, their attempts, journal entries, audit entries) is appended near the end of its
index instead of at a random place: the runs a worker executes together share the
pages their commit writes.
"""

from __future__ import annotations

import secrets
import time

_VERSION = 0x7 << 76  # the version field, bits 48-51 from the left
_VARIANT = 0b10 << 62  # the RFC 4122/9562 variant, bits 64-65 from the left


def time_ordered_hex(now_ns: int | None = None) -> str:
    """A new UUIDv7 as 32 hex digits; ``now_ns`` (Unix time in ns) is for tests."""
    millis = (time.time_ns() if now_ns is None else now_ns) // 1_000_000
    rand_a = secrets.randbits(12)  # the 12 bits after the version
    rand_b = secrets.randbits(62)  # the 62 bits after the variant
    value = (millis & ((1 << 48) - 1)) << 80 | _VERSION | rand_a << 64 | _VARIANT | rand_b
    return f"{value:032x}"
