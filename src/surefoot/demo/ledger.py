"""A deliberately flaky ledger: the demo's external system.

It keeps its postings in a JSON-lines file (so it outlives worker restarts), dedupes
by idempotency key like a real finance API, and injects faults on cue: connection
resets before anything happens (transient), and commits that answer with a timeout
(the ambiguous case Surefoot must never blindly re-send).
"""

from __future__ import annotations

import json
import random
import threading
from pathlib import Path
from typing import Any


class LedgerTimeoutError(TimeoutError):
    """The ledger did not answer in time (the posting may or may not have happened)."""


class FlakyLedger:
    def __init__(
        self,
        path: Path,
        *,
        seed: int | None = None,
        reset_rate: float = 0.25,
        commit_then_timeout_rate: float = 0.1,
    ) -> None:
        self.path = path
        self._rng = random.Random(seed)  # noqa: S311 - fault injection, not security
        self._lock = threading.Lock()
        self.reset_rate = reset_rate
        self.commit_then_timeout_rate = commit_then_timeout_rate

    def _read(self) -> dict[str, dict[str, Any]]:
        if not self.path.exists():
            return {}
        postings: dict[str, dict[str, Any]] = {}
        for line in self.path.read_text().splitlines():
            if line.strip():
                entry = json.loads(line)
                postings[entry["idempotency_key"]] = entry
        return postings

    def find(self, idempotency_key: str) -> dict[str, Any] | None:
        with self._lock:
            return self._read().get(idempotency_key)

    def post(self, idempotency_key: str, invoice: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            if self._rng.random() < self.reset_rate:
                raise ConnectionRefusedError("ledger refused the connection")
            existing = self._read().get(idempotency_key)
            if existing is not None:
                return existing
            entry = {
                "idempotency_key": idempotency_key,
                "posting_id": f"P-{len(self._read()) + 1}",
                "invoice_id": invoice["invoice_id"],
                "amount": invoice["amount"],
            }
            with self.path.open("a") as handle:
                handle.write(json.dumps(entry) + "\n")
            if self._rng.random() < self.commit_then_timeout_rate:
                raise LedgerTimeoutError("ledger committed but the answer timed out")
            return entry

    def count_postings(self) -> dict[str, int]:
        """Postings per invoice id (a duplicate effect would show as 2)."""
        counts: dict[str, int] = {}
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                if line.strip():
                    invoice_id = json.loads(line)["invoice_id"]
                    counts[invoice_id] = counts.get(invoice_id, 0) + 1
        return counts
