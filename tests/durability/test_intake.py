"""Nothing acknowledged is lost: a run ``start()`` returned for survives kill -9."""

from __future__ import annotations

import threading

import pytest

from surefoot.domain.records import RunFilter
from surefoot.domain.status import RunStatus
from surefoot.ops import audit
from tests.durability.support.procs import wait_terminal, wait_until

ACKNOWLEDGED_BEFORE_KILL = 30


@pytest.mark.slow
def test_every_run_id_a_killed_client_printed_is_in_the_store(app, processes):
    client = processes.client()
    stdout = client.popen.stdout
    assert stdout is not None
    lines: list[str] = []

    def read() -> None:
        lines.extend(stdout)  # ends at EOF, once the client is dead

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    wait_until(
        lambda: len(lines) >= ACKNOWLEDGED_BEFORE_KILL,
        timeout_s=15,
        what=f"the client to acknowledge {ACKNOWLEDGED_BEFORE_KILL} runs",
    )
    processes.kill(client)
    reader.join(timeout=10)
    assert not reader.is_alive()

    acknowledged = [line.strip() for line in lines if line.endswith("\n")]
    assert len(acknowledged) >= ACKNOWLEDGED_BEFORE_KILL
    for run_id in acknowledged:
        run = app.store.get_run(run_id)
        assert run is not None, f"acknowledged run {run_id} is not in the store"
        assert run.workflow == "echo"
    # At most the one run the client committed but had no time to print.
    stored = app.store.count_runs(RunFilter(workflow="echo"))
    assert stored in (len(acknowledged), len(acknowledged) + 1)
    assert audit.verify(app) == []

    finishing = processes.worker(until_idle=True)
    assert processes.wait_exit(finishing) == 0, finishing.tail()
    runs = wait_terminal(app.store, acknowledged, timeout_s=1)
    assert {run.status for run in runs.values()} == {RunStatus.SUCCEEDED}
