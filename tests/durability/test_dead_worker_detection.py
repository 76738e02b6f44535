"""Telling a dead worker's process from a live one, on real processes.

A worker is declared dead only when its process provably no longer exists: no process has
its pid, or the pid now belongs to a process that started at another time (reused), or the
process has exited and waits to be reaped. A live process, even a stopped one, is never gone.
The negative controls run the same table against deliberately broken checks, so that a
green run of the real one proves something.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from surefoot.engine.worker import process_gone, this_process

Check = Callable[[int, int], bool]
SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


def start_time(pid: int) -> int:
    """Field 22 of /proc/PID/stat, read independently of the code under test."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return int(text.rsplit(")", 1)[1].split()[19])


def state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


@pytest.fixture
def processes() -> Iterator[dict[str, tuple[int, int]]]:
    """(pid, start time) of processes in every state a registered worker can be in."""
    children: list[subprocess.Popen[bytes]] = []

    def child() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(SLEEPER)
        children.append(proc)
        return proc

    live, stopped, killed, zombie = child(), child(), child(), child()
    table = {
        "this process": (os.getpid(), start_time(os.getpid())),
        "live child": (live.pid, start_time(live.pid)),
        "stopped child": (stopped.pid, start_time(stopped.pid)),
        "killed and reaped": (killed.pid, start_time(killed.pid)),
        "exited, not reaped": (zombie.pid, start_time(zombie.pid)),
        # The pid now belongs to a process that started after the registered one.
        "pid reused": (live.pid, start_time(live.pid) - 1),
    }
    os.kill(stopped.pid, signal.SIGSTOP)
    killed.kill()
    killed.wait(10)
    os.kill(zombie.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while state(zombie.pid) != "Z":
        assert time.monotonic() < deadline, "the killed child never became a zombie"
        time.sleep(0.01)
    try:
        yield table
    finally:
        for proc in children:
            proc.kill()
            proc.wait(10)


EXPECTED_GONE = {
    "this process": False,
    "live child": False,
    "stopped child": False,
    "killed and reaped": True,
    "exited, not reaped": True,
    "pid reused": True,
}


def verdicts(check: Check, table: dict[str, tuple[int, int]]) -> dict[str, bool]:
    return {name: check(pid, started) for name, (pid, started) in table.items()}


def test_only_processes_that_no_longer_exist_are_gone(processes):
    assert verdicts(process_gone, processes) == EXPECTED_GONE


def test_a_live_process_is_never_gone_whatever_its_state(processes):
    for name in ("this process", "live child", "stopped child"):
        pid, started = processes[name]
        assert not process_gone(pid, started), name


def test_this_process_identity_matches_the_kernels_view():
    me = this_process()
    assert me is not None
    assert me.pid == os.getpid()
    assert me.started == start_time(os.getpid())
    assert me.boot_id == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    assert me.namespace.startswith(os.readlink("/proc/self/ns/pid"))
    assert me.hostname == os.uname().nodename


def test_nonpositive_pids_are_never_gone():
    # os.kill(0, ...) and negative pids address process groups, not a process.
    assert not process_gone(0, 0)
    assert not process_gone(-1, 0)


# -- negative controls: broken checks must disagree with the table ----------------------------
def ignores_start_time(pid: int, _started: int) -> bool:
    """Gone when no process has the pid: blind to reuse and to exited processes."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def misreads_start_time(pid: int, started: int) -> bool:
    """Compares the start time with a wrong value (as a check parsing the wrong field of
    /proc/PID/stat would): every live process looks like a reused pid."""
    return process_gone(pid, started + 100)


def test_negative_control_a_check_ignoring_start_times_misses_reused_pids(processes):
    wrong = {
        name
        for name, gone in verdicts(ignores_start_time, processes).items()
        if gone != EXPECTED_GONE[name]
    }
    assert wrong == {"pid reused", "exited, not reaped"}


def test_negative_control_a_check_misreading_start_times_declares_live_workers_dead(processes):
    wrong = {
        name
        for name, gone in verdicts(misreads_start_time, processes).items()
        if gone != EXPECTED_GONE[name]
    }
    assert wrong == {"this process", "live child", "stopped child"}
