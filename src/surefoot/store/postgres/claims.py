"""The claim statement: find the claimable runs, lock them and lease them, in one statement.

A claim takes the first runs in claim order (priority, then age) among three kinds of
claimable run, each found through its own index in that order (:data:`CLAIMABLE`), locked
with ``FOR UPDATE SKIP LOCKED`` so that concurrent claims never wait for each other nor take
the same run. The statement leases the runs it chose and returns each one as leased,
with what the claim needs of it as it was (its status, lease owner and lease expiry: a run
still leased to a stopped worker is taken over) and whether it has a history to load. A run
with none (a new run, the common case) needs nothing more read: the claim is then one
round trip and its ``COMMIT``.

Queues with a limit on how many of their runs run at once (per worker, or over all
workers) each form a group of their own with what they have left as its limit; the other
queues form one more group. Each group's runs are cut to its limit before the claim's
limit is applied to all of them, as separate claims per group would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# What makes a run claimable, one kind at a time, each found through an index of its own
# that holds only runs of that kind: pending runs through ``runs_pending`` (schema 5), in
# claim order, due waits through ``runs_waking`` and expired leases through ``runs_leased``
# (schema 8), in time order, so that a claim reads only the due or expired ones, not every
# waiting run or every run being executed. One condition with
# OR over the three made PostgreSQL read and sort every claimable run at each claim
# (behind a backlog of 100,000 pending runs: 100,000 rows sorted to take 128).
CLAIMABLE = (
    ("pending", "status = 'pending'"),
    ("due", "status = 'waiting' AND wake_at IS NOT NULL AND wake_at <= %(now)s"),
    ("expired", "status IN ('running', 'compensating') AND lease_expires_at <= %(now)s"),
)

# What every claimable run must also be: of a workflow the worker knows, in a queue not
# paused, and the oldest unfinished run of its partition key (one at a time, in order).
CLAIM_FILTERS = (
    " AND workflow = ANY(%(workflows)s)",
    " AND queue NOT IN (SELECT queue FROM queues WHERE paused)",
    " AND (partition_key IS NULL OR NOT EXISTS (SELECT 1 FROM runs AS earlier"
    " WHERE earlier.partition_key = runs.partition_key"
    " AND earlier.status NOT IN ('succeeded', 'failed', 'cancelled')"
    " AND (earlier.created_at < runs.created_at OR (earlier.created_at ="
    " runs.created_at AND earlier.run_id < runs.run_id))))",
)

# Set for the claim statement alone, reset right after it in the same round trip. Sorting
# is off: with statistics that lag behind the table, as they do right after a burst of
# starts (when the backlog is largest), PostgreSQL would rather read every pending run and
# sort them than walk ``runs_pending`` in order; what no index gives in order (the few runs
# found of each kind, put in one order) is still sorted. (JIT compilation, which the cost
# that discourages sorting would otherwise set off, is off for every connection of the
# store: see ``PostgresBase._note_opened``.)
CLAIM_SETTINGS = (("enable_sort", "off"),)

_ORDER = " ORDER BY priority DESC, created_at"

# The chosen runs' leases. The runs are looked up by an array of their ids, which the
# primary key index answers whatever the statistics say of the table's size.
_LEASE = (
    "leased AS (UPDATE runs SET status = CASE WHEN status = 'compensating'"
    " THEN 'compensating' ELSE 'running' END, lease_owner = %(worker)s,"
    " lease_epoch = lease_epoch + 1, lease_expires_at = %(expires)s,"
    " deliveries = deliveries + 1, wait_reason = NULL, wake_at = NULL,"
    " waiting_for = NULL, updated_at = %(now)s"
    " WHERE run_id = ANY(ARRAY(SELECT run_id FROM chosen))"
    " RETURNING *, pg_current_xact_id()::text AS surefoot_xid)"
)

# Whether a run has rows a history is made of. Each is a scalar subquery with LIMIT 1, an
# index probe per run: an EXISTS here may be planned as one hash of the whole table.
HAS_HISTORY = " OR ".join(
    f"(SELECT 1 FROM {table} AS h WHERE h.run_id = leased.run_id LIMIT 1) IS NOT NULL"
    for table in ("journal", "attempts", "review_items")
)

_RETURNED = (
    "SELECT leased.*, chosen.status AS before_status, chosen.lease_owner AS before_owner,"
    f" chosen.lease_expires_at AS before_expires, ({HAS_HISTORY}) AS has_history"
    " FROM leased JOIN chosen ON chosen.run_id = leased.run_id"
)


@dataclass(frozen=True)
class Group:
    """Runs a claim may take up to ``limit`` of: those that pass ``filters`` (SQL added to
    each kind's condition, with named parameters)."""

    filters: str
    limit: int


def statement(groups: Sequence[Group]) -> tuple[str, dict[str, int]]:
    """The claim statement for ``groups``, and the group limits among its parameters
    (the others, named in the filters and in :data:`_LEASE`, are the caller's)."""
    ctes: list[str] = []
    limits: dict[str, int] = {}
    for index, group in enumerate(groups):
        limit = f"limit_{index}"
        limits[limit] = group.limit
        names = []
        for kind, condition in CLAIMABLE:
            name = f"g{index}_{kind}"
            names.append(name)
            ctes.append(
                f"{name} AS (SELECT * FROM runs WHERE {condition}{group.filters}{_ORDER}"
                f" LIMIT %({limit})s FOR UPDATE OF runs SKIP LOCKED)"
            )
        every = " UNION ALL ".join(f"SELECT * FROM {name}" for name in names)
        ctes.append(f"g{index} AS ({every}{_ORDER} LIMIT %({limit})s)")
    every = " UNION ALL ".join(f"SELECT * FROM g{index}" for index in range(len(groups)))
    ctes.append(f"chosen AS ({every}{_ORDER} LIMIT %(limit)s)")
    ctes.append(_LEASE)
    return f"WITH {', '.join(ctes)} {_RETURNED}", limits
