"""The PostgreSQL store hashes audit entries on the server from a body prefix built here;
the prefix plus the number and the closing brace must be exactly the canonical body that
:func:`surefoot.domain.audit.entry_hash` hashes, whatever the entry holds."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from surefoot.domain.audit import GENESIS, encode_entry, entry_hash
from surefoot.domain.codec import canonical
from surefoot.domain.records import AuditRecord

AT = "2030-01-01T12:00:00.000000+00:00"


@pytest.mark.parametrize(
    ("before", "after", "reason", "correlation_id"),
    [
        (None, None, None, None),
        (
            {"status": "running"},
            {"status": "succeeded", "nested": {"z": [1, {"a": None}]}},
            "r",
            "c",
        ),
        ("plain", ["list", 1.5, True], "naïve façade ✓ 日本", "ünïcode"),
        ({"seq": 99, "zz": "}"}, {"quote": '"', "backslash": "\\", "newline": "\n"}, "}", "{"),
    ],
)
@pytest.mark.parametrize("seq", [1, 9, 10, 123_456_789_012])
def test_the_server_side_body_hashes_like_entry_hash(
    before: Any, after: Any, reason: str | None, correlation_id: str | None, seq: int
) -> None:
    record = AuditRecord(
        "worker:w-1",
        "run.finished",
        "run",
        "run-1",
        before,
        after,
        reason=reason,
        correlation_id=correlation_id,
    )
    stored_before, stored_after, prefix = encode_entry(record, AT)
    body = prefix + str(seq) + "}"

    assert body.isascii()  # the server's convert_to(..., 'UTF8') then changes nothing
    expected = entry_hash(
        GENESIS,
        seq=seq,
        at=AT,
        actor=record.actor,
        action=record.action,
        entity=record.entity,
        entity_id=record.entity_id,
        before=before,
        after=after,
        reason=reason,
        correlation_id=correlation_id,
    )
    assert hashlib.sha256(f"{GENESIS}\n{body}".encode()).hexdigest() == expected
    # What is stored is the very JSON the hash covers.
    assert stored_before == (None if before is None else canonical(before))
    assert stored_after == (None if after is None else canonical(after))
