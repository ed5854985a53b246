"""What the service shows a person and a monitor: the model report at ``GET /`` and drift at ``GET /v1/monitoring``.

The prediction route hands each request's validated records and results to :meth:`DriftMonitor.observe`, which only
appends them to a bounded window (a ``deque``): the hot path does no maths. Drift against the version's stored
reference is computed when someone asks (``GET /v1/monitoring`` or a Prometheus scrape of ``/metrics``) and cached
until the window changes. The window belongs to one worker process and is emptied when a new version is swapped in.
The routes are in :mod:`keel.serving.routes.insight`.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keel.defaults import MONITOR_WINDOW
from keel.domain.drift import DEFAULT_THRESHOLD, DriftReference, DriftReport, drift_report

if TYPE_CHECKING:
    from keel.serving.swap import ServedModel

DEFAULT_WINDOW = MONITOR_WINDOW
"""Most recent records kept for drift monitoring (per worker process)."""
REFERENCE_FILE = "reference.json"


@dataclass(frozen=True)
class _Chunk:
    """One request's share of the window: feature columns, predicted labels or values, positive-class scores.

    A request of records keeps its records and is read as columns only when drift is computed (off the hot path).
    """

    columns: Mapping[str, Sequence[Any]] | None
    outputs: Sequence[Any]
    scores: Sequence[float] | None
    count: int
    records: Sequence[Mapping[str, Any]] = ()

    def column(self, name: str) -> Sequence[Any] | None:
        """The values of feature ``name`` (``None`` when a columnar request did not send it)."""
        if self.columns is not None:
            return self.columns.get(name)
        return [record.get(name) for record in self.records]


class DriftMonitor:
    """A bounded window of recent records and their predictions, compared with the served version's reference.

    Args:
        served_now: The version being served.
        window: Most recent records kept.
        threshold: PSI at or above which a feature is drifting.
    """

    def __init__(
        self,
        served_now: Callable[[], ServedModel],
        *,
        window: int = DEFAULT_WINDOW,
        threshold: float = DEFAULT_THRESHOLD,
    ) -> None:
        if window < 1:
            raise ValueError(f"the monitoring window must hold at least one record, got {window}")
        self.served_now = served_now
        self.window = window
        self.threshold = threshold
        # Requests' columns, newest last; together at most ``window`` records beyond the oldest chunk's start.
        self._chunks: collections.deque[_Chunk] = collections.deque()
        self._held = 0
        self._version: int | None = None
        self._seen = 0
        self._lock = threading.Lock()
        self._references: dict[int, DriftReference | None] = {}
        self._cached: tuple[tuple[int, int], DriftReport] | None = None
        self._pages: dict[int, str] = {}

    # -- the hot path --------------------------------------------------------------------------------------------

    def observe(
        self,
        served: ServedModel,
        records: Sequence[dict[str, Any]],
        results: Sequence[dict[str, Any]],
        columns: Mapping[str, Sequence[Any]] | None = None,
    ) -> None:
        """Remember a request's records and predictions (cheap: appends to the window).

        Args:
            served: The version that answered.
            records: The validated records.
            results: Their predictions, as returned.
            columns: The records as columns, when the caller has them already.
        """
        recent: Sequence[Mapping[str, Any]] = ()
        if columns is None or len(records) > self.window:
            columns, recent = None, records[-self.window :]
            results = results[-self.window :]
        keys = served.predictor.class_keys
        outputs = [result["label"] if "label" in result else result.get("value") for result in results]
        scores = [result["probabilities"][keys[1]] for result in results] if len(keys) == 2 else None
        self._append(served.version, _Chunk(columns, outputs, scores, len(results), recent), len(records))

    def observe_columns(
        self, served: ServedModel, columns: Mapping[str, Sequence[Any]], predictions: Mapping[str, Any], count: int
    ) -> None:
        """Remember a columnar request (``columns`` as validated) and its predictions (as returned)."""
        keys = served.predictor.class_keys
        outputs = predictions["label"] if "label" in predictions else predictions["value"]
        scores = predictions["probabilities"][keys[1]] if len(keys) == 2 else None
        self._append(served.version, _Chunk(columns, outputs, scores, count), count)

    def _append(self, version: int, chunk: _Chunk, seen: int) -> None:
        with self._lock:
            if version != self._version:
                self._chunks.clear()
                self._held = 0
                self._version = version
            self._chunks.append(chunk)
            self._held += chunk.count
            while self._held - self._chunks[0].count >= self.window:  # the oldest chunk is wholly outside
                self._held -= self._chunks.popleft().count
            self._seen += seen

    # -- on request ----------------------------------------------------------------------------------------------

    def reference(self, served: ServedModel) -> DriftReference | None:
        """The served version's stored reference, or ``None`` when it has none."""
        version = served.version
        if version not in self._references:
            directory = getattr(served.source, "directory", None)
            path = None if directory is None else Path(directory) / REFERENCE_FILE
            if path is None or not path.is_file():
                self._references[version] = None
            else:
                self._references[version] = DriftReference.model_validate_json(path.read_text(encoding="utf-8"))
        return self._references[version]

    def _snapshot(self) -> tuple[int | None, int, list[_Chunk]]:
        with self._lock:
            return self._version, self._seen, list(self._chunks)

    def report(self) -> dict[str, Any]:
        """Drift of the window against the served version's reference, as ``GET /v1/monitoring`` returns it."""
        served = self.served_now()
        reference = self.reference(served)
        base: dict[str, Any] = {
            "model": served.name,
            "version": served.version,
            "window": self.window,
            "threshold": self.threshold,
        }
        if reference is None:
            return {
                **base,
                "available": False,
                "reason": "this version has no stored drift reference (trained before keel stored one); train again",
            }
        drift = self._drift(served, reference)
        return {**base, "available": True, "skipped": reference.skipped, **_finite(drift.model_dump(mode="json"))}

    def _drift(self, served: ServedModel, reference: DriftReference) -> DriftReport:
        version, seen, items = self._snapshot()
        if version != served.version:
            items = []
        key = (served.version, seen if items else -1)
        if self._cached is not None and self._cached[0] == key:
            return self._cached[1]
        held = sum(chunk.count for chunk in items)
        start = max(0, held - self.window)  # records of the oldest chunk that fell out of the window

        def window_of(parts: list[Sequence[Any] | None]) -> list[Any]:
            values: list[Any] = []
            for chunk, part in zip(items, parts, strict=True):
                values.extend([None] * chunk.count if part is None else part)
            return values[start:]

        columns = {name: window_of([chunk.column(name) for chunk in items]) for name in reference.features}
        predictions = window_of([chunk.outputs for chunk in items]) if items else None
        scores = None
        if items and reference.score is not None:
            scores = [s for s in window_of([chunk.scores for chunk in items]) if s is not None]
        report = drift_report(reference, columns, predictions=predictions, scores=scores, threshold=self.threshold)
        self._cached = (key, report)
        return report

    def page(self, served: ServedModel) -> str | None:
        """The served version's model report with a form to try a prediction, or ``None`` without its files."""
        from keel.io import artifacts, reports

        if served.version in self._pages:
            return self._pages[served.version]
        directory = getattr(served.source, "directory", None)
        if directory is None or not (Path(directory) / "schema.json").is_file():
            return None
        directory = Path(directory)
        # Checked again here: the page shows these files, and they may have changed since the version was loaded.
        manifest = artifacts.verify_directory(directory)
        html = reports.model_report(
            directory,
            manifest,
            version=served.version,
            aliases=served.source.aliases,
            endpoint="/v1/predict",
        )
        self._pages = {served.version: html}
        return html

    # -- Prometheus ----------------------------------------------------------------------------------------------

    def describe(self) -> list[Any]:
        """Nothing up front: the gauges depend on the served version (and are computed only on scrape)."""
        return []

    def collect(self) -> Iterator[Any]:
        """Prometheus gauges of the current drift (computed lazily, on scrape)."""
        from prometheus_client.core import GaugeMetricFamily

        served = self.served_now()
        reference = self.reference(served)
        labels = ["model", "version", "feature"]
        psi = GaugeMetricFamily("keel_drift_psi", "Population stability index of the recent window", labels=labels)
        drifting = GaugeMetricFamily(
            "keel_drift_drifting", "1 when the PSI is at or above the threshold", labels=labels
        )
        missing = GaugeMetricFamily("keel_drift_missing_share", "Share of missing values in the window", labels=labels)
        unseen = GaugeMetricFamily(
            "keel_drift_unseen_share", "Share of categories never seen in training in the window", labels=labels
        )
        rows = GaugeMetricFamily(
            "keel_drift_window_records", "Records in the drift window", labels=["model", "version"]
        )
        tag = [served.name, str(served.version)]
        if reference is not None:
            drift = self._drift(served, reference)
            rows.add_metric(tag, drift.rows)
            outputs = [d for d in (drift.prediction, drift.score) if d is not None]
            for item in [*outputs, *drift.features]:
                if item.psi == item.psi:  # NaN (an empty window) is left out
                    psi.add_metric([*tag, item.name], item.psi)
                    drifting.add_metric([*tag, item.name], 1.0 if item.drifting else 0.0)
                    missing.add_metric([*tag, item.name], item.missing_current)
                    if item.unseen_current is not None:
                        unseen.add_metric([*tag, item.name], item.unseen_current)
        yield from (psi, drifting, missing, unseen, rows)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
