"""Prometheus metrics of one service instance (its own registry, so several apps in one process never clash)."""

from __future__ import annotations

import collections
from collections.abc import Iterable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
RECORD_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
CONTENT_TYPE = CONTENT_TYPE_LATEST


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
            "keel_model_info", "The model version being served (value 1)", ["model", "version", "alias"],
            registry=self.registry,
        )  # fmt: skip
        self.swaps = Counter(
            "keel_model_swaps", "Checks that found a new version, by outcome (swapped or refused)", ["outcome"],
            registry=self.registry,
        )  # fmt: skip

    def served(self, name: str, version: int, alias: str | None) -> None:
        """Record the version now served (the info gauge carries only the current one)."""
        self.model_info.clear()
        self.model_info.labels(name, str(version), alias or "").set(1)

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request."""
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def predicted(self, name: str, version: int, results: Sequence[dict[str, Any]]) -> None:
        """Count predictions by class, records per request and warnings by field, from per-record results."""
        labels = [result["label"] for result in results] if results and "label" in results[0] else None
        fields = [warning["field"] for result in results if result["warnings"] for warning in result["warnings"]]
        self.counted(name, version, len(results), labels, fields)

    def counted(self, name: str, version: int, count: int, labels: Sequence[Any] | None, warned: Iterable[str]) -> None:
        """Count ``count`` predictions (``labels`` for a classifier, else ``None``) and the fields ``warned`` about."""
        self.records.observe(count)
        counts = collections.Counter(map(str, labels)) if labels is not None else {"value": count}
        tag = str(version)
        for label, number in counts.items():
            self.predictions.labels(name, tag, label).inc(number)
        for field, number in collections.Counter(warned).items():
            self.warnings.labels(name, tag, field).inc(number)

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return bytes(generate_latest(self.registry))
