"""``surefoot serve``, ``surefoot users`` and ``surefoot tokens`` as a user runs them: the
server refuses to start when nobody could sign in, serves API and workers in one process,
warns on every response without auth, and drains on SIGTERM. Users and tokens made on
the command line work against the API; secrets never reach the audit log."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from surefoot.store.sqlite import SQLiteStore

PROJECT_ROOT = Path(__file__).resolve().parents[2]
APP = "tests.web.serve_app:app"
PASSWORD = "a long enough password"


def surefoot(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "surefoot", *args],
        cwd=PROJECT_ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def store_arg(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'served.db'}"


def test_serve_refuses_to_start_when_nobody_could_sign_in(store_arg: str):
    done = surefoot("serve", APP, "--store", store_arg, "--port", str(free_port()))
    assert done.returncode == 2
    assert "NoCredentialsError" in done.stderr
    assert "surefoot users add" in done.stderr
    assert "--insecure-no-auth" in done.stderr


@pytest.fixture
def served(store_arg: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    options = ["--store", store_arg, "--port", str(port), "--insecure-no-auth"]
    process = subprocess.Popen(
        [sys.executable, "-m", "surefoot", "serve", APP, *options, "--concurrency", "2"],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(f"{url}/openapi.json", timeout=1)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise AssertionError(process.communicate()[0]) from None
            time.sleep(0.1)
    yield url, process
    if process.poll() is None:
        process.kill()
        process.wait(10)


def test_serve_runs_api_and_workers_in_one_process_warns_without_auth_and_drains(
    served: tuple[str, subprocess.Popen[str]],
):
    url, process = served
    with httpx.Client(base_url=url, timeout=5) as http:
        started = http.post("/api/v1/runs", json={"workflow": "greet", "input": ["ann"]})
        assert started.status_code == 201
        assert started.headers["X-Surefoot-Warning"] == "authentication is disabled"
        run_id = started.json()["run_id"]
        deadline = time.monotonic() + 15
        while http.get(f"/api/v1/runs/{run_id}").json()["run"]["status"] != "succeeded":
            assert time.monotonic() < deadline, "the in-process worker did not run it"
            time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    # uvicorn re-raises the signal once shut down; the workers were drained before that.
    assert process.returncode in (0, -signal.SIGTERM), output
    assert "AUTHENTICATION IS DISABLED" in output
    assert output.index("draining workers") < output.index("Application shutdown complete")
    assert "stopped" in output.split("draining workers")[1]


def test_users_and_tokens_made_on_the_command_line_work_and_leave_no_secret_behind(
    store_arg: str,
):
    added = surefoot(
        "users",
        "add",
        APP,
        "ann",
        "--role",
        "admin",
        "--password-stdin",
        "--store",
        store_arg,
        stdin=PASSWORD + "\n",
    )
    assert added.returncode == 0, added.stderr
    assert PASSWORD not in added.stdout + added.stderr
    created = surefoot(
        "tokens",
        "create",
        APP,
        "ci",
        "--role",
        "viewer",
        "--expires-days",
        "2",
        "--store",
        store_arg,
    )
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert secret.startswith("sft_")
    listed = surefoot("tokens", "list", APP, "--store", store_arg)
    assert "ci" in listed.stdout
    assert secret not in listed.stdout
    assert (
        surefoot(
            "users", "set-role", APP, "ann", "--role", "reviewer", "--store", store_arg
        ).returncode
        == 0
    )
    assert surefoot("users", "disable", APP, "ann", "--store", store_arg).returncode == 0
    users = surefoot("users", "list", APP, "--store", store_arg).stdout
    assert "ann" in users
    assert "reviewer" in users
    assert "disabled" in users

    store = SQLiteStore(store_arg)
    try:
        entries = store.audit_entries(after_seq=0, limit=100)
        user = store.get_user("ann")
        token = store.list_tokens()[0]
    finally:
        store.close()
    assert [e.action for e in entries] == [
        "user.created",
        "token.created",
        "user.updated",
        "user.updated",
    ]
    audit = json.dumps([[e.before, e.after, e.reason] for e in entries])
    assert user is not None
    assert user.password_hash is not None
    for secretish in (PASSWORD, user.password_hash, secret, token.token_hash):
        assert secretish not in audit
    revoked = surefoot("tokens", "revoke", APP, token.token_id, "--store", store_arg)
    assert revoked.returncode == 0, revoked.stderr


def test_a_password_is_never_taken_as_an_argument(store_arg: str):
    done = surefoot("users", "add", APP, "bo", "--role", "viewer", "--password", PASSWORD)
    assert done.returncode != 0
    assert "--password" in done.stderr
