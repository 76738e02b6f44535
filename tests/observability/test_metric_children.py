"""The engine's metrics keep their labelled children: asking again for the same labels gives
the same child Prometheus's own ``labels()`` gives, so every count lands where it always did,
and removing children is honoured."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest

from surefoot.observability import metrics
from surefoot.observability.metrics import sample


def _fresh_counter() -> tuple[Any, CollectorRegistry]:
    """A counter of the engine's kind, in its own registry (the process's is shared)."""
    registry = CollectorRegistry()
    counter = type(metrics.STEP_RETRIES)(
        "surefoot_test_things", "Things.", ["workflow", "step"], registry=registry
    )
    return counter, registry


def test_kept_child_is_the_child_prometheus_labels_gives():
    workflow = f"wf-{uuid.uuid4().hex}"
    kept = metrics.STEP_ATTEMPTS.labels(workflow, "s", "succeeded", "", "")
    assert metrics.STEP_ATTEMPTS.labels(workflow, "s", "succeeded", "", "") is kept
    assert Counter.labels(metrics.STEP_ATTEMPTS, workflow, "s", "succeeded", "", "") is kept
    by_name = metrics.STEP_ATTEMPTS.labels(
        workflow=workflow, step="s", outcome="succeeded", failure_class="", route=""
    )
    assert by_name is kept


def test_counts_through_kept_children_equal_counts_through_labels():
    workflow = f"wf-{uuid.uuid4().hex}"
    labels = {"workflow": workflow, "step": "s"}
    for _ in range(3):
        metrics.STEP_RETRIES.labels(workflow, "s").inc()
    for _ in range(2):
        Counter.labels(metrics.STEP_RETRIES, workflow, "s").inc()
    assert sample("surefoot_step_retries_total", labels) == 5.0
    for _ in range(4):
        metrics.STORE_LATENCY.labels(workflow).observe(0.002)
    count = sample("surefoot_store_latency_seconds_count", {"operation": workflow})
    assert count == 4.0


def test_values_that_are_not_plain_strings_are_labelled_as_prometheus_does():
    class Named(str):  # equal to "s", but str() of it is "Named.S"
        __slots__ = ()

        def __str__(self) -> str:
            return "Named.S"

    counter, registry = _fresh_counter()
    counter.labels("w", "s").inc()
    counter.labels("w", Named("s")).inc(2)
    counter.labels("w", 7).inc(3)

    def value(step: str) -> float | None:
        return registry.get_sample_value(
            "surefoot_test_things_total", {"workflow": "w", "step": step}
        )

    assert (value("s"), value("Named.S"), value("7")) == (1.0, 2.0, 3.0)


def test_children_removed_or_cleared_count_again_from_zero_and_are_exported():
    counter, registry = _fresh_counter()

    def value(step: str) -> float | None:
        return registry.get_sample_value(
            "surefoot_test_things_total", {"workflow": "w", "step": step}
        )

    counter.labels("w", "a").inc()
    counter.labels("w", "b").inc()
    counter.remove("w", "a")
    counter.labels("w", "a").inc(5)
    assert (value("a"), value("b")) == (5.0, 1.0)
    counter.clear()
    assert b"surefoot_test_things_total{" not in generate_latest(registry)
    counter.labels("w", "b").inc(2)
    assert (value("a"), value("b")) == (None, 2.0)
    counter.remove_by_labels({"step": "b"})
    counter.labels("w", "b").inc()
    assert value("b") == 1.0


@pytest.mark.parametrize("values", [("w",), ("w", "s", "x"), ()])
def test_wrong_label_counts_are_still_refused(values: tuple[str, ...]):
    counter, _registry = _fresh_counter()
    with pytest.raises(ValueError, match="Incorrect label count"):
        counter.labels(*values)
