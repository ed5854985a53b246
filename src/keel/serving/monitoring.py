"""Prometheus metrics of one service instance (its own registry, so several apps in one process never clash).

With several worker processes (``keel serve --workers N``) each worker counts into files under
``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's multiprocess mode, set before the workers start), and every
worker's ``/metrics`` answers with the sum over all of them: one scrape sees the whole service.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Iterable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
RECORD_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
CONTENT_TYPE = CONTENT_TYPE_LATEST
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


class ServiceMetrics:
    """Requests by route and status, latency, predictions per class, records per request, the served version."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "keel_requests", "HTTP requests by route, method and status", ["route", "method", "status"],
            registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "keel_request_duration_seconds", "Time to answer a request", ["route"], buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )  # fmt: skip
        self.predictions = Counter(
            "keel_predictions", "Predictions made, by model version and predicted class", ["model", "version", "label"],
            registry=self.registry,
        )  # fmt: skip
        self.records = Histogram(
            "keel_records_per_request", "Records per prediction request", buckets=RECORD_BUCKETS,
            registry=self.registry,
        )  # fmt: skip
        self.warnings = Counter(
            "keel_prediction_warnings", "Values outside the training data (unseen category, out of range), by field",
            ["model", "version", "field"], registry=self.registry,
        )  # fmt: skip
        self.model_info = Gauge(
            "keel_model_info", "The model versions being served (value 1), by role (primary, canary, shadow)",
            ["model", "version", "alias", "role"], registry=self.registry, multiprocess_mode="livemax",
        )  # fmt: skip
        self.swaps = Counter(
            "keel_model_swaps", "Checks that found a new version, by outcome (swapped or refused)", ["outcome"],
            registry=self.registry,
        )  # fmt: skip
        self.log_dropped = Counter(
            "keel_prediction_log_dropped", "Records left out of the prediction log because its writer fell behind",
            registry=self.registry,
        )  # fmt: skip
        self.shadow_agreement = Counter(
            "keel_shadow_agreement", "Records scored by the primary and the shadow version, by whether the predicted "
            "class agrees (regression: within 1% of the primary's value)", ["model", "primary", "shadow", "outcome"],
            registry=self.registry,
        )  # fmt: skip
        self.shadow_dropped = Counter(
            "keel_shadow_dropped", "Records not scored by the shadow version because it fell behind",
            registry=self.registry,
        )  # fmt: skip
        self._served: dict[str, tuple[str, str, str]] = {}
        self._collectors: list[Any] = []
        # Label children by their values: prometheus_client's labels() validates and locks on every call.
        self._children: dict[tuple[Any, ...], Any] = {}

    def register(self, collector: Any) -> None:
        """Add a custom collector (e.g. the drift gauges of this process) to what ``render`` reports."""
        self.registry.register(collector)
        self._collectors.append(collector)

    def close(self) -> None:
        """In multiprocess mode, mark this worker gone (its live gauges stop counting)."""
        if multiprocess_directory() is not None:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]

    def served(self, name: str, version: int, alias: str | None, role: str = "primary") -> None:
        """Record the version now served in ``role`` (the info gauge carries only the current one per role)."""
        previous = self._served.get(role)
        if previous is not None and previous != (name, str(version), alias or ""):
            if multiprocess_directory() is None:
                self.model_info.remove(*previous, role)
            else:  # a removed series would keep its last value in the worker's file
                self.model_info.labels(*previous, role).set(0)
        self._served[role] = (name, str(version), alias or "")
        self.model_info.labels(name, str(version), alias or "", role).set(1)

    def _child(self, metric: Any, *values: str) -> Any:
        """``metric.labels(*values)``, looked up once per distinct label values."""
        key = (id(metric), *values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request."""
        self._child(self.requests, route, method, str(status)).inc()
        self._child(self.latency, route).observe(seconds)

    def predicted(self, name: str, version: int, results: Sequence[dict[str, Any]]) -> None:
        """Count predictions by class, records per request and warnings by field, from per-record results."""
        labels = [result["label"] for result in results] if results and "label" in results[0] else None
        fields = [warning["field"] for result in results if result["warnings"] for warning in result["warnings"]]
        self.counted(name, version, len(results), labels, fields)

    def counted(self, name: str, version: int, count: int, labels: Sequence[Any] | None, warned: Iterable[str]) -> None:
        """Count ``count`` predictions (``labels`` for a classifier, else ``None``) and the fields ``warned`` about."""
        self.records.observe(count)
        tag = str(version)
        if labels is not None and len(labels) == 1:  # one record: no counting needed
            self._child(self.predictions, name, tag, str(labels[0])).inc()
        else:
            counts = collections.Counter(map(str, labels)) if labels is not None else {"value": count}
            for label, number in counts.items():
                self._child(self.predictions, name, tag, label).inc(number)
        fields = list(warned)
        if fields:
            for field, number in collections.Counter(fields).items():
                self._child(self.warnings, name, tag, field).inc(number)

    def agreement(self, name: str, primary: int, shadow: int, agreed: int, disagreed: int) -> None:
        """Count records on which the shadow version agreed or disagreed with the primary."""
        if agreed:
            self.shadow_agreement.labels(name, str(primary), str(shadow), "agree").inc(agreed)
        if disagreed:
            self.shadow_agreement.labels(name, str(primary), str(shadow), "disagree").inc(disagreed)

    def render(self) -> bytes:
        """The Prometheus text exposition (of every worker process, in multiprocess mode)."""
        if multiprocess_directory() is None:
            return bytes(generate_latest(self.registry))
        from prometheus_client import multiprocess

        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
        for collector in self._collectors:  # per-process collectors (drift) report this worker's own view
            merged.register(collector)
        return bytes(generate_latest(merged))


def multiprocess_directory() -> str | None:
    """The folder worker processes count into, when the service runs several (``None`` with one)."""
    return os.environ.get(MULTIPROCESS_ENV) or None
