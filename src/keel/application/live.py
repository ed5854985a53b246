"""Live metrics from the prediction log once labels arrive, and promotion on that evidence.

``keel evaluate --log DIR --labels FILE --on KEY`` joins the labels to the logged predictions and measures every
version the log holds (primary, canary, shadow) with the metrics it was trained with, beside the naive baseline on
the same rows. ``keel models promote NAME VERSION --evidence DIR ...`` applies the version's promotion gate (metric
and margin from its configuration) to those live metrics against the champion, and records the evidence.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keel.application.evaluate import evaluate_labelled, trained_settings
from keel.application.models import EVIDENCE_TAG, PROMOTION_REASON_TAG, ModelHandle, load_version
from keel.domain.metrics import Evaluation, Predictions, compute_metrics, default_promotion_metric
from keel.domain.promotion import PromotionDecision, decide_promotion
from keel.domain.refs import DEFAULT_ALIAS, ModelRef
from keel.errors import DataError, RegistryError
from keel.io.registry import Registry

if TYPE_CHECKING:
    import pandas as pd

ROLE_ORDER = {"primary": 0, "canary": 1, "shadow": 2}


@dataclass
class VersionEvaluation:
    """One version's live metrics.

    Attributes:
        model: Registered model name.
        version: Version number.
        role: ``primary``, ``canary`` or ``shadow``.
        logged: Records it scored in the log.
        matched: Of those, records with a label.
        evaluation: Its metrics beside the baseline on the matched records (``None`` when none matched).
    """

    model: str
    version: int
    role: str
    logged: int
    matched: int
    evaluation: Evaluation | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        document: dict[str, Any] = {
            "model": self.model,
            "version": self.version,
            "role": self.role,
            "logged": self.logged,
            "matched": self.matched,
            "unmatched": self.logged - self.matched,
        }
        return document | (self.evaluation.to_dict() if self.evaluation is not None else {"rows": 0})


@dataclass
class LiveEvaluation:
    """Every logged version's metrics on the records whose labels arrived.

    Attributes:
        log: The prediction log folder.
        labels: The labels file.
        on: The join key (``request_id`` or an id column).
        versions: One entry per (model, version, role), primary first.
        unmatched_labels: Labels that match no logged record.
        dropped_labels: Label rows without a value, left out.
    """

    log: Path
    labels: Path
    on: str
    versions: list[VersionEvaluation] = field(default_factory=list)
    unmatched_labels: int = 0
    dropped_labels: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: one block per version."""
        return {
            "log": str(self.log),
            "labels": str(self.labels),
            "on": self.on,
            "unmatched_labels": self.unmatched_labels,
            "dropped_labels": self.dropped_labels,
            "versions": [v.to_dict() for v in self.versions],
        }


@dataclass
class _Joined:
    """The log joined to the labels: every logged row with its key and, when matched, its label."""

    log: pd.DataFrame
    keys: pd.Series
    labels: pd.Series
    """Label by key (missing labels removed)."""
    unmatched_labels: int
    dropped_labels: int
    handles: dict[tuple[str, int], ModelHandle] = field(default_factory=dict)

    def handle(self, registry: Registry, name: str, version: int) -> ModelHandle:
        if (name, version) not in self.handles:
            self.handles[(name, version)] = load_version(registry, ModelRef(name=name, version=version))
        return self.handles[(name, version)]


def evaluate_logged(workspace: Path | None, log_dir: Path, labels_path: Path, on: str) -> LiveEvaluation:
    """``keel evaluate --log DIR --labels FILE``: :func:`evaluate_log` with ``workspace``'s registry."""
    return evaluate_log(Registry.open(workspace), log_dir, labels_path, on)


def evaluate_log(registry: Registry, log_dir: Path, labels_path: Path, on: str) -> LiveEvaluation:
    """Join labels to the prediction log and measure every logged version on its labelled records.

    Args:
        registry: The registry holding the logged versions (their metrics, classes and baselines).
        log_dir: The prediction log folder (``keel serve --log-dir``).
        labels_path: CSV or Parquet file with the key column and the model's target column.
        on: ``request_id`` (add a ``record`` column for requests of several records) or an id column of the
            model's records.

    Raises:
        DataError: The log or the labels cannot be read, lack the key or target, or nothing matches.
        RegistryError: A logged version is not in the registry.
    """
    joined = _join(registry, log_dir, labels_path, on)
    result = LiveEvaluation(
        log=log_dir,
        labels=labels_path,
        on=on,
        unmatched_labels=joined.unmatched_labels,
        dropped_labels=joined.dropped_labels,
    )
    log = joined.log
    groups: dict[tuple[str, int, str], Any] = {}
    for key, index in log.groupby(["model", "version", "role"], sort=False).groups.items():
        triple: tuple[Any, ...] = tuple(key)  # type: ignore[arg-type]  # a three-column groupby's keys are triples
        groups[(str(triple[0]), int(triple[1]), str(triple[2]))] = index
    for name, version, role in sorted(groups, key=lambda g: (g[0], ROLE_ORDER.get(g[2], 9), g[1])):
        rows = log.loc[groups[(name, version, role)]]
        handle = joined.handle(registry, name, version)
        matched = joined.keys.loc[rows.index].isin(joined.labels.index)
        evaluation = _evaluate_rows(handle, rows.loc[matched.to_numpy()], joined) if matched.any() else None
        result.versions.append(VersionEvaluation(name, version, role, len(rows), int(matched.sum()), evaluation))
    if not any(v.matched for v in result.versions):
        raise DataError(
            f"--labels {labels_path}: none of the {len(log):,} logged records has a label by --on {on} "
            f"({len(joined.labels):,} labels read); check that the key's values are the ones the service saw"
        )
    return result


