"""Canary secrets never reach the logs, the audit log, spans or stored error views."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import asdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import surefoot as sf
from surefoot.config import Settings
from surefoot.observability import redaction
from surefoot.observability.logging import configure_logging, unconfigure_logging
from surefoot.observability.redaction import REDACTED, Redactor
from tests.integration.support.fixtures import MakeApp, StartWorker
from tests.observability.conftest import Receiver

PASSWORD = "canary-pw-4f1e9a"
TOKEN = "canary-tok-b7d203"
IN_ERROR = "canary-err-91cc0e"
ACCOUNT = "ACCT-55501234"  # caught only by the configured pattern
CANARIES = (PASSWORD, TOKEN, IN_ERROR, ACCOUNT)


@pytest.fixture
def log_text() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    settings = Settings(log_level="DEBUG", log_format="json", redact_pattern=r"ACCT-\d+")
    handler = configure_logging(settings, stream=stream, replace_handlers=False)
    yield stream
    unconfigure_logging(handler)
    redaction.configure()


def test_canary_secrets_never_appear_in_logs_audit_spans_or_errors(
    make_app: MakeApp,
    start_worker: StartWorker,
    receiver: Receiver,
    spans: InMemorySpanExporter,
    log_text: io.StringIO,
) -> None:
    app = make_app()

    @app.step
    def sign_in(url: str, user: str, password: str) -> None:
        with sf.http_client() as client:
            client.post(url, headers={"Authorization": f"Bearer {TOKEN}"}, json={"user": user})
        raise sf.PermanentError(
            f"vendor refused: token={IN_ERROR} for account {ACCOUNT} (password {password!r})"
            f" password={password}"
        )

    @app.workflow
    def secretive(ctx: sf.WorkflowContext, url: str, user: str, password: str) -> None:
        sign_in(url, user, password)

    handle = app.start(secretive, receiver.url, "ada", PASSWORD)
    start_worker(app)
    with pytest.raises(sf.RunFailedError):
        handle.result(timeout=10)
    assert receiver.requests[0][0]["authorization"] == f"Bearer {TOKEN}"  # it was sent

    dead = app.store.get_dead_letter(handle.run_id)
    assert dead is not None
    outputs = {
        "logs": log_text.getvalue(),
        "audit": json.dumps(
            [asdict(e) for e in app.store.audit_entries(after_seq=0, limit=1000)], default=str
        ),
        "spans": "\n".join(s.to_json() for s in spans.get_finished_spans()),
        "dead letter": json.dumps(asdict(dead), default=str),
        "run error": handle.record().error or "",
        "attempt errors": json.dumps([a.error for a in app.store.list_attempts(handle.run_id)]),
    }
    assert "sign_in" in outputs["logs"]  # the failure was logged...
    assert REDACTED in outputs["logs"]  # ...with its secrets taken out
    assert spans.get_finished_spans()
    for where, text in outputs.items():
        for canary in CANARIES:
            assert canary not in text, f"{canary} leaked into {where}"


def test_redactor_drops_named_fields_at_any_depth_and_secret_looking_text() -> None:
    redactor = Redactor(names=["iban"], patterns=[r"ACCT-\d+"])
    cleaned = redactor.value(
        {
            "user": "ada",
            "Password": "x",
            "nested": [{"api_key": "y", "IBAN": "z", "note": f"acct {ACCOUNT}"}],
            "header": f"Authorization: Bearer {TOKEN}",
            "url": f"postgresql://app:{PASSWORD}@db/prod",
        }
    )
    assert cleaned["user"] == "ada"
    assert cleaned["Password"] == REDACTED
    assert cleaned["nested"][0]["api_key"] == REDACTED
    assert cleaned["nested"][0]["IBAN"] == REDACTED
    assert ACCOUNT not in cleaned["nested"][0]["note"]
    assert cleaned["header"] == f"Authorization: Bearer {REDACTED}"
    assert cleaned["url"] == f"postgresql://app:{REDACTED}@db/prod"
    assert redactor.text("nothing secret here") == "nothing secret here"


# Text near and inside what the default patterns look for, so that examples often match.
_FRAGMENTS = st.sampled_from(
    [
        "Bearer ",
        "basic ",
        "BASIC\t",
        "password",
        "PASSWD",
        "db_secret_x",
        "Token",
        "api-key",
        "API_KEY",
        "=",
        ": ",
        " '",
        '"',
        "eyJ",
        "abcdEFGH1234",
        ".",
        "sk_live_",
        "pk_test_",
        "ghp_",
        "xoxb-",
        "AKIA",
        "0123456789ABCDEF",
        "https://",
        "user",
        ":",
        "@",
        "host",
        " ",
        "-",
        "_",
    ]
)
_TEXT = st.lists(_FRAGMENTS | st.text(max_size=6), max_size=12).map("".join)


@settings(max_examples=600, deadline=None)
@given(_TEXT)
def test_text_the_prefilter_passes_over_matches_no_default_pattern(value: str) -> None:
    """The cheap check that lets most log fields skip the default patterns never skips
    one that would have redacted something."""
    if not redaction.may_match_default(value):
        for pattern in redaction.DEFAULT_SECRET_PATTERNS:
            assert re.search(pattern, value) is None, (pattern, value)


def test_the_prefilter_lets_every_default_pattern_see_its_secrets() -> None:
    """Negative control for the property above: each sample secret is seen as possible."""
    samples = [
        f"Authorization: Bearer {TOKEN}",
        f"password={PASSWORD}",
        "eyJhbGciOiJIUzI1.eyJzdWIiOiIxMjM0.sig",
        "key sk_live_abcdef123456",
        "ghp_abcdefghijklmnopqrstuvwxyz",
        "xoxb-1234567890-abc",
        "AKIAABCDEFGHIJKLMNOP",
        f"postgresql://app:{PASSWORD}@db/prod",
    ]
    for sample in samples:
        assert any(re.search(p, sample) for p in redaction.DEFAULT_SECRET_PATTERNS), sample
        assert redaction.may_match_default(sample), sample
    assert not redaction.may_match_default("2030-01-01T00:00:00Z run r-1 (three_steps) succeeded")
