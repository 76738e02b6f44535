"""The fault server does what the other tests rely on: cues, hangs, ledger, request log."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.support.fault_server import Fault, FaultServer
from tests.integration.support.http import (
    SHORT_TIMEOUT_S,
    closed_port_url,
    create,
    lookup,
    reverse,
)


def test_cued_faults_are_consumed_in_order_then_requests_succeed(server: FaultServer):
    server.fail_next("payments", Fault.http(503), Fault.http(429, retry_after=7))

    with pytest.raises(httpx.HTTPStatusError) as first:
        create(server.url, "payments", {"amount": 1}, key="k-1")
    with pytest.raises(httpx.HTTPStatusError) as second:
        create(server.url, "payments", {"amount": 1}, key="k-1")
    record = create(server.url, "payments", {"amount": 1}, key="k-1")

    assert first.value.response.status_code == 503
    assert second.value.response.status_code == 429
    assert second.value.response.headers["Retry-After"] == "7"
    assert [e.effect_id for e in server.effects("payments")] == [record["id"]]
    assert [r.outcome for r in server.posts("payments", "k-1")] == ["503", "429", "committed"]


def test_a_standing_fault_applies_until_healed(server: FaultServer):
    server.fail_always("payments", Fault.http(502))
    for _ in range(3):
        with pytest.raises(httpx.HTTPStatusError):
            create(server.url, "payments", {}, key="k")
    server.heal()
    create(server.url, "payments", {}, key="k")
    assert [r.outcome for r in server.posts("payments")] == ["502"] * 3 + ["committed"]


def test_hang_before_processing_times_the_client_out_with_no_effect(server: FaultServer):
    server.fail_next("payments", Fault.hang_before_processing(5))
    with pytest.raises(httpx.ReadTimeout):
        create(server.url, "payments", {}, key="k", timeout_s=SHORT_TIMEOUT_S)
    assert server.effects() == []
    assert lookup(server.url, "payments", "k") is None


def test_hang_after_commit_times_the_client_out_after_the_effect(server: FaultServer):
    server.fail_next("payments", Fault.hang_after_commit(5))
    with pytest.raises(httpx.ReadTimeout):
        create(server.url, "payments", {"amount": 3}, key="k", timeout_s=SHORT_TIMEOUT_S)
    found = lookup(server.url, "payments", "k")
    assert found is not None
    assert found["body"] == {"amount": 3}
    assert [r.outcome for r in server.posts("payments")] == ["committed-then-hung"]


def test_naive_collections_duplicate_a_resent_key_and_deduped_ones_do_not(server: FaultServer):
    server.dedupe("orders")
    for collection in ("payments", "orders"):
        create(server.url, collection, {}, key="same")
        create(server.url, collection, {}, key="same")
    assert len(server.effects("payments")) == 2
    assert len(server.effects("orders")) == 1
    assert [r.outcome for r in server.posts("orders")] == ["committed", "replayed"]


def test_reversals_are_kept_in_the_order_they_arrive(server: FaultServer):
    create(server.url, "a", {}, key="k1")
    create(server.url, "b", {}, key="k2")
    reverse(server.url, "b", "k2")
    reverse(server.url, "a", "k1")
    assert [(r.collection, r.key) for r in server.reversals()] == [("b", "k2"), ("a", "k1")]


def test_a_closed_port_refuses_connections():
    with pytest.raises(httpx.ConnectError):
        create(closed_port_url(), "payments", {}, key="k")


def test_stopping_wakes_a_hanging_handler_promptly():
    running = FaultServer().start()
    running.fail_next("payments", Fault.hang_after_commit(60))
    with pytest.raises(httpx.ReadTimeout):
        create(running.url, "payments", {}, key="k", timeout_s=SHORT_TIMEOUT_S)
    running.stop()  # returns well within the pytest timeout, not after 60 s
    assert len(running.effects()) == 1
