"""Markdown tables, the machine description, and pass/fail against the targets."""

from __future__ import annotations

import hashlib
import math
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import surefoot
from bench.procs import REPO_ROOT

T = TypeVar("T")


def table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1, *, targets: bool = True
) -> str:
    """A Markdown table: the first ``left`` columns and the last two (the target and its
    verdict; none without ``targets``) align left, the numbers in between align right."""
    count = len(headers)
    marks = [
        "---" if i < left or (targets and count > left + 2 and i >= count - 2) else "---:"
        for i in range(count)
    ]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(marks) + "|"]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return "\n".join(lines)


def num(value: float, digits: int = 0) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:,.{digits}f}"


def verdict(ok: bool) -> str:
    return "pass" if ok else "**FAIL**"


def median_of(results: Sequence[T], field: Callable[[T], float]) -> float:
    return statistics.median(field(r) for r in results)


def spread(results: Sequence[T], field: Callable[[T], float], digits: int = 0) -> str:
    """Every repeat's value, to show the noise behind a median."""
    return " / ".join(num(field(r), digits) for r in results)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def filesystem_of(path: Path) -> str:
    """The type of the filesystem holding ``path`` (ext4, tmpfs, ...), from /proc/mounts."""
    best, kind = "", "unknown"
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return kind
    resolved = str(path.resolve())
    for line in mounts:
        parts = line.split()
        if len(parts) < 3:
            continue
        mount_point = parts[1]
        inside = resolved == mount_point or resolved.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) > len(best):
            best, kind = mount_point, parts[2]
    return kind


def _commit() -> str:
    """The commit of the Surefoot being measured: the checkout its package was imported
    from (another worktree's, with ``PYTHONPATH``, for a "before" figure)."""
    # surefoot/__init__.py -> surefoot -> src -> the checkout
    root = Path(surefoot.__file__).resolve().parent.parent.parent
    if not (root / "src" / "surefoot").is_dir():
        root = REPO_ROOT
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        diff = subprocess.run(
            ["git", "diff", "HEAD", "--", "src"],
            cwd=root,
            capture_output=True,
            check=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if not dirty:
        return head
    digest = hashlib.sha256(diff + dirty.encode()).hexdigest()[:10]
    return f"{head} + uncommitted changes in src/ (diff sha256 {digest}...)"


def machine(store_rows: Sequence[tuple[str, str]], temp_dir: Path) -> str:
    affinity = len(os.sched_getaffinity(0))
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    rows = [
        ("CPUs (nproc)", str(affinity)),
        ("CPU", _cpu_model()),
        ("load average at start (1, 5, 15 min)", load),
        ("OS", f"{platform.system()} {platform.release()}"),
        ("Python", sys.version.split()[0]),
        ("Surefoot", f"{surefoot.__version__} (commit {_commit()})"),
        *store_rows,
        ("filesystem of the databases' directory", filesystem_of(temp_dir)),
    ]
    return table(["machine", ""], [list(r) for r in rows], left=2)
