"""Which version answers a request, the shadow that scores every request off the response path, and the log.

- **Canary**: ``--canary REF:PERCENT`` answers that share of requests with another version. The split is sticky: a
  request goes by the hash of its first record's id column when the model has one (the same customer always meets
  the same version), else by the hash of its request id. The response's ``version`` and ``role`` say who answered.
- **Shadow**: ``--shadow REF`` scores every answered request again with a second version, in a background thread
  after the response is on its way; its rows go to the prediction log with ``shadow = true`` and ``/metrics``
  counts whether it agreed with the version that answered. Memory is bounded like the log's: when the shadow
  falls behind, requests are left unscored and counted (``keel_shadow_dropped_total``).
- **Log**: every answered record (and every shadow record) goes to the :class:`PredictionLog`.

Canary and shadow versions are loaded and verified like the primary and follow their alias the same way (hot swap).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from keel.serving.monitoring import ServiceMetrics
from keel.serving.prediction_log import PredictionLog
from keel.serving.swap import ModelSwapper, ServedModel

log = logging.getLogger(__name__)

DEFAULT_SHADOW_PENDING = 10_000
AGREEMENT_TOLERANCE = 0.01
"""Regression: a shadow value within this share of the answered value counts as agreeing."""


def canary_bucket(key: str) -> float:
    """Where ``key`` falls in [0, 100): a stable hash, the same in every process and on every machine."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 10_000 / 100


@dataclass(frozen=True, slots=True)
class _ShadowJob:
    request_id: str
    answered: ServedModel
    count: int
    records: Sequence[Mapping[str, Any]] | None = None
    results: Sequence[Mapping[str, Any]] | None = None
    columns: Mapping[str, Sequence[Any]] | None = None
    predictions: Mapping[str, Any] | None = None


