"""verify_chain: an intact chain verifies; any modification, deletion, reordering or truncation
is detected."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from surefoot.domain.audit import GENESIS, AuditEntry, entry_hash, verify_chain


def build(count: int, *, start_hash: str = GENESIS) -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    prev = start_hash
    for seq in range(1, count + 1):
        content: dict[str, Any] = {
            "seq": seq,
            "at": f"2030-01-01T00:00:{seq:02d}.000000+00:00",
            "actor": "worker:w1" if seq % 2 else "approver-1",
            "action": "run.claimed" if seq % 2 else "review.decided",
            "entity": "run",
            "entity_id": f"run-{seq}",
            "before": {"status": "pending"},
            "after": {"status": "running", "n": seq},
            "reason": None if seq % 3 else "because",
            "correlation_id": f"corr-{seq}",
        }
        digest = entry_hash(prev, **content)
        entries.append(AuditEntry(prev_hash=prev, hash=digest, **content))
        prev = digest
    return entries


def check(entries: list[AuditEntry], head: AuditEntry | None):
    return verify_chain(
        entries,
        head_seq=head.seq if head else None,
        head_hash=head.hash if head else None,
    )


def test_intact_chain_has_no_problems():
    chain = build(6)
    assert check(chain, chain[-1]) == []


def test_empty_chain_without_a_head_is_intact():
    assert verify_chain([], head_seq=None, head_hash=None) == []


def test_chain_without_a_recorded_head_is_checked_link_by_link():
    chain = build(4)
    assert check(chain, None) == []


@pytest.mark.parametrize(
    "change",
    [
        {"actor": "intruder"},
        {"reason": "nothing to see"},
        {"after": {"status": "succeeded", "n": 3}},
        {"before": None},
        {"at": "2031-01-01T00:00:00.000000+00:00"},
        {"correlation_id": None},
    ],
)
def test_modified_entry_is_detected_at_its_seq(change):
    chain = build(5)
    head = chain[-1]
    chain[2] = replace(chain[2], **change)
    problems = check(chain, head)
    assert [p.seq for p in problems] == [3]
    assert "modified" in problems[0].problem


def test_deleted_entry_is_detected():
    chain = build(5)
    head = chain[-1]
    del chain[2]
    problems = check(chain, head)
    assert problems
    assert problems[0].seq == 4
    assert "deleted or reordered" in problems[0].problem


def test_reordered_entries_are_detected():
    chain = build(5)
    head = chain[-1]
    chain[1], chain[2] = chain[2], chain[1]
    problems = check(chain, head)
    assert {p.seq for p in problems} >= {2, 3}
    assert any("deleted or reordered" in p.problem for p in problems)


def test_truncated_tail_is_detected_against_the_head():
    chain = build(5)
    head = chain[-1]
    problems = check(chain[:3], head)
    assert len(problems) == 1
    assert problems[0].seq == 3
    assert "removed" in problems[0].problem


def test_entirely_deleted_chain_is_detected_against_the_head():
    chain = build(3)
    problems = check([], chain[-1])
    assert len(problems) == 1
    assert "removed" in problems[0].problem


def test_chain_rewritten_with_recomputed_hashes_is_detected_against_the_head():
    chain = build(4)
    head = chain[-1]
    forged: list[AuditEntry] = []
    prev = GENESIS
    for entry in chain:
        fields = {
            "seq": entry.seq,
            "at": entry.at,
            "actor": "intruder" if entry.seq == 2 else entry.actor,
            "action": entry.action,
            "entity": entry.entity,
            "entity_id": entry.entity_id,
            "before": entry.before,
            "after": entry.after,
            "reason": entry.reason,
            "correlation_id": entry.correlation_id,
        }
        digest = entry_hash(prev, **fields)
        forged.append(AuditEntry(prev_hash=prev, hash=digest, **fields))
        prev = digest
    assert check(forged, None) == []
    problems = check(forged, head)
    assert len(problems) == 1
    assert "head" in problems[0].problem


def test_broken_prev_hash_link_is_detected():
    chain = build(4)
    head = chain[-1]
    chain[2] = replace(chain[2], prev_hash="f" * 64)
    problems = check(chain, head)
    assert any(p.seq == 3 and "prev_hash" in p.problem for p in problems)


def test_hash_depends_on_the_previous_hash():
    fields: dict[str, Any] = {
        "seq": 1,
        "at": "t",
        "actor": "a",
        "action": "x",
        "entity": "run",
        "entity_id": "r",
        "before": None,
        "after": None,
        "reason": None,
        "correlation_id": None,
    }
    assert entry_hash(GENESIS, **fields) != entry_hash("1" * 64, **fields)
    assert entry_hash(GENESIS, **fields) == entry_hash(GENESIS, **fields)
