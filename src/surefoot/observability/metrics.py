"""Prometheus metrics: counters and histograms the engine updates as it works, and gauges
read from the store when scraped.

The counters live in the process's default registry: each process (server, worker)
counts what *it* did, and Prometheus sums over processes. The store gauges (queue depth
and age, dead letters, review backlog, breakers, workers) describe the shared store, so
they are the same from every process; :func:`exposition` adds them at scrape time.
Workers serve the same text on ``127.0.0.1:--metrics-port`` (:func:`serve_worker_metrics`).
Every metric is listed in docs/reference/metrics.md.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

from surefoot.errors import StoreError
from surefoot.store.base import Store

_M = TypeVar("_M", bound="_KeptChildren")


class _KeptChildren(MetricWrapperBase):
    """``labels()`` that keeps each child in a dict after the first call for its values.

    Prometheus's own ``labels()`` converts and checks the values and takes a lock on every
    call; the engine asks for the same few children on every attempt and store call. The
    dict is keyed only by tuples of plain ``str``, which are exactly the keys Prometheus
    files children under, so it answers with the very child ``labels()`` would; any other
    call goes to ``labels()`` unchanged. Removing children empties the dict (under one lock
    with the lookups that fill it, so it never keeps a removed child).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._kept: dict[tuple[object, ...], Any] = {}
        self._kept_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def labels(self: _M, *labelvalues: object, **labelkwargs: object) -> _M:
        if not labelkwargs:
            for value in labelvalues:
                if type(value) is not str:
                    break
            else:
                kept: _M | None = self._kept.get(labelvalues)
                if kept is not None:
                    return kept
                with self._kept_lock:
                    child = super().labels(*labelvalues)
                    self._kept[labelvalues] = child
                return child
        return super().labels(*labelvalues, **labelkwargs)

    def remove(self, *labelvalues: Any) -> None:
        with self._kept_lock:
            super().remove(*labelvalues)
            self._kept.clear()

    def remove_by_labels(self, labels: dict[str, str]) -> None:
        with self._kept_lock:
            super().remove_by_labels(labels)
            self._kept.clear()

    def clear(self) -> None:
        with self._kept_lock:
            super().clear()
            self._kept.clear()


class _Counter(_KeptChildren, Counter):
    """A Prometheus counter whose labelled children are kept (see :class:`_KeptChildren`)."""


class _Histogram(_KeptChildren, Histogram):
    """A Prometheus histogram whose labelled children are kept."""


_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
_STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30)

RUNS_STARTED = _Counter(
    "surefoot_runs_started", "Runs committed by start() in this process.", ["workflow"]
)
RUNS_FINISHED = _Counter(
    "surefoot_runs_finished",
    "Runs that reached an end in this process, by outcome and failure class.",
    ["workflow", "outcome", "failure_class"],
)
STEP_ATTEMPTS = _Counter(
    "surefoot_step_attempts",
    "Finished step attempts, by outcome, failure class and the route chosen.",
    ["workflow", "step", "outcome", "failure_class", "route"],
)
STEP_RETRIES = _Counter(
    "surefoot_step_retries",
    "Step attempts whose failure was routed to another attempt.",
    ["workflow", "step"],
)
STEP_DURATION = _Histogram(
    "surefoot_step_duration_seconds",
    "Time inside step bodies (one observation per attempt).",
    ["workflow", "step"],
    buckets=_LATENCY_BUCKETS,
)
LEASE_TAKEOVERS = _Counter(
    "surefoot_lease_takeovers",
    "Runs claimed from a worker whose lease had expired (its attempts were interrupted).",
    ["workflow"],
)
STORE_LATENCY = _Histogram(
    "surefoot_store_latency_seconds",
    "Store calls made by workers, by operation.",
    ["operation"],
    buckets=_STORE_BUCKETS,
)
OUTBOUND_REQUESTS = _Histogram(
    "surefoot_outbound_request_duration_seconds",
    "Outbound HTTP calls made with sf.http_client(), by method and status class.",
    ["method", "status"],
    buckets=_LATENCY_BUCKETS,
)


