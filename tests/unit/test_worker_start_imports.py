"""What a worker process loads at start: nothing it does not use.

A worker replacing one that died is the start of a recovery, so the libraries only some
workers need (the HTTP client, the tracing SDK) are imported when first used. Checked in
a fresh interpreter, the way ``python -m surefoot worker`` starts.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import surefoot as sf
from surefoot.engine.facts import extract_facts

DEFERRED = ("httpx", "opentelemetry.sdk.trace", "opentelemetry.sdk.resources")


def _loaded_after(code: str) -> dict[str, bool]:
    probe = (
        f"{code}\nimport json, sys\n"
        f"print(json.dumps({{m: m in sys.modules for m in {list(DEFERRED)!r}}}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    loaded: dict[str, bool] = json.loads(out.stdout.strip().splitlines()[-1])
    return loaded


def test_worker_command_starts_without_the_http_client_or_tracing_sdk():
    loaded = _loaded_after("import surefoot, surefoot.cli.worker")
    assert loaded == dict.fromkeys(DEFERRED, False)


def test_the_probe_sees_a_module_that_is_loaded():
    # Negative control: the same probe reports httpx once something imports it.
    assert _loaded_after("import surefoot\nsurefoot.http_client")["httpx"] is True


def test_http_errors_are_still_classified_once_httpx_is_in_use():
    httpx = pytest.importorskip("httpx")
    request = httpx.Request("POST", "https://api.example.test/invoices")
    response = httpx.Response(429, headers={"Retry-After": "7"}, request=request)
    error = httpx.HTTPStatusError("too many", request=request, response=response)
    wrapped = RuntimeError("posting the invoice failed")
    wrapped.__cause__ = error
    facts = extract_facts(wrapped, step_idempotent=False, now_epoch=0.0)
    assert (facts.http_status, facts.http_method, facts.retry_after_s) == (429, "POST", 7.0)
    assert facts.request_sent is True
    assert "httpx.HTTPStatusError" in facts.error_mro
    assert callable(sf.http_client)
