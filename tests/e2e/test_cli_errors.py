"""CLI errors: a non-zero exit and one line naming the typed error, never a traceback, and
nothing written to the store."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

import surefoot as sf
from surefoot.store.base import SCHEMA_VERSION
from surefoot.store.sqlite import SQLiteStore
from tests.e2e.support import APP, drain


def error_line(stderr: str) -> str:
    """The error as one line of text, however the terminal wrapped it."""
    assert "Traceback" not in stderr, stderr
    return " ".join(stderr.split())


def run_rows(store_url: str) -> list[tuple[object, ...]]:
    path = Path(store_url.removeprefix("sqlite:///"))
    if not path.exists():
        return []
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute("SELECT * FROM runs ORDER BY run_id").fetchall()


def test_unknown_workflow_is_one_typed_error_line_without_traceback(plain_cli, store_url):
    done = plain_cli("start", APP, "nope", "--input", "[]", expect=1)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: WorkflowNotFoundError: no workflow named 'nope'")
    assert lines[0].endswith("(known: approve, fetch_invoice, hello, pay)")
    assert done.stdout == ""
    assert run_rows(store_url) == []


def test_error_message_with_markup_characters_is_printed_verbatim(plain_cli):
    done = plain_cli("start", APP, "[/x]", expect=1)
    text = error_line(done.stderr)
    assert text.startswith("error: WorkflowNotFoundError: no workflow named '[/x]'")


@pytest.mark.parametrize(
    ("args", "exit_code", "expected"),
    [
        (
            ("start", APP, "nope", "--input", "[]"),
            1,
            "error: WorkflowNotFoundError: no workflow named 'nope'",
        ),
        (
            ("start", APP, "hello", "--input", "{bad"),
            2,
            "error: ConfigError: --input is not valid JSON",
        ),
        (
            ("start", APP, "hello", "--input", '["a", "b"]'),
            1,
            "error: SerializationError: arguments do not fit",
        ),
        (
            ("start", APP, "hello", "--input", '"acme"'),
            1,
            "error: WorkflowError: inputs must be a JSON list or object",
        ),
        (
            ("start", "tests.e2e.cli_app", "hello"),
            2,
            "error: ConfigError: APP must look like module:attribute",
        ),
        (
            ("start", "tests.e2e.no_such_module:app", "hello"),
            2,
            "error: ConfigError: cannot import 'tests.e2e.no_such_module'",
        ),
        (
            ("start", "tests.e2e.cli_app:build_app", "hello"),
            2,
            "error: ConfigError: 'tests.e2e.cli_app:build_app' is not a surefoot App",
        ),
        (
            ("runs", "show", APP, "no-such-run"),
            1,
            "error: RunNotFoundError: no run has id or idempotency key 'no-such-run'",
        ),
        (
            ("send-event", APP, "no-such-run", "go"),
            1,
            "error: RunNotFoundError",
        ),
        (
            ("dlq", "discard", APP, "some-run"),
            2,
            "error: ConfigError: discard needs --reason",
        ),
        (
            ("dlq", "redrive", APP),
            2,
            "error: ConfigError: name runs to redrive",
        ),
    ],
    ids=[
        "unknown-workflow",
        "bad-json",
        "inputs-do-not-fit",
        "inputs-not-list-or-object",
        "app-spec-without-attribute",
        "app-module-missing",
        "app-attribute-not-an-app",
        "unknown-run",
        "event-for-unknown-run",
        "discard-without-reason",
        "redrive-without-target",
    ],
)
def test_bad_invocation_exits_non_zero_with_the_typed_error(
    plain_cli, store_url, args, exit_code, expected
):
    SQLiteStore(store_url).close()
    done = plain_cli(*args, expect=exit_code)
    assert error_line(done.stderr).startswith(expected), done.stderr
    assert run_rows(store_url) == []


def test_store_in_a_missing_directory_is_a_typed_error(plain_cli, tmp_path):
    url = f"sqlite:///{tmp_path / 'missing' / 'surefoot.db'}"
    done = plain_cli("runs", "list", APP, "--store", url, expect=1)
    assert error_line(done.stderr).startswith("error: StoreUnavailableError: cannot open")
    assert not (tmp_path / "missing").exists()


def test_operator_command_on_a_mistyped_store_path_fails_and_creates_nothing(plain_cli, tmp_path):
    url = f"sqlite:///{tmp_path / 'typo.db'}"
    for args in (("runs", "list", APP), ("queues", "pause", APP, "invoices")):
        done = plain_cli(*args, "--store", url, expect=1)
        assert error_line(done.stderr).startswith("error: StoreUnavailableError: no store at")
    assert not (tmp_path / "typo.db").exists()


def test_store_of_a_newer_schema_is_refused_by_every_command_and_left_unchanged(
    plain_cli, tmp_path
):
    path = tmp_path / "future.db"
    url = f"sqlite:///{path}"
    plain_cli("db", "upgrade", "--store", url)
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(
            "INSERT INTO surefoot_schema VALUES (?, '9999_future.sql', '2031-01-01')",
            (SCHEMA_VERSION + 1,),
        )
        conn.commit()
    before = path.read_bytes()
    for args in (("db", "upgrade", "--store", url), ("runs", "list", APP, "--store", url)):
        done = plain_cli(*args, expect=1)
        assert error_line(done.stderr).startswith("error: SchemaTooNewError:"), done.stderr
    assert path.read_bytes() == before


def test_invalid_review_decision_is_refused_with_its_allowed_actions(plain_cli, local_app):
    app: sf.App = local_app()
    app.start("approve", 10)
    drain(app)
    (item,) = app.store.list_reviews(None, 10, 0)
    done = plain_cli("review", "decide", APP, item.item_id, "maybe", expect=1)
    text = error_line(done.stderr)
    assert text.startswith("error: InvalidDecisionError: 'maybe' is not an action")
    assert "allowed: approve, reject" in text
    assert app.store.get_review(item.item_id) == item
