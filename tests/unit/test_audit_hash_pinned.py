"""Audit hashes are part of the stored data: existing chains are verified against them, so
``entry_hash`` and ``canonical`` must keep producing exactly these bytes, whatever their
implementation does inside."""

from __future__ import annotations

import hashlib
import json
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from surefoot.domain.audit import GENESIS, AuditEntry, entry_hash, verify_chain
from surefoot.domain.codec import canonical

# Hashes and bodies computed once and stored: a change here breaks every existing chain.
PINNED: list[tuple[dict[str, Any], str]] = [
    (
        {
            "seq": 1,
            "at": "2030-01-01T00:00:00.000000+00:00",
            "actor": "worker:w1",
            "action": "run.claimed",
            "entity": "run",
            "entity_id": "run-1",
            "before": {"status": "pending"},
            "after": {"status": "running", "lease_epoch": 1},
            "reason": None,
            "correlation_id": "corr-1",
        },
        "87760c722c838fa491b8d99a21f06782689445565431bf9a02202925a6ce852c",
    ),
    (
        {
            "seq": 2,
            "at": "2030-01-01T00:00:01.250000+00:00",
            "actor": "approver-1",
            "action": "review.decided",
            "entity": "review",
            "entity_id": "rv-7",
            "before": None,
            "after": {"decision": {"approve": True, "amount": 12.5, "lines": [3, None, "x"]}},
            "reason": "matches the PO",
            "correlation_id": None,
        },
        "329b6293b6fcf739e89c65f3b542da7ce0e907d2e55412a119f7a6b411cea95d",
    ),
    (
        {
            "seq": 3,
            "at": "2030-06-30T23:59:59.999999+00:00",
            "actor": "ops:\u00e9l\u00e9na",
            "action": "run.redriven",
            "entity": "run",
            "entity_id": "run-\u2603",
            "before": {"z": 1, "a": {"y": '"q"\n', "b": []}},
            "after": ["\u00fcber", "\U0001f600", "tab\tand\\slash", "</script>"],
            "reason": "caf\u00e9 \u2014 retry",
            "correlation_id": "00f067aa0ba902b7",
        },
        "8ee232e281d0ef917a81e544a9fe2d106ff528754b77df4b30120f3fcc4e2e8d",
    ),
    (
        {
            "seq": 4,
            "at": "2030-07-01T00:00:00.000000+00:00",
            "actor": "system",
            "action": "step.failed",
            "entity": "step",
            "entity_id": "run-9/2",
            "before": {"n": 10**20, "f": -0.0, "big": 1e300, "t": False},
            "after": {"when": datetime(2030, 7, 1, tzinfo=UTC), "cost": Decimal("1.10"), "s": "s"},
            "reason": "",
            "correlation_id": "",
        },
        "db0723932c0ef42a8d9375864472be4d93840d0efab98eccf302c83c7c699823",
    ),
]


def _chain() -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    prev = GENESIS
    for content, _digest in PINNED:
        digest = entry_hash(prev, **content)
        entries.append(AuditEntry(prev_hash=prev, hash=digest, **content))
        prev = digest
    return entries


def test_entry_hashes_are_exactly_the_stored_ones():
    assert [entry.hash for entry in _chain()] == [digest for _content, digest in PINNED]


def test_pinned_chain_still_verifies():
    chain = _chain()
    assert verify_chain(chain, head_seq=chain[-1].seq, head_hash=chain[-1].hash) == []


def test_first_entry_hashes_its_literal_canonical_body():
    content, digest = PINNED[0]
    body = (
        '{"action":"run.claimed","actor":"worker:w1","after":{"lease_epoch":1,"status":"running"},'
        '"at":"2030-01-01T00:00:00.000000+00:00","before":{"status":"pending"},'
        '"correlation_id":"corr-1","entity":"run","entity_id":"run-1","reason":null,"seq":1}'
    )
    assert canonical(content) == body
    assert hashlib.sha256(f"{GENESIS}\n{body}".encode()).hexdigest() == digest


def test_canonical_text_is_pinned():
    value = {"b": 1, "a": [2, {"d": 3, "c": 4}], "u": "\u00e9\U0001f600", "n": None, "f": 1.5}
    expected = '{"a":[2,{"c":4,"d":3}],"b":1,"f":1.5,"n":null,"u":"\\u00e9\\ud83d\\ude00"}'
    assert canonical(value) == expected


def _definition(prev_hash: str, content: dict[str, Any]) -> str:
    """The hash as documented: sha256 of the previous hash, a newline and the entry's JSON
    with sorted keys, no whitespace, ASCII escapes and ``str`` for anything else."""
    body = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    choices: list[Any] = [
        None,
        True,
        False,
        rng.randint(-(10**12), 10**12),
        rng.random() * 10 ** rng.randint(-5, 5),
        "".join(rng.choice('ab"\\\n\t\u00e9\u2603\U0001f600/<') for _ in range(rng.randint(0, 8))),
        Decimal(rng.randint(0, 10**6)) / 100,
        datetime(2030, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randint(0, 10**8)),
    ]
    if depth < 3:
        choices.append([_random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))])
        choices.append({f"k{rng.randint(0, 20)}": _random_value(rng, depth + 1) for _ in range(3)})
    return rng.choice(choices)


@pytest.mark.parametrize("seed", range(20))
def test_entry_hash_matches_its_definition_for_any_content(seed: int):
    rng = random.Random(seed)
    for _ in range(25):
        text_or_other = [_random_value(rng, 3) for _ in range(7)]
        content: dict[str, Any] = {
            "seq": rng.choice([rng.randint(1, 10**9), True, 2.0, "7"]),
            "at": rng.choice([text_or_other[0], "2030-01-01T00:00:00.000000+00:00"]),
            "actor": rng.choice([text_or_other[1], "worker:w1"]),
            "action": rng.choice([text_or_other[2], "step.succeeded"]),
            "entity": rng.choice([text_or_other[3], "run"]),
            "entity_id": rng.choice([text_or_other[4], "run-1"]),
            "before": _random_value(rng),
            "after": _random_value(rng),
            "reason": rng.choice([None, text_or_other[5]]),
            "correlation_id": rng.choice([None, text_or_other[6]]),
        }
        prev = rng.choice([GENESIS, hashlib.sha256(str(seed).encode()).hexdigest()])
        assert entry_hash(prev, **content) == _definition(prev, content)
