"""What steps use to talk to the fault server: httpx with a timeout and raise_for_status."""

from __future__ import annotations

import socket
from typing import Any

import httpx

import surefoot as sf
from tests.integration.support.fault_server import IDEMPOTENCY_HEADER

DEFAULT_TIMEOUT_S = 2.0
SHORT_TIMEOUT_S = 0.75  # well under every hang the tests cue


def create(
    base_url: str,
    collection: str,
    body: Any,
    *,
    key: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> dict[str, Any]:
    """POST a record; the key defaults to the running step's idempotency key."""
    with httpx.Client(timeout=timeout_s) as client:
        response = client.post(
            f"{base_url}/{collection}",
            json=body,
            headers={IDEMPOTENCY_HEADER: key or sf.current_step().idempotency_key},
        )
        response.raise_for_status()
        record: dict[str, Any] = response.json()
        return record


def lookup(
    base_url: str, collection: str, key: str, *, timeout_s: float = DEFAULT_TIMEOUT_S
) -> dict[str, Any] | None:
    """GET the record created under ``key``; None when the server has none."""
    with httpx.Client(timeout=timeout_s) as client:
        response = client.get(f"{base_url}/{collection}/{key}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        record: dict[str, Any] = response.json()
        return record


def reverse(
    base_url: str, collection: str, key: str, *, timeout_s: float = DEFAULT_TIMEOUT_S
) -> dict[str, Any]:
    """Undo the record created under ``key``."""
    with httpx.Client(timeout=timeout_s) as client:
        response = client.post(f"{base_url}/{collection}/{key}/reverse")
        response.raise_for_status()
        record: dict[str, Any] = response.json()
        return record


def closed_port_url() -> str:
    """A loopback URL whose port nothing listens on (connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"
