"""What operators see of audit entries waiting for the chain (PostgreSQL).

A write stores its audit entries with its change and a sweep links them into the hash
chain shortly after (``store/postgres/audit.py``). If sweeps stop keeping up (a sweep that
keeps failing, a backlog left by a stopped process), entries stay committed but outside
the chain, which is what makes tampering detectable: ``audit_backlog`` reads how many
transactions wait and the time of the oldest entry, *without* sweeping first, and the
store's metrics and the ``audit_backlog`` alert rule report it. Checked with the store's
sweeper stopped, so that entries wait; the negative control reads the backlog after a
sweep, as every read of the log itself does, and sees nothing waiting.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from surefoot.domain.stats import AuditBacklog
from surefoot.observability.metrics import exposition
from surefoot.ops.alert_rules import AlertRule, RuleKind, measure
from surefoot.store.postgres import PostgresStore
from tests import postgres_support
from tests.contract.support import ACTOR, T0, assert_chain_intact, at, new_run

pytestmark = pytest.mark.postgres

postgres_server = postgres_support.postgres_server
postgres_url = postgres_support.postgres_url


@pytest.fixture
def store(postgres_url: str) -> Iterator[PostgresStore]:
    opened = PostgresStore(postgres_url)
    opened._sweeper.stop()  # entries wait until a read of the log sweeps them
    yield opened
    opened.close()


def waiting_after_three_starts(store: PostgresStore) -> AuditBacklog:
    """Three starts (three transactions), the oldest at T0; the backlog read then."""
    for n in range(3):
        store.create_run(new_run(), at(n), ACTOR)
    return store.audit_backlog()


def test_entries_waiting_for_a_sweep_are_counted_with_the_oldest_time(store: PostgresStore):
    assert waiting_after_three_starts(store) == AuditBacklog(3, T0)
    assert assert_chain_intact(store) == 3  # the read swept them: all three chained
    assert store.audit_backlog() == AuditBacklog(0, None)


def test_a_backlog_read_that_sweeps_first_is_caught(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
):
    # Negative control: swept before it is read, the backlog is always empty.
    read = PostgresStore.audit_backlog

    def swept_first(self: PostgresStore) -> AuditBacklog:
        self._sweep_audit()
        return read(self)

    monkeypatch.setattr(PostgresStore, "audit_backlog", swept_first)
    assert waiting_after_three_starts(store) != AuditBacklog(3, T0)


def test_metrics_and_the_alert_rule_report_the_backlog(store: PostgresStore):
    two_minutes_ago = datetime.now(UTC) - timedelta(seconds=120)
    store.create_run(new_run(), two_minutes_ago, ACTOR)
    body, _ = exposition(store)
    scraped = {
        sample.name: sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }
    assert scraped["surefoot_audit_unchained_transactions"] == 1
    assert scraped["surefoot_audit_unchained_oldest_age_seconds"] >= 120
    rule = AlertRule("audit-not-chained", RuleKind.AUDIT_BACKLOG, threshold=60)
    assert measure(rule, store, two_minutes_ago + timedelta(seconds=30)).firing is False
    late = measure(rule, store, two_minutes_ago + timedelta(seconds=90))
    assert (late.value, late.firing) == (90, True)
    assert "1 transaction(s)" in late.summary
    store.audit_head()  # a read of the head sweeps too
    swept = measure(rule, store, two_minutes_ago + timedelta(seconds=90))
    assert (swept.value, swept.firing) == (0, False)
    body, _ = exposition(store)
    assert "surefoot_audit_unchained_transactions 0.0" in body.decode()
