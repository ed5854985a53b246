"""What training stores for people and monitors: drift reference, contributions, champion comparison, report.

The drift reference, the global contributions, the previous champion's metrics on the same test rows and the HTML
model report.

Called from the artifact step of ``keel train``; :func:`write_report` writes the manifest last, so every file here
is hashed with the rest of the version.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keel.domain.metrics import Predictions, compute_metrics
from keel.domain.model import FittedModel
from keel.errors import KeelError
from keel.io import artifacts, reports

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from keel.io.registry import RegistryReads, VersionInfo
    from keel.io.sidecar import Pending, Sidecar

log = logging.getLogger(__name__)

CONTRIBUTION_ROWS = 2000
"""Test rows the global contributions are averaged over (a sample keeps training fast on large data)."""
CONTRIBUTION_CELLS = 4_000_000
"""Most contribution values computed at once (rows × model input columns)."""
CONTRIBUTION_TREE_ROWS = 60_000
"""Most rows × trees walked for the global contributions of a LightGBM model. Adult's 217 trees get 276 rows (0.2 s
on two cores, a quarter of the fit; 691 rows took 0.5 s). In 19 of 20 such samples the five largest columns were
the same five as on all 16,281 test rows, their means 2 % from their values there (median; 5 % at worst); columns
of nearly equal weight can swap places. The report says how many rows were used."""
CONTRIBUTION_MIN_ROWS = 200
"""Fewest test rows the global contributions are averaged over (when there are that many)."""


def predicted_outputs(model: FittedModel, predictions: Predictions) -> tuple[list[Any], np.ndarray | None]:
    """Predicted labels (or values) and, for a binary classifier, positive-class probabilities."""
    if model.task == "regression":
        assert predictions.values is not None  # noqa: S101 - regression predictions always carry values
        return predictions.values.tolist(), None
    assert predictions.proba is not None  # noqa: S101 - classification predictions always carry probabilities
    labels = model.predict_labels(predictions.proba)
    scores = predictions.proba[:, 1] if predictions.proba.shape[1] == 2 else None
    return labels, scores


def contribution_matrix(model: FittedModel, features: pd.DataFrame) -> np.ndarray | None:
    """LightGBM's per-column contributions for coerced ``features`` as a dense array, or ``None`` for other models.

    Sparse inputs (text) give sparse contributions, one matrix per class for a multiclass model; they are densified.
    A blend's are its members' added with the blend weights (:class:`keel.domain.blend.BlendedModel`).
    """
    import numpy as np

    from keel.domain.blend import BlendedModel

    if not model.explainable:
        return None
    if isinstance(model, BlendedModel):
        parts = [contribution_matrix(member, features) for member in model.members]
        return sum(w * p for w, p in zip(model.weights, parts, strict=True) if p is not None)  # type: ignore[return-value]
    output = model.estimator.predict(model.transform(features), pred_contrib=True)
    if isinstance(output, list):
        return np.hstack([_dense(part) for part in output])
    return _dense(output)


def contribution_unit(model: FittedModel) -> str:
    """What the raw score that contributions add up to means for this model."""
    if model.task != "regression":
        return "log-odds"
    if model.raw_link == "log":
        return "log of the predicted value"
    return "target units"


def tree_count(model: FittedModel) -> int:
    """Trees a contribution call walks (a blend's members' together)."""
    from keel.domain.blend import BlendedModel

    if isinstance(model, BlendedModel):
        return sum(tree_count(member) for member in model.members)
    return int(model.estimator.num_trees()) if model.is_booster else 0


def _dense(matrix: Any) -> np.ndarray:
    import numpy as np

    return np.asarray(matrix.toarray() if hasattr(matrix, "toarray") else matrix, dtype=np.float64)


def contribution_inputs(model: FittedModel) -> list[str]:
    """Per model input column, the feature column it comes from (see :func:`keel.domain.explain.input_mapping`)."""
    from keel.domain.blend import BlendedModel
    from keel.domain.explain import input_mapping

    if isinstance(model, BlendedModel):
        return contribution_inputs(model.members[0])  # explainable blends' members share their input columns
    groups: list[tuple[int, int, list[str]]] = []
    preprocessor = model.preprocessor
    if preprocessor is None and model.encoding is not None:
        # Stored compiled: each model input column reads exactly one feature column.
        groups = [(j, j + 1, [column.name]) for j, column in enumerate(model.encoding)]
    slices = getattr(preprocessor, "output_indices_", {}) or {}
    for name, _, columns in getattr(preprocessor, "transformers_", []) or []:
        where = slices.get(name)
        if where is None or where.stop <= where.start:
            continue
        names = [columns] if isinstance(columns, str) else [str(c) for c in columns]
        groups.append((where.start, where.stop, names))
    return input_mapping(model.feature_names, model.schema.feature_names, groups)


def global_contributions(model: FittedModel, features: pd.DataFrame) -> dict[str, float] | None:
    """Mean absolute contribution per input column on ``features`` (coerced), or ``None`` without contributions."""
    from keel.domain.explain import mean_absolute_contributions

    contributions = contribution_matrix(model, features)
    if contributions is None:
        return None
    n_classes = len(model.classes) if model.task == "multiclass" else 0
    return mean_absolute_contributions(contributions, contribution_inputs(model), n_classes)


def write_insights(
    directory: Path,
    *,
    model: FittedModel,
    train: pd.DataFrame,
    test: pd.DataFrame,
    predictions: Predictions,
    metric_names: list[str],
    champion: Pending,
    painter: Sidecar,
    seed: int,
    train_features: pd.DataFrame | None = None,
    test_features: pd.DataFrame | None = None,
) -> Pending:
    """Write ``reference.json`` and ``insights.json``; ``painter`` draws ``plots/contributions.png``.

    Args:
        directory: The version's staging directory (schema, metrics, config already written).
        model: The fitted model.
        train: The training split (raw columns).
        test: The test split (raw columns), aligned with ``predictions``.
        predictions: The model's predictions on ``test``.
        metric_names: The metrics evaluated.
        champion: The answer of a ``champion`` request (the current champion, scored here on the same test rows).
        painter: The sidecar drawing the plots.
        seed: Seed for the contribution sample.
        train_features: ``train``'s features as the model's schema reads them, when known already.
        test_features: ``test``'s, likewise.

    Returns:
        The last plot request: once it is carried out, every plot is drawn (see :func:`write_report`).
    """
    from keel.domain.drift import build_reference
    from keel.domain.validation import coerce_features
    from keel.io.sidecar import champion_of

    schema = model.schema
    if train_features is None:
        train_features = coerce_features(train, schema, label="training rows").frame
    labels, scores = predicted_outputs(model, predictions)
    reference = build_reference(
        {name: train_features[name].to_numpy() for name in schema.feature_names},
        schema,
        labels,
        scores=scores,
    )
    artifacts.write_json(directory / reports.REFERENCE_FILE, reference.model_dump(mode="json"))
    if test_features is None:
        test_features = coerce_features(test, schema, label="test rows").frame
    # Contributions are densified: with thousands of columns (text) fewer rows keep the matrix small.
    budget = max(100, CONTRIBUTION_CELLS // (len(model.feature_names) + 1))
    if model.explainable:
        # SHAP values cost about rows × trees (× classes, which are trees too): a large multiclass model gets a
        # smaller sample, so the mean stays a good estimate without dominating training time.
        budget = min(budget, max(CONTRIBUTION_MIN_ROWS, CONTRIBUTION_TREE_ROWS // max(1, tree_count(model))))
    sample = test_features.sample(n=min(CONTRIBUTION_ROWS, budget, len(test_features)), random_state=seed)
    contributions = global_contributions(model, sample.reset_index(drop=True))
    drawn = painter.call("ping")
    if contributions:
        drawn = painter.call(
            "contributions_plot", values=contributions, path=directory / "plots" / reports.CONTRIBUTIONS_PLOT
        )
    try:
        previous = score_champion(champion_of(champion), test, metric_names)
    except KeelError as exc:
        previous = _unscored(None, exc)
    insights = {
        "global_contributions": contributions,
        "contribution_unit": contribution_unit(model),
        "contribution_rows": len(sample) if contributions else 0,
        "contribution_test_rows": len(test_features),
        "previous_champion": previous,
    }
    artifacts.write_json(directory / reports.INSIGHTS_FILE, insights)
    return drawn


def write_report(directory: Path, provenance: dict[str, Any], drawn: Pending) -> None:
    """Once the plots are drawn, write ``report.html`` (which embeds them) and the manifest hashing every file.

    Args:
        directory: The version's staging directory, complete but for the report and the manifest.
        provenance: What the manifest carries besides the files' hashes.
        drawn: The last plot request (see :func:`write_insights`).
    """
    # Compiled while the painter finishes the plots: after them, the report is the last thing before registering.
    reports.load_template(reports.REPORT_TEMPLATE)
    drawn.result()
    html = reports.model_report(directory, provenance, version=None)
    reports.write_html(directory / reports.REPORT_FILE, html)
    artifacts.write_manifest(directory, provenance)


def _previous_champion(
    registry: RegistryReads, name: str, test: pd.DataFrame, metric_names: list[str]
) -> dict[str, Any] | None:
    """The current champion's metrics on the same test rows (before this version is registered)."""
    from keel.io.registry import find_champion

    try:
        found = find_champion(registry, name)
    except KeelError as exc:
        return _unscored(None, exc)
    return score_champion(found, test, metric_names)


def score_champion(
    found: tuple[VersionInfo, Path] | None, test: pd.DataFrame, metric_names: list[str]
) -> dict[str, Any] | None:
    """The metrics of a champion found by :func:`keel.io.registry.find_champion` on ``test``, for the report."""
    from keel.application.scoring import labelled_predictions

    if found is None:
        return None
    info, directory = found
    try:
        loaded = artifacts.load_model(directory, manifest_sha256=info.manifest_sha256)
        predictions = labelled_predictions(loaded.model, test, label=f"test rows scored by version {info.version}")
        metrics = compute_metrics(predictions, loaded.model.task, metric_names, len(loaded.model.classes))
    except KeelError as exc:
        return _unscored(info.version, exc)
    return {
        "version": info.version,
        "metrics": metrics,
        "note": f"The previous champion (version {info.version}) was scored on the same test rows when this "
        "version was trained.",
    }


def _unscored(version: int | None, exc: KeelError) -> dict[str, Any]:
    log.info("the champion (version %s) cannot be scored on this test data: %s", version, exc)
    which = "The champion" if version is None else f"Version {version}"
    return {"version": version, "metrics": {}, "note": f"{which} could not be scored here: {exc}"}