@dataclass
class EvidencePromotion:
    """What ``keel models promote --evidence`` decided.

    Attributes:
        name: Registered model name.
        version: The candidate version.
        champion: The champion version it was compared with (``None``: there was none).
        decision: The gate's decision on the live metrics.
        evidence: What was recorded in the version's tags.
    """

    name: str
    version: int
    champion: int | None
    decision: PromotionDecision
    evidence: dict[str, Any]

    @property
    def exit_code(self) -> int:
        """The command's exit status: 1 when the gate refused the promotion."""
        return 0 if self.decision.promote else 1

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "name": self.name,
            "version": self.version,
            "champion": self.champion,
            "promoted": self.decision.promote,
            "reason": self.decision.reason,
            "evidence": self.evidence,
        }


def promote_on_evidence(
    workspace: Path | None, name: str, version: int, log_dir: Path, labels_path: Path, on: str
) -> EvidencePromotion:
    """``keel models promote ... --evidence DIR --labels FILE``: :func:`promote_from_evidence` in ``workspace``."""
    return promote_from_evidence(Registry.open(workspace), name, version, log_dir, labels_path, on)


def promote_from_evidence(
    registry: Registry, name: str, version: int, log_dir: Path, labels_path: Path, on: str
) -> EvidencePromotion:
    """Apply the promotion gate to live metrics from the prediction log, and move ``champion`` when it passes.

    The candidate and the champion are compared on the records both scored (a shadow scores every request the
    champion answers); when they share none (a canary answers its own share), each is measured on its own records.
    The metric and margin are the candidate's ``evaluation.promotion`` settings. The evidence (files, key, rows,
    values, decision) is recorded in the candidate's tags whatever the decision.

    Raises:
        DataError: The log or labels cannot be read, or either version has no labelled record in the log.
        RegistryError: The version does not exist, is incomplete or is already champion.
        IntegrityError: Its artifacts fail verification.
    """
    from keel.io.sources import file_sha256

    candidate = load_version(registry, ModelRef(name=name, version=version))
    champion = registry.alias_version(name, DEFAULT_ALIAS)
    if champion == version:
        raise RegistryError(f"{name}:{version} is already {DEFAULT_ALIAS}; promote another version")
    task = candidate.loaded.model.task
    gate = trained_settings(candidate).get("promotion") or {}
    metric = str(gate.get("metric") or default_promotion_metric(task))
    margin = float(gate.get("margin") or 0.0)
    joined = _join(registry, log_dir, labels_path, on)
    joined.handles[(name, version)] = candidate
    matched = joined.keys.isin(joined.labels.index) & (joined.log["model"] == name)
    own = joined.log.loc[matched & (joined.log["version"] == version)]
    if own.empty:
        raise DataError(
            f"--evidence {log_dir}: no labelled record was scored by {name}:{version}; serve it as --shadow or "
            "--canary and wait for labels"
        )
    evidence: dict[str, Any] = {
        "log": str(log_dir),
        "labels": str(labels_path),
        "labels_sha256": file_sha256(labels_path),
        "on": on,
        "metric": metric,
        "margin": margin,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if champion is None:
        new_value = _metric(candidate, own, joined, metric)
        decision = decide_promotion(metric, new_value, None, margin)
        evidence |= {"rows": len(own), "value": new_value}
    else:
        theirs = joined.log.loc[matched & (joined.log["version"] == champion)]
        if theirs.empty:
            raise DataError(
                f"--evidence {log_dir}: no labelled record was scored by the champion {name}:{champion}; the gate "
                "compares both versions on live traffic"
            )
        common = set(joined.keys.loc[own.index]) & set(joined.keys.loc[theirs.index])
        if common:
            own = own.loc[joined.keys.loc[own.index].isin(common).to_numpy()]
            theirs = theirs.loc[joined.keys.loc[theirs.index].isin(common).to_numpy()]
        own = own.loc[~joined.keys.loc[own.index].duplicated().to_numpy()]
        theirs = theirs.loc[~joined.keys.loc[theirs.index].duplicated().to_numpy()]
        new_value = _metric(candidate, own, joined, metric)
        old_value = _metric(joined.handle(registry, name, champion), theirs, joined, metric)
        decision = decide_promotion(metric, new_value, old_value, margin, champion=f"version {champion} (live)")
        evidence |= {
            "compared_on": "the same records" if common else "each version's own records",
            "rows": len(own),
            "champion_rows": len(theirs),
            "value": new_value,
            "champion_version": champion,
            "champion_value": old_value,
        }
    evidence |= {"promoted": decision.promote, "reason": decision.reason}
    registry.set_tag(name, version, EVIDENCE_TAG, json.dumps(evidence, allow_nan=True)[:5000])
    if decision.promote:
        with registry.promotion_lock():
            previous = registry.alias_version(name, DEFAULT_ALIAS)
            registry.set_tag(name, version, PROMOTION_REASON_TAG, f"evidence: {decision.reason}"[:5000])
            registry.set_alias(name, DEFAULT_ALIAS, version)
        if previous is not None and previous != version:
            registry.set_tag(name, previous, "keel.replaced_by", f"{version} (evidence: {decision.reason})"[:5000])
    return EvidencePromotion(name, version, champion, decision, evidence)


def _metric(handle: ModelHandle, rows: pd.DataFrame, joined: _Joined, metric: str) -> float:
    predictions = _predictions(handle, rows, joined)
    model = handle.loaded.model
    return compute_metrics(predictions, model.task, [metric], len(model.classes))[metric]


def _evaluate_rows(handle: ModelHandle, rows: pd.DataFrame, joined: _Joined) -> Evaluation:
    from keel.io.prediction_log import features_frame

    return evaluate_labelled(handle, _predictions(handle, rows, joined), features_frame(rows).reset_index(drop=True))


def _predictions(handle: ModelHandle, rows: pd.DataFrame, joined: _Joined) -> Predictions:
    """The logged predictions of ``rows`` (all labelled) with their true targets, as the version's metrics take them."""
    from keel.domain.training import encode_target
    from keel.io.prediction_log import probabilities_matrix

    model = handle.loaded.model
    truth = joined.labels.loc[joined.keys.loc[rows.index].to_numpy()].reset_index(drop=True)
    try:
        y = encode_target(truth, model.schema)
    except DataError as error:
        raise DataError(
            f"labels for {handle.label}: {error}; leave a label that is not known yet empty (it is counted, not scored)"
        ) from None
    if model.task == "regression":
        return Predictions(y_true=y, values=rows["value"].to_numpy(dtype="float64"))
    return Predictions(y_true=y, proba=probabilities_matrix(rows, [str(c) for c in model.classes]))


def _join(registry: Registry, log_dir: Path, labels_path: Path, on: str) -> _Joined:
    from keel.io.prediction_log import features_frame, read_log
    from keel.io.tables import read_table

    log = read_log(log_dir)
    labels = read_table(labels_path)
    if on not in labels.columns:
        raise DataError(f"--labels {labels_path}: no column {on!r} to join on (columns: {', '.join(labels.columns)})")
    handles: dict[tuple[str, int], ModelHandle] = {}
    first = (str(log["model"].iloc[0]), int(log["version"].iloc[0]))
    handles[first] = load_version(registry, ModelRef(name=first[0], version=first[1]))
    target = handles[first].loaded.model.schema.target.name
    if target not in labels.columns:
        raise DataError(
            f"--labels {labels_path}: no column {target!r} (the target of {first[0]}); the file needs the "
            f"key {on!r} and the true {target!r} of each record"
        )
    by_record = on == "request_id" and "record" in labels.columns
    if on == "request_id":
        keys = log["request_id"].astype(str)
        if by_record:
            keys = keys + "#" + log["record"].astype(str)
        elif ((log["record"] > 0) & ~log["shadow"]).any():
            raise DataError(
                f"--labels {labels_path}: some requests held several records; add a `record` column (the record's "
                "index in its request, 0 for the first) so each label finds its record"
            )
    else:
        fields = features_frame(log)
        if on not in fields.columns:
            raise DataError(
                f"--on {on}: not request_id and not a field of the logged records "
                f"(fields: {', '.join(map(str, fields.columns))})"
            )
        keys = _as_key(fields[on])
    label_keys = _as_key(labels[on])
    if by_record:
        label_keys = label_keys + "#" + _as_key(labels["record"])
    present = labels[target].notna().to_numpy()
    values = labels.loc[present, target].set_axis(label_keys[present].to_numpy())
    repeated = values.index.duplicated()
    if repeated.any():
        example = values.index[repeated][0]
        raise DataError(f"--labels {labels_path}: the key {example!r} appears more than once; keep one label per key")
    return _Joined(
        log=log,
        keys=keys,
        labels=values,
        unmatched_labels=int((~values.index.isin(keys)).sum()),
        dropped_labels=int((~present).sum()),
        handles=handles,
    )


def _as_key(values: pd.Series) -> pd.Series:
    """Join keys as text: 12, 12.0 and "12" are the same key (CSV readers and JSON disagree on types)."""

    def text(value: Any) -> str:
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)

    return values.map(text).astype(str)