class StoreCollector(Collector):
    """Gauges read from the store at each scrape."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterable[Metric]:
        now = datetime.now(UTC)
        up = GaugeMetricFamily(
            "surefoot_store_up", "Whether the last scrape could read the store (1) or not (0)."
        )
        try:
            families = list(self._read(now))
        except StoreError:
            up.add_metric([], 0.0)
            return [up]
        up.add_metric([], 1.0)
        return [up, *families]

    def _read(self, now: datetime) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "surefoot_queue_depth", "Runs ready to be claimed, per queue.", labels=["queue"]
        )
        age = GaugeMetricFamily(
            "surefoot_queue_oldest_age_seconds",
            "Age of the oldest run ready to be claimed, per queue.",
            labels=["queue"],
        )
        for queue in self.store.queue_stats():
            depth.add_metric([queue.queue], queue.depth)
            oldest = queue.oldest_created_at
            age.add_metric([queue.queue], (now - oldest).total_seconds() if oldest else 0.0)
        yield depth
        yield age
        dead = GaugeMetricFamily(
            "surefoot_dead_letters_open",
            "Open dead letters, per workflow and failure class.",
            labels=["workflow", "failure_class"],
        )
        for letter in self.store.dead_letter_stats():
            dead.add_metric([letter.workflow, letter.failure_class], letter.open)
        yield dead
        backlog = GaugeMetricFamily(
            "surefoot_review_backlog", "Open review items, per kind.", labels=["kind"]
        )
        review_age = GaugeMetricFamily(
            "surefoot_review_oldest_age_seconds",
            "Age of the oldest open review item, per kind.",
            labels=["kind"],
        )
        overdue = GaugeMetricFamily(
            "surefoot_review_overdue", "Open review items past their SLA.", labels=["kind"]
        )
        for review in self.store.review_stats(now):
            backlog.add_metric([review.kind], review.open)
            oldest = review.oldest_created_at
            review_age.add_metric([review.kind], (now - oldest).total_seconds() if oldest else 0.0)
            overdue.add_metric([review.kind], review.overdue)
        yield backlog
        yield review_age
        yield overdue
        breakers = GaugeMetricFamily(
            "surefoot_breaker_open",
            "Circuit breakers: 1 when open or half-open, 0 when closed.",
            labels=["breaker", "state"],
        )
        for breaker in self.store.get_breakers():
            state = breaker.state.value
            breakers.add_metric([breaker.key, state], 0.0 if state == "closed" else 1.0)
        yield breakers
        workers = GaugeMetricFamily(
            "surefoot_worker_heartbeat_age_seconds",
            "Seconds since each running worker's last heartbeat.",
            labels=["worker_id"],
        )
        for beat in self.store.worker_beats():
            if beat.stopped_at is None:
                workers.add_metric([beat.worker_id], (now - beat.heartbeat_at).total_seconds())
        yield workers
        backlog_now = self.store.audit_backlog()
        unchained = GaugeMetricFamily(
            "surefoot_audit_unchained_transactions",
            "Transactions whose audit entries are committed but not yet in the hash chain"
            " (PostgreSQL; always 0 on SQLite).",
        )
        unchained.add_metric([], backlog_now.transactions)
        yield unchained
        unchained_age = GaugeMetricFamily(
            "surefoot_audit_unchained_oldest_age_seconds",
            "Age of the oldest audit entry not yet in the hash chain (0 when none).",
        )
        unchained_age.add_metric([], backlog_now.waited_s(now))
        yield unchained_age


class _Forward(Collector):
    """The process registry's metrics, inside another registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterable[Metric]:
        return self.registry.collect()


def registry_for(store: Store) -> CollectorRegistry:
    """This process's counters plus the store's gauges, in one registry to serve."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Forward(REGISTRY))
    registry.register(StoreCollector(store))
    return registry


class _HasStore(Protocol):
    @property
    def store(self) -> Store: ...


def exposition(app_or_store: _HasStore | Store) -> tuple[bytes, str]:
    """The Prometheus text for ``/metrics``: (body, content type)."""
    store = app_or_store.store if hasattr(app_or_store, "store") else app_or_store
    return generate_latest(registry_for(store)), CONTENT_TYPE_LATEST


@dataclass(frozen=True)
class MetricsServer:
    host: str
    port: int
    _server: WSGIServer

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def serve_worker_metrics(store: Store, port: int, host: str = "127.0.0.1") -> MetricsServer:
    """Serve :func:`exposition` over HTTP on ``host:port`` (any path) from a daemon thread,
    for workers. Port 0 picks a free port; the server says which."""
    server, _thread = start_http_server(port, addr=host, registry=registry_for(store))
    bound_host, bound_port = server.server_address[:2]
    return MetricsServer(str(bound_host), int(bound_port), server)


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    """A sample's current value in this process's registry (0.0 when absent)."""
    value = REGISTRY.get_sample_value(name, labels or {})
    return 0.0 if value is None else value
