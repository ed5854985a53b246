"""Canary splits and the shadow's bookkeeping, with stand-in versions (the real service is tested in integration)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
from prometheus_client.parser import text_string_to_metric_families

from keel.serving.monitoring import ServiceMetrics
from keel.serving.prediction_log import PredictionLog
from keel.serving.traffic import Traffic, canary_bucket


class _Predictor:
    """Predicts "yes" when x > threshold."""

    def __init__(self, threshold: float, id_names: list[str] | None = None) -> None:
        self.threshold = threshold
        self.id_names = id_names or []

    def predict(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {"label": "yes" if r["x"] > self.threshold else "no", "probabilities": {}, "warnings": []} for r in records
        ]

    def predict_columns(self, columns: dict[str, list[Any]], count: int) -> tuple[dict[str, Any], list[Any]]:
        labels = ["yes" if x > self.threshold else "no" for x in columns["x"]]
        return {"label": labels, "probabilities": {"no": [0.0] * count, "yes": [1.0] * count}}, []


def _version(number: int, threshold: float, id_names: list[str] | None = None) -> Any:
    served = SimpleNamespace(name="m", version=number, recipe=None, predictor=_Predictor(threshold, id_names))
    return SimpleNamespace(current=served, start=lambda interval: None, stop=lambda: None)


def test_canary_buckets_are_stable_and_even() -> None:
    assert canary_bucket("customer:42") == canary_bucket("customer:42")
    buckets = [canary_bucket(str(i)) for i in range(20_000)]
    assert min(buckets) >= 0
    assert max(buckets) < 100
    share = sum(b < 30 for b in buckets) / len(buckets)
    assert 0.28 < share < 0.32


def test_the_split_is_sticky_by_id_column_else_by_request_id() -> None:
    metrics = ServiceMetrics()
    traffic = Traffic(_version(1, 0.5, ["customer"]), metrics, canary=_version(2, 0.5, ["customer"]), canary_percent=50)  # type: ignore[arg-type]
    by_customer = {c: traffic.choose(f"r{c}", {"customer": c, "x": 1})[1] for c in range(400)}
    for c, role in by_customer.items():  # another request, another shape: same customer, same version
        assert traffic.choose(f"other-{c}", {"records": [{"customer": c, "x": 0}]})[1] == role
        assert traffic.choose(f"cols-{c}", {"columns": {"customer": [c, c + 1], "x": [0, 0]}})[1] == role
    assert 0.4 < list(by_customer.values()).count("canary") / 400 < 0.6
    # No id value: the request id decides, the same way every time.
    roles = [traffic.choose(f"req-{i}", {"x": 1})[1] for i in range(400)]
    assert roles == [traffic.choose(f"req-{i}", {"x": 2})[1] for i in range(400)]
    assert 0.4 < roles.count("canary") / 400 < 0.6
    served, role = Traffic(_version(1, 0.5), metrics).choose("r", {"x": 1})  # type: ignore[arg-type]
    assert (served.version, role) == (1, "primary")


def test_the_shadow_scores_off_the_response_path_logs_and_counts_agreement(tmp_path: Path) -> None:
    metrics = ServiceMetrics()
    primary = _version(1, 0.5)
    traffic = Traffic(primary, metrics, shadow=_version(2, 1.5), prediction_log=PredictionLog(tmp_path))  # type: ignore[arg-type]
    traffic.start(0)
    records = [{"x": 0.0}, {"x": 1.0}, {"x": 2.0}]  # the versions disagree on x = 1 only
    traffic.answered_records("a", primary.current, "primary", records, primary.current.predictor.predict(records))
    columns = {"x": [1.0, 3.0]}
    traffic.answered_columns(
        "b", primary.current, "primary", columns, primary.current.predictor.predict_columns(columns, 2)[0], [], 2
    )
    traffic.stop()  # scores what is queued, then completes the log's file
    samples = {
        s.labels["outcome"]: s.value
        for f in text_string_to_metric_families(metrics.render().decode())
        if f.name == "keel_shadow_agreement"
        for s in f.samples
        if s.name.endswith("_total")
    }
    assert samples == {"agree": 3.0, "disagree": 2.0}
    logged = pd.read_parquet(tmp_path)
    assert len(logged) == 10
    shadow = logged[logged.shadow].sort_values(["request_id", "record"])
    assert shadow.version.tolist() == [2] * 5
    assert shadow.label.tolist() == ["no", "no", "yes", "no", "yes"]


def test_a_shadow_that_falls_behind_is_counted_not_waited_for() -> None:
    metrics = ServiceMetrics()
    primary = _version(1, 0.5)
    traffic = Traffic(primary, metrics, shadow=_version(2, 0.5), max_shadow_pending=2)  # type: ignore[arg-type]
    records = [{"x": 0.0}] * 3  # not started: nothing drains the queue
    traffic.answered_records("a", primary.current, "primary", records, primary.current.predictor.predict(records))
    text = metrics.render().decode()
    dropped = [
        s.value for f in text_string_to_metric_families(text) if f.name == "keel_shadow_dropped" for s in f.samples
    ]
    assert dropped[0] == 3.0
