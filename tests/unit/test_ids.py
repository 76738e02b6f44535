"""Run ids are UUIDs of version 7: unique, and sorted by the time they were made, so
the stores append what they index by run id instead of scattering it."""

from __future__ import annotations

import uuid

import surefoot as sf
from surefoot.domain.ids import time_ordered_hex

MS = 1_000_000


def test_ids_are_uuid_version_7_in_32_hex_digits():
    for _ in range(100):
        text = time_ordered_hex()
        assert len(text) == 32
        assert text == text.lower()
        parsed = uuid.UUID(text)
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122


def test_ids_carry_their_millisecond_and_sort_by_it():
    base = 1_800_000_000_000 * MS  # a Unix time in ns
    ids = [time_ordered_hex(base + n * MS) for n in range(50)]
    assert ids == sorted(ids)
    assert [int(i[:12], 16) for i in ids] == [base // MS + n for n in range(50)]


def test_ids_made_in_the_same_millisecond_differ():
    now = 1_800_000_000_000 * MS
    assert len({time_ordered_hex(now) for _ in range(10_000)}) == 10_000


def test_a_run_started_now_gets_a_time_ordered_id(make_app):
    app: sf.App = make_app()

    @app.workflow
    def noop(ctx: sf.WorkflowContext) -> None:
        return None

    first = app.start("noop").run_id
    later = app.start("noop").run_id
    assert uuid.UUID(first).version == 7
    assert first[:12] <= later[:12]
