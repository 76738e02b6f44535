"""A real HTTP server on loopback that fails on cue and keeps a ledger of its effects.

It stands for an external system such as a payments API. Every collection
(``payments``, ``reservations``, ...) accepts:

* ``POST /{collection}`` with an ``Idempotency-Key`` header and a JSON body: creates
  a record (the external *effect*) and answers 201 with it;
* ``GET /{collection}/{key}``: the record created under that idempotency key, or 404
  (what a ``reconcile`` hook looks up);
* ``POST /{collection}/{key}/reverse``: undoes a record (what a ``compensate`` hook
  calls); reversals are kept in order.

Faults are cued per collection and consumed one per ``POST``: an HTTP status (with an
optional ``Retry-After`` and body), a hang *before* processing (the client's read
timeout fires and nothing happened) or a hang *after* committing (the effect happened,
then the client times out: the ambiguous case). A standing fault applies to every
``POST`` until :meth:`FaultServer.heal` is called.

By default a collection is naive: every successful ``POST`` is a new effect, even with
a key seen before, so a blind re-send shows up as a duplicate in the ledger. A
collection marked with :meth:`FaultServer.dedupe` answers a repeated key with the
record it already holds, like an API that honours idempotency keys.

Every request is logged (method, collection, key, outcome, monotonic time), so tests
can assert how often and when the server was called, not only what it holds.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

IDEMPOTENCY_HEADER = "Idempotency-Key"


@dataclass(frozen=True)
class Fault:
    """How the server answers one ``POST`` instead of processing it normally."""

    status: int | None = None
    retry_after: str | None = None
    body: Any = None
    hang_before_s: float = 0.0
    hang_after_commit_s: float = 0.0

    @classmethod
    def http(
        cls, status: int, *, retry_after: float | str | None = None, body: Any = None
    ) -> Fault:
        """Answer ``status`` without processing the request."""
        header = None if retry_after is None else str(retry_after)
        return cls(status=status, retry_after=header, body=body)

    @classmethod
    def hang_before_processing(cls, seconds: float) -> Fault:
        """Sleep ``seconds`` and then drop the request: nothing happened."""
        return cls(hang_before_s=seconds)

    @classmethod
    def hang_after_commit(cls, seconds: float) -> Fault:
        """Record the effect, then sleep ``seconds`` before answering."""
        return cls(hang_after_commit_s=seconds)


@dataclass(frozen=True)
class Effect:
    """One record the external system holds (or one reversal of a record)."""

    collection: str
    key: str
    effect_id: str
    body: Any
    at: float


@dataclass(frozen=True)
class Received:
    """One request as the server saw it, and what it did with it."""

    method: str
    collection: str
    key: str | None
    outcome: str
    at: float
    body: Any = None


@dataclass
class _Collection:
    cues: deque[Fault] = field(default_factory=deque)
    standing: Fault | None = None
    dedupe: bool = False


class FaultServer:
    """Start with :meth:`start` (or as a context manager); ``url`` is its base URL."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._collections: dict[str, _Collection] = {}
        self._effects: list[Effect] = []
        self._reversals: list[Effect] = []
        self._received: list[Received] = []
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> FaultServer:
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        httpd.daemon_threads = False  # server_close() joins every handler thread
        httpd.block_on_close = True
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fault-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Wake every hanging handler, stop serving and close the socket."""
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "the fault server is not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- cues --------------------------------------------------------------------------
    def fail_next(self, collection: str, *faults: Fault) -> None:
        """The next ``len(faults)`` POSTs to ``collection`` get these faults, in order."""
        with self._lock:
            self._collection(collection).cues.extend(faults)

    def fail_always(self, collection: str, fault: Fault) -> None:
        """Every POST to ``collection`` gets ``fault`` (after any cued ones) until healed."""
        with self._lock:
            self._collection(collection).standing = fault

    def heal(self, collection: str | None = None) -> None:
        """Drop every cued and standing fault (of one collection, or of all)."""
        with self._lock:
            names = [collection] if collection is not None else list(self._collections)
            for name in names:
                state = self._collection(name)
                state.cues.clear()
                state.standing = None

    def dedupe(self, collection: str) -> None:
        """Answer a repeated idempotency key with the record already held."""
        with self._lock:
            self._collection(collection).dedupe = True

    # -- the ledger ----------------------------------------------------------------------
    def effects(self, collection: str | None = None) -> list[Effect]:
        with self._lock:
            return [e for e in self._effects if collection in (None, e.collection)]

    def effects_for(self, key: str, collection: str | None = None) -> list[Effect]:
        return [e for e in self.effects(collection) if e.key == key]

    def reversals(self, collection: str | None = None) -> list[Effect]:
        with self._lock:
            return [e for e in self._reversals if collection in (None, e.collection)]

    def received(
        self, collection: str | None = None, *, method: str | None = None
    ) -> list[Received]:
        with self._lock:
            return [
                r
                for r in self._received
                if collection in (None, r.collection) and method in (None, r.method)
            ]

    def posts(self, collection: str, key: str | None = None) -> list[Received]:
        return [r for r in self.received(collection, method="POST") if key in (None, r.key)]

    # -- request handling (called from handler threads) ------------------------------------
    def _collection(self, name: str) -> _Collection:
        return self._collections.setdefault(name, _Collection())

    def _log(self, received: Received) -> None:
        with self._lock:
            self._received.append(received)

    def _next_fault(self, collection: str) -> Fault | None:
        with self._lock:
            state = self._collection(collection)
            if state.cues:
                return state.cues.popleft()
            return state.standing

    def _create(self, collection: str, key: str, body: Any) -> tuple[Effect, bool]:
        with self._lock:
            if self._collection(collection).dedupe:
                for effect in self._effects:
                    if effect.collection == collection and effect.key == key:
                        return effect, False
            effect = Effect(collection, key, uuid.uuid4().hex[:12], body, time.monotonic())
            self._effects.append(effect)
            return effect, True

    def _find(self, collection: str, key: str) -> Effect | None:
        with self._lock:
            for effect in self._effects:
                if effect.collection == collection and effect.key == key:
                    return effect
            return None

    def _reverse(self, collection: str, key: str) -> Effect | None:
        original = self._find(collection, key)
        if original is None:
            return None
        reversal = Effect(collection, key, original.effect_id, original.body, time.monotonic())
        with self._lock:
            self._reversals.append(reversal)
        return reversal

    def _hang(self, seconds: float) -> None:
        self._stopping.wait(seconds)


def _record(effect: Effect) -> dict[str, Any]:
    return {"id": effect.effect_id, "key": effect.key, "body": effect.body}


def _handler_for(server: FaultServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _parts(self) -> list[str]:
            return [p for p in self.path.split("?", 1)[0].split("/") if p]

        def _answer(
            self, status: int, body: Any = None, headers: dict[str, str] | None = None
        ) -> None:
            data = json.dumps(body if body is not None else {}).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                pass  # the client gave up waiting; what happened is in the ledger

        def _read_json(self) -> Any:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            return json.loads(raw) if raw else None

        def do_GET(self) -> None:
            parts = self._parts()
            if len(parts) != 2:
                self._answer(HTTPStatus.NOT_FOUND, {"error": "no such route"})
                return
            collection, key = parts
            effect = server._find(collection, key)
            outcome = "found" if effect is not None else "not-found"
            server._log(Received("GET", collection, key, outcome, time.monotonic()))
            if effect is None:
                self._answer(HTTPStatus.NOT_FOUND, {"error": f"no {collection} with key {key}"})
            else:
                self._answer(HTTPStatus.OK, _record(effect))

        def do_POST(self) -> None:
            parts = self._parts()
            body = self._read_json()
            if len(parts) == 3 and parts[2] == "reverse":
                self._reverse(parts[0], parts[1])
            elif len(parts) == 1:
                self._create(parts[0], body)
            else:
                self._answer(HTTPStatus.NOT_FOUND, {"error": "no such route"})

        def _reverse(self, collection: str, key: str) -> None:
            reversal = server._reverse(collection, key)
            outcome = "reversed" if reversal is not None else "not-found"
            server._log(Received("POST", f"{collection}/reverse", key, outcome, time.monotonic()))
            if reversal is None:
                self._answer(HTTPStatus.NOT_FOUND, {"error": "nothing to reverse"})
            else:
                self._answer(HTTPStatus.OK, _record(reversal))

        def _create(self, collection: str, body: Any) -> None:
            key = self.headers.get(IDEMPOTENCY_HEADER)

            def log(outcome: str) -> None:
                server._log(Received("POST", collection, key, outcome, time.monotonic(), body))

            if not key:
                log("400")
                self._answer(HTTPStatus.BAD_REQUEST, {"error": f"{IDEMPOTENCY_HEADER} missing"})
                return
            fault = server._next_fault(collection)
            if fault is not None and fault.status is not None:
                log(str(fault.status))
                headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
                self._answer(fault.status, fault.body or {"error": "injected"}, headers)
                return
            if fault is not None and fault.hang_before_s > 0:
                log("hung-before")
                server._hang(fault.hang_before_s)
                self._answer(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "gave up before processing"})
                return
            effect, created = server._create(collection, key, body)
            if fault is not None and fault.hang_after_commit_s > 0:
                log("committed-then-hung")
                server._hang(fault.hang_after_commit_s)
            else:
                log("committed" if created else "replayed")
            self._answer(HTTPStatus.CREATED if created else HTTPStatus.OK, _record(effect))

    return Handler
