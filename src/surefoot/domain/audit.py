"""The audit chain: each entry's hash covers its content and the previous hash.

Modifying an entry changes its hash; deleting or reordering entries breaks the
``prev_hash`` links; truncating the tail is caught against the separately kept
head (``audit_head``), which operators can also copy off the machine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii
from typing import Any

from surefoot.domain.codec import canonical
from surefoot.domain.records import AuditRecord

GENESIS = "0" * 64


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: str
    actor: str
    action: str
    entity: str
    entity_id: str
    before: Any
    after: Any
    reason: str | None
    correlation_id: str | None
    prev_hash: str
    hash: str


def entry_hash(
    prev_hash: str,
    *,
    seq: int,
    at: str,
    actor: str,
    action: str,
    entity: str,
    entity_id: str,
    before: Any,
    after: Any,
    reason: str | None,
    correlation_id: str | None,
) -> str:
    """``sha256(prev_hash + "\\n" + body)`` in hex, where ``body`` is the :func:`canonical`
    JSON of the entry's fields (``prev_hash`` and ``hash`` excluded)."""
    prefix = body_prefix(
        at=at,
        actor=actor,
        action=action,
        entity=entity,
        entity_id=entity_id,
        before=_value(before),
        after=_value(after),
        reason=reason,
        correlation_id=correlation_id,
    )
    return hash_with_seq(prev_hash, prefix, seq)


def value_json(value: Any) -> str | None:
    """How an entry's ``before`` or ``after`` is stored: its :func:`canonical` JSON, the
    very text the hash covers (None, stored as NULL, for no value)."""
    return None if value is None else _value(value)


def body_prefix(
    *,
    at: str,
    actor: str,
    action: str,
    entity: str,
    entity_id: str,
    before: str,
    after: str,
    reason: str | None,
    correlation_id: str | None,
) -> str:
    """The entry's canonical body up to and including ``"seq":`` (``seq`` sorts last),
    with ``before`` and ``after`` given as their canonical JSON (``"null"`` for none)."""
    # Written field by field in sorted key order: exactly the text canonical() gives for
    # the whole mapping, without sorting the same ten keys for every entry.
    return (
        f'{{"action":{_value(action)},"actor":{_value(actor)},"after":{after},'
        f'"at":{_value(at)},"before":{before},'
        f'"correlation_id":{_value(correlation_id)},"entity":{_value(entity)},'
        f'"entity_id":{_value(entity_id)},"reason":{_value(reason)},"seq":'
    )


def encode_entry(record: AuditRecord, at: str) -> tuple[str | None, str | None, str]:
    """A new entry's ``before`` and ``after`` as stored (:func:`value_json`) and its
    :func:`body_prefix`, each value encoded once for both."""
    before, after = value_json(record.before), value_json(record.after)
    prefix = body_prefix(
        at=at,
        actor=record.actor,
        action=record.action,
        entity=record.entity,
        entity_id=record.entity_id,
        before="null" if before is None else before,
        after="null" if after is None else after,
        reason=record.reason,
        correlation_id=record.correlation_id,
    )
    return before, after, prefix


def entry_row(
    record: AuditRecord, at: str
) -> tuple[str, str, str, str, str, str | None, str | None, str | None, str | None, str]:
    """A new entry's stored columns from ``at`` to ``correlation_id`` (``before`` and
    ``after`` as :func:`value_json`), then its :func:`body_prefix`, each encoded once."""
    before, after, prefix = encode_entry(record, at)
    return (
        at,
        record.actor,
        record.action,
        record.entity,
        record.entity_id,
        before,
        after,
        record.reason,
        record.correlation_id,
        prefix,
    )


def hash_with_seq(prev_hash: str, prefix: str, seq: Any) -> str:
    """The entry hash from its :func:`body_prefix` and its sequence number."""
    return hashlib.sha256(f"{prev_hash}\n{prefix}{_value(seq)}}}".encode()).hexdigest()


def _value(value: Any) -> str:
    """``canonical(value)``, taking a shortcut for the plain types entry fields have."""
    kind = type(value)
    if kind is str:
        return encode_basestring_ascii(value)
    if value is None:
        return "null"
    if kind is int:
        return int.__repr__(value)
    return canonical(value)


@dataclass(frozen=True)
class ChainProblem:
    seq: int
    problem: str


def verify_chain(
    entries: Iterable[AuditEntry], *, head_seq: int | None, head_hash: str | None
) -> list[ChainProblem]:
    """Every problem in the chain, in order; an empty list means it is intact."""
    problems: list[ChainProblem] = []
    prev_hash = GENESIS
    expected_seq = 1
    last: AuditEntry | None = None
    for entry in entries:
        if entry.seq != expected_seq:
            problems.append(
                ChainProblem(
                    entry.seq,
                    f"expected entry {expected_seq} here: entries were deleted or reordered",
                )
            )
        if entry.prev_hash != prev_hash:
            problems.append(ChainProblem(entry.seq, "prev_hash does not match the entry before"))
        recomputed = entry_hash(
            entry.prev_hash,
            seq=entry.seq,
            at=entry.at,
            actor=entry.actor,
            action=entry.action,
            entity=entry.entity,
            entity_id=entry.entity_id,
            before=entry.before,
            after=entry.after,
            reason=entry.reason,
            correlation_id=entry.correlation_id,
        )
        if recomputed != entry.hash:
            problems.append(ChainProblem(entry.seq, "content does not match its hash: modified"))
        prev_hash = entry.hash
        expected_seq = entry.seq + 1
        last = entry
    if head_seq is not None:
        last_seq = last.seq if last else 0
        if last_seq != head_seq or (last is not None and last.hash != head_hash):
            problems.append(
                ChainProblem(
                    last_seq,
                    f"chain ends at entry {last_seq} but the head "
                    f"records entry {head_seq}: entries were removed",
                )
            )
    return problems