class Traffic:
    """The versions a service answers with (primary, optional canary), its optional shadow, and its log.

    Args:
        primary: The primary version's swapper.
        metrics: The service's metrics.
        canary: The canary version's swapper.
        canary_percent: Share of requests (0–100) the canary answers.
        shadow: The shadow version's swapper.
        prediction_log: Where answered and shadow records are logged.
        max_shadow_pending: Most records waiting for the shadow; more are left unscored and counted.
    """

    def __init__(
        self,
        primary: ModelSwapper,
        metrics: ServiceMetrics,
        *,
        canary: ModelSwapper | None = None,
        canary_percent: float = 0.0,
        shadow: ModelSwapper | None = None,
        prediction_log: PredictionLog | None = None,
        max_shadow_pending: int = DEFAULT_SHADOW_PENDING,
    ) -> None:
        self.primary = primary
        self.metrics = metrics
        self.canary = canary
        self.canary_percent = canary_percent
        self.shadow = shadow
        self.log = prediction_log
        self.max_shadow_pending = max_shadow_pending
        self._jobs: list[_ShadowJob] = []
        self._pending = 0
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._failed: set[int] = set()

    @property
    def swappers(self) -> list[tuple[str, ModelSwapper]]:
        """Every version's swapper, by role."""
        found = [("primary", self.primary)]
        if self.canary is not None:
            found.append(("canary", self.canary))
        if self.shadow is not None:
            found.append(("shadow", self.shadow))
        return found

    # -- on the request path ---------------------------------------------------------------------------------

    def choose(self, request_id: str, body: Any) -> tuple[ServedModel, str]:
        """The version that answers this request and its role (``primary`` or ``canary``)."""
        primary = self.primary.current
        assert primary is not None  # noqa: S101 - loaded before the app exists
        if self.canary is None or self.canary.current is None:
            return primary, "primary"
        key = _sticky_key(primary, body)
        if canary_bucket(key if key is not None else f"request:{request_id}") < self.canary_percent:
            return self.canary.current, "canary"
        return primary, "primary"

    def answered_records(
        self,
        request_id: str,
        served: ServedModel,
        role: str,
        records: Sequence[Mapping[str, Any]],
        results: Sequence[Mapping[str, Any]],
    ) -> None:
        """Log the answered records and hand them to the shadow (never blocks)."""
        if self.log is not None:
            self.log.log_records(request_id, served.name, served.version, records, results, role=role)
        if self.shadow is not None:
            self._offer(_ShadowJob(request_id, served, len(records), records=records, results=results))

    def answered_columns(
        self,
        request_id: str,
        served: ServedModel,
        role: str,
        columns: Mapping[str, Sequence[Any]],
        predictions: Mapping[str, Any],
        warnings: Sequence[Mapping[str, Any]],
        count: int,
    ) -> None:
        """Log a columnar request's records and hand them to the shadow (never blocks)."""
        if self.log is not None:
            self.log.log_columns(
                request_id, served.name, served.version, columns, predictions, warnings, count, role=role
            )
        if self.shadow is not None:
            self._offer(_ShadowJob(request_id, served, count, columns=columns, predictions=predictions))

    def _offer(self, job: _ShadowJob) -> None:
        with self._lock:
            if self._stopping or self._pending + job.count > self.max_shadow_pending:
                dropped = True
            else:
                self._jobs.append(job)
                self._pending += job.count
                dropped = False
                self._wake.notify()
        if dropped:
            self.metrics.shadow_dropped.inc(job.count)

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self, poll_interval: float) -> None:
        """Follow every version's alias, start the log writer and the shadow thread."""
        for _, swapper in self.swappers:
            swapper.start(poll_interval)
        if self.log is not None:
            self.log.start()
        if self.shadow is not None and self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(target=self._run_shadow, name="keel-shadow", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop following aliases, score what the shadow has queued, and complete the log's open file."""
        for _, swapper in self.swappers:
            swapper.stop()
        with self._lock:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        if self.log is not None:
            self.log.close()

    # -- the shadow thread -----------------------------------------------------------------------------------

    def _run_shadow(self) -> None:
        while True:
            with self._lock:
                while not self._jobs and not self._stopping:
                    self._wake.wait()
                jobs, self._jobs = self._jobs, []
                self._pending = 0
                stopping = self._stopping
            for job in jobs:
                try:
                    self._score_in_shadow(job)
                except Exception:  # a shadow that cannot score must never disturb the service
                    self.metrics.shadow_dropped.inc(job.count)
                    shadow = self.shadow.current if self.shadow is not None else None
                    version = shadow.version if shadow is not None else -1
                    if version not in self._failed:
                        self._failed.add(version)
                        log.exception("the shadow version %s could not score a request; it is left unscored", version)
            if stopping and not jobs:
                return

    def _score_in_shadow(self, job: _ShadowJob) -> None:
        assert self.shadow is not None  # noqa: S101 - only queued with a shadow
        shadow = self.shadow.current
        if shadow is None or shadow.recipe is not None:
            self.metrics.shadow_dropped.inc(job.count)
            return
        answered = job.answered
        if job.records is not None and job.results is not None:
            results = shadow.predictor.predict(job.records)
            if self.log is not None:
                self.log.log_records(job.request_id, shadow.name, shadow.version, job.records, results, role="shadow")
            mine = [r.get("label", r.get("value")) for r in job.results]
            theirs = [r.get("label", r.get("value")) for r in results]
        else:
            assert job.columns is not None  # noqa: S101 - a columnar job
            assert job.predictions is not None  # noqa: S101
            predictions, warnings = shadow.predictor.predict_columns(job.columns, job.count)
            if self.log is not None:
                self.log.log_columns(
                    job.request_id, shadow.name, shadow.version, job.columns, predictions, warnings, job.count,
                    role="shadow",
                )  # fmt: skip
            mine = list(job.predictions.get("label") or job.predictions.get("value") or [])
            theirs = list(predictions.get("label") or predictions.get("value") or [])
        agreed = sum(map(_agrees, mine, theirs))
        self.metrics.agreement(answered.name, answered.version, shadow.version, agreed, len(mine) - agreed)


def _agrees(mine: Any, theirs: Any) -> bool:
    if isinstance(mine, float) and isinstance(theirs, float):
        return abs(mine - theirs) <= AGREEMENT_TOLERANCE * max(abs(mine), 1e-12)
    return bool(mine == theirs)


def _sticky_key(served: ServedModel, body: Any) -> str | None:
    """The first record's value of the model's first id column (``None`` when it has none or it is absent)."""
    ids = served.predictor.id_names
    if not ids or type(body) is not dict:
        return None
    name = ids[0]
    value: Any = None
    if name in body:
        value = body[name]
    elif type(body.get("records")) is list and body["records"] and type(body["records"][0]) is dict:
        value = body["records"][0].get(name)
    elif type(body.get("columns")) is dict and type(body["columns"].get(name)) is list and body["columns"][name]:
        value = body["columns"][name][0]
    return None if value is None else f"{name}:{value}"
