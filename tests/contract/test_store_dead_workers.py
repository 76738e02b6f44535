"""Dead workers: a worker whose process is provably gone is declared dead, audited, and its
runs become claimable at once; workers of another host, boot or pid namespace, and workers
whose process may be alive, are never declared dead."""

from __future__ import annotations

from surefoot.domain.status import AttemptOutcome, RunStatus
from surefoot.store.base import Store
from tests.contract.support import (
    ACTOR,
    LEASE_S,
    assert_chain_intact,
    at,
    attempt,
    claim_one,
    new_run,
)

HOST = "host-a"
BOOT = "boot-1"
NAMESPACE = "pid:[4026531836]"


def register(
    store: Store,
    worker_id: str,
    pid: int,
    *,
    hostname: str = HOST,
    boot_id: str = BOOT,
    pid_namespace: str = NAMESPACE,
    started: int = 1000,
) -> None:
    store.register_worker_process(
        worker_id,
        hostname,
        pid,
        [],
        at(0),
        boot_id=boot_id,
        pid_namespace=pid_namespace,
        process_started=started,
    )


def declare(store: Store, gone: set[tuple[int, int]], now_s: float) -> dict[str, list[str]]:
    return store.declare_dead_workers(
        "rescuer",
        hostname=HOST,
        boot_id=BOOT,
        pid_namespace=NAMESPACE,
        is_gone=lambda pid, started: (pid, started) in gone,
        now=at(now_s),
    )


def stopped(store: Store) -> set[str]:
    return {beat.worker_id for beat in store.worker_beats() if beat.stopped_at is not None}


def test_dead_workers_leases_end_at_once_and_the_next_claim_takes_its_runs_over(store):
    record, _ = store.create_run(new_run(), at(0), ACTOR)
    register(store, "dead", 4321)
    claimed = claim_one(store, "dead", at(1))
    store.begin_attempt(claimed.lease, attempt(claimed.lease, at(1)))

    freed = declare(store, {(4321, 1000)}, 2)

    assert freed == {"dead": [record.run_id]}
    assert "dead" in stopped(store)
    run = store.get_run(record.run_id)
    assert run is not None
    assert run.lease_expires_at == at(2)  # not at(1 + LEASE_S): the lease ended now
    taken = claim_one(store, "rescuer", at(2))
    assert taken.taken_over
    assert taken.lease.epoch == claimed.lease.epoch + 1
    assert [a.outcome for a in taken.interrupted] == [AttemptOutcome.INTERRUPTED]
    assert taken.run.status is RunStatus.RUNNING
    entries = store.audit_entries(after_seq=0, limit=100)
    actions = [(e.action, e.entity_id) for e in entries]
    assert ("worker.declared_dead", "dead") in actions
    revoked = actions.index(("run.lease_revoked", record.run_id))
    assert revoked < actions.index(("run.taken_over", record.run_id))
    assert entries[revoked].actor == "worker:rescuer"
    assert entries[revoked].before["lease_owner"] == "dead"
    assert "pid 4321" in (entries[revoked].reason or "")
    assert_chain_intact(store)
    # The old lease is fenced off like after an expiry.
    lost, _ = store.heartbeat("dead", [claimed.lease], LEASE_S, at(3))
    assert lost == {record.run_id}


def test_worker_that_may_be_alive_is_not_declared_dead_and_nothing_is_written(store):
    record, _ = store.create_run(new_run(), at(0), ACTOR)
    register(store, "alive", 4321)
    claim_one(store, "alive", at(1))
    before = len(store.audit_entries(after_seq=0, limit=100))

    assert declare(store, set(), 2) == {}

    assert "alive" not in stopped(store)
    run = store.get_run(record.run_id)
    assert run is not None
    assert run.lease_expires_at == at(1 + LEASE_S)
    assert len(store.audit_entries(after_seq=0, limit=100)) == before


def test_only_workers_of_the_same_host_boot_and_pid_namespace_are_asked_about(store):
    register(store, "here", 11)
    register(store, "other-host", 12, hostname="host-b")
    register(store, "other-boot", 13, boot_id="boot-2")
    register(store, "other-namespace", 14, pid_namespace="pid:[4026532000]")
    store.register_worker("unidentified", HOST, 15, [], at(0))  # a worker of older code
    register(store, "stopped", 16)
    store.worker_stopped("stopped", at(0))
    register(store, "rescuer", 17)  # the caller itself
    asked: list[int] = []

    def everything_gone(pid: int, _started: int) -> bool:
        asked.append(pid)
        return True

    freed = store.declare_dead_workers(
        "rescuer",
        hostname=HOST,
        boot_id=BOOT,
        pid_namespace=NAMESPACE,
        is_gone=everything_gone,
        now=at(2),
    )

    assert asked == [11]
    assert freed == {"here": []}
    assert stopped(store) == {"here", "stopped"}


def test_a_worker_is_declared_dead_once(store):
    record, _ = store.create_run(new_run(), at(0), ACTOR)
    register(store, "dead", 4321)
    claim_one(store, "dead", at(1))
    assert declare(store, {(4321, 1000)}, 2) == {"dead": [record.run_id]}
    before = len(store.audit_entries(after_seq=0, limit=100))

    assert declare(store, {(4321, 1000)}, 3) == {}
    assert len(store.audit_entries(after_seq=0, limit=100)) == before


def test_the_same_pid_with_another_start_time_is_another_process(store):
    register(store, "old", 4321, started=1000)
    register(store, "new", 4321, started=2000)

    assert declare(store, {(4321, 1000)}, 2) == {"old": []}
    assert stopped(store) == {"old"}
