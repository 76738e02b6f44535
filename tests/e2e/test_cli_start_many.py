"""``surefoot start-many``: one run per line of a JSON-lines file, committed a batch at a
time, every line checked before anything is committed."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import surefoot as sf
from surefoot.domain.records import RunFilter

APP = "tests.e2e.cli_app:app"
RUN_ID = re.compile(r"^[0-9a-f]{32}$")


def lines_file(tmp_path: Path, items: list[Any], *, raw: str = "") -> str:
    path = tmp_path / "runs.jsonl"
    path.write_text("".join(json.dumps(item) + "\n" for item in items) + raw, encoding="utf-8")
    return str(path)


def test_every_line_becomes_a_run_in_batches_and_a_second_pass_starts_no_keyed_line_again(
    cli: Any, tmp_path: Path
):
    items = [
        {"input": ["ann"], "idempotency_key": "r-1"},
        {"input": {"name": "bo"}, "idempotency_key": "r-2", "priority": 3},
        {"input": ["cy"], "idempotency_key": "r-3", "partition_key": "acme"},
    ]
    path = lines_file(tmp_path, items, raw="\n")  # a blank line is skipped
    started = cli("start-many", APP, "hello", path, "--batch", "2")
    run_ids = started.stdout.split()
    assert len(run_ids) == 3
    assert all(RUN_ID.match(run_id) for run_id in run_ids)
    assert "started 3 run(s) from 3 line(s)" in started.stderr
    again = cli("start-many", APP, "hello", path)
    assert again.stdout.split() == run_ids
    cli("worker", APP, "--until-idle")
    runs = {r["run_id"]: r for r in cli.json("runs", "list", APP)}
    assert [runs[run_id]["output"] for run_id in run_ids] == [
        '"hello ann"',
        '"hello bo"',
        '"hello cy"',
    ]
    assert [runs[run_id]["priority"] for run_id in run_ids] == [0, 3, 0]
    assert len(runs) == 3


def test_a_bad_line_is_named_and_nothing_is_committed(cli: Any, tmp_path: Path, local_app: Any):
    good = {"input": ["ann"]}
    not_json = cli(
        "start-many", APP, "hello", lines_file(tmp_path, [good], raw="{oops\n"), expect=2
    )
    assert "line 2: not valid JSON" in not_json.stderr
    unknown = cli(
        "start-many", APP, "hello", lines_file(tmp_path, [good, {"inputs": []}]), expect=2
    )
    assert "line 2: unknown field(s) inputs" in unknown.stderr
    misfit = cli(
        "start-many",
        APP,
        "hello",
        lines_file(tmp_path, [good, good, {"input": {"nom": 1}}]),
        expect=1,
    )
    assert "SerializationError: line 3:" in misfit.stderr
    app: sf.App = local_app()
    assert app.store.count_runs(RunFilter()) == 0


def test_a_refused_batch_stops_the_file_and_says_what_is_committed(
    cli: Any, tmp_path: Path, local_app: Any
):
    app: sf.App = local_app()
    app.start("hello", "someone", idempotency_key="taken")
    items = [
        {"input": ["a"]},
        {"input": ["b"]},
        {"input": ["c"], "idempotency_key": "taken"},  # another run's key, other inputs
        {"input": ["d"]},
    ]
    stopped = cli("start-many", APP, "hello", lines_file(tmp_path, items), "--batch", "2", expect=1)
    assert len(stopped.stdout.split()) == 2
    assert "stopped at line 3: the 2 run(s) of the lines before it are committed" in stopped.stderr
    assert "IdempotencyKeyConflictError" in stopped.stderr
    assert len(cli.json("runs", "list", APP)) == 3
