"""A deliberately flaky payments service on loopback: the demo's external dependency.

It speaks a little JSON over HTTP, like a bank or finance API would, and answers each
invoice with the faults it was cued to give, in order, before answering normally:

* ``"429"``: too many requests, with ``Retry-After: 0`` (transient: retried)
* ``"503"``: unavailable (transient: retried, and dead-lettered when it lasts)
* ``"422"``: the record is rejected (data: a person fixes it)
* ``"timeout"``: the payment is made, then the answer comes too late (ambiguous)

An account named ``INVALID`` is always rejected with 422, whatever the cues. Payments are
deduplicated by the ``Idempotency-Key`` header, as real payment APIs do. ``heal()``
drops every cue left: the service is healthy from then on.

Endpoints: ``POST /payments``; ``POST /control/cue`` (``{"invoice_id", "responses"}``);
``POST /control/heal``; ``GET /control/state``.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAULTS = frozenset({"429", "503", "422", "timeout"})
MAX_BODY = 64 * 1024


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up waiting (the "timeout" cue) is expected: say nothing."""


class FlakyService:
    """Start with ``start()`` (or ``with``); ``url`` is ``http://127.0.0.1:PORT``."""

    def __init__(self, *, port: int = 0, slow_answer_s: float = 2.0) -> None:
        self.slow_answer_s = slow_answer_s  # how late a "timeout" answer comes
        self._lock = threading.Lock()
        self._cues: dict[str, deque[str]] = {}
        self._payments: dict[str, dict[str, Any]] = {}
        self.calls = 0
        self._server = _QuietServer(("127.0.0.1", port), _handler_for(self))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FlakyService:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="flaky-service", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FlakyService:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- cues -------------------------------------------------------------------------------
    def cue(self, invoice_id: str, *responses: str) -> None:
        """The next answers for ``invoice_id``, in order (then it answers normally)."""
        unknown = sorted(set(responses) - FAULTS)
        if unknown:
            raise ValueError(f"unknown fault(s) {unknown}; known: {sorted(FAULTS)}")
        with self._lock:
            self._cues.setdefault(invoice_id, deque()).extend(responses)

    def heal(self) -> None:
        """Forget every cue: from now on every call succeeds (INVALID accounts aside)."""
        with self._lock:
            self._cues.clear()

    def payments(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return dict(self._payments)

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {
                "calls": self.calls,
                "payments": len(self._payments),
                "cues": {k: list(v) for k, v in self._cues.items() if v},
            }

    # -- the payments endpoint ---------------------------------------------------------------
    def pay(self, key: str, invoice: dict[str, Any]) -> tuple[int, dict[str, Any], float]:
        """(status, body, seconds to wait before answering) for one payment call."""
        invoice_id = str(invoice.get("invoice_id", ""))
        with self._lock:
            self.calls += 1
            queued = self._cues.get(invoice_id)
            fault = queued.popleft() if queued else None
            if fault in ("429", "503"):
                return int(fault), {"error": "busy, try again"}, 0.0
            if fault == "422" or invoice.get("account") == "INVALID":
                return 422, {"error": "rejected", "errors": ["account is not a valid IBAN"]}, 0.0
            payment = self._payments.get(key)
            if payment is None:
                payment = {
                    "payment_id": f"PAY-{len(self._payments) + 1:05d}",
                    "invoice_id": invoice_id,
                    "amount": invoice.get("amount"),
                    "idempotency_key": key,
                }
                self._payments[key] = payment
            return 201, payment, self.slow_answer_s if fault == "timeout" else 0.0


def _handler_for(service: FlakyService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "flaky-payments/1"

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the demo's terminal shows progress, not access logs."""

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status == 429:
                self.send_header("Retry-After", "0")
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> dict[str, Any] | None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                return None
            try:
                parsed = json.loads(self.rfile.read(length) or b"{}")
            except json.JSONDecodeError:
                return None
            return parsed if isinstance(parsed, dict) else None

        def do_GET(self) -> None:
            if self.path == "/control/state":
                self._answer(200, service.state())
            else:
                self._answer(404, {"error": "not found"})

        def do_POST(self) -> None:
            body = self._body()
            if body is None:
                self._answer(400, {"error": "expected a JSON object"})
            elif self.path == "/payments":
                key = self.headers.get("Idempotency-Key", "")
                if not key:
                    self._answer(400, {"error": "Idempotency-Key header is required"})
                    return
                status, answer, delay_s = service.pay(key, body)
                if delay_s:
                    time.sleep(delay_s)
                self._answer(status, answer)
            elif self.path == "/control/cue":
                try:
                    service.cue(str(body.get("invoice_id")), *body.get("responses", []))
                except ValueError as exc:
                    self._answer(400, {"error": str(exc)})
                    return
                self._answer(200, service.state())
            elif self.path == "/control/heal":
                service.heal()
                self._answer(200, service.state())
            else:
                self._answer(404, {"error": "not found"})

    return Handler
