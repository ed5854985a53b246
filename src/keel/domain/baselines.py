"""Named baselines read from columns of the test table, scored with the same metrics as the model.

The naive baseline (majority class, training mean) says whether a model learned anything; a domain baseline says
whether it beats what people already use (in tennis: "the better-ranked player wins", a plain Elo rating). A
recipe computes such a baseline as a column from pre-match information only, and ``evaluation.baselines`` names
it, so the comparison is made on the same rows in the same run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from keel.config import BaselineConfig
from keel.domain.metrics import Predictions, compute_metrics
from keel.domain.schema import FeatureSchema
from keel.errors import ConfigError, DataError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

PROBABILITY_METRICS = frozenset({"log_loss", "roc_auc"})
"""Metrics that need probabilities: not reported for a ``label`` baseline."""


def check_baseline_columns(baselines: Sequence[BaselineConfig], columns: Sequence[str], task: str) -> None:
    """Refuse baselines naming a missing column or a kind that does not fit the task.

    Raises:
        ConfigError: Naming the baseline, the column and what to do.
    """
    for index, baseline in enumerate(baselines):
        where = f"`evaluation.baselines[{index}]` ({baseline.name})"
        if baseline.column not in columns:
            raise ConfigError(f"{where}: column {baseline.column!r} is not in the test data")
        if task == "regression" and baseline.kind != "value":
            raise ConfigError(f"{where}: a regression baseline has `kind: value`")
        if task != "regression" and baseline.kind == "value":
            raise ConfigError(f"{where}: a {task} baseline has `kind: probability` or `kind: label`")
        if task == "multiclass" and baseline.kind == "probability":
            raise ConfigError(f"{where}: a multiclass baseline column holds labels; use `kind: label`")


def baseline_from_column(
    frame: pd.DataFrame, baseline: BaselineConfig, schema: FeatureSchema, y_true: np.ndarray
) -> Predictions:
    """The predictions a baseline column stands for.

    Args:
        frame: The test rows (raw columns, aligned with ``y_true``).
        baseline: The configured baseline.
        schema: The model's feature schema (task and classes).
        y_true: Encoded true targets of the rows.

    Returns:
        Probabilities (classification) or values (regression).

    Raises:
        DataError: The column holds values that are not probabilities, numbers or known classes.
    """
    import numpy as np
    import pandas as pd

    column = frame[baseline.column].reset_index(drop=True)
    label = f"baseline {baseline.name!r} (column {baseline.column!r})"
    if baseline.kind == "value":
        values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
        if np.isnan(values).any():
            raise DataError(f"{label}: {int(np.isnan(values).sum()):,} row(s) hold no number")
        return Predictions(y_true=y_true, values=values)
    classes = list(schema.target.classes or [])
    if baseline.kind == "probability":
        positive = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
        if np.isnan(positive).any() or (positive < 0).any() or (positive > 1).any():
            raise DataError(f"{label}: every value must be a probability between 0 and 1")
        return Predictions(y_true=y_true, proba=np.column_stack([1.0 - positive, positive]))
    index = {str(c): i for i, c in enumerate(classes)}
    codes = column.map(lambda v: index.get(_as_label(v))).to_numpy()
    unknown = np.array([c is None or (isinstance(c, float) and np.isnan(c)) for c in codes])
    if unknown.any():
        examples = column[unknown].astype(str).unique()[:5].tolist()
        raise DataError(f"{label}: {int(unknown.sum()):,} value(s) are not classes {classes}, e.g. {examples}")
    proba = np.zeros((len(column), len(classes)))
    proba[np.arange(len(column)), codes.astype(np.int64)] = 1.0
    return Predictions(y_true=y_true, proba=proba)


def _as_label(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def evaluate_baselines(
    frame: pd.DataFrame,
    baselines: Sequence[BaselineConfig],
    schema: FeatureSchema,
    y_true: np.ndarray,
    names: Sequence[str],
) -> dict[str, dict[str, float]]:
    """Metrics of every configured baseline on the test rows.

    A ``label`` baseline has no probabilities, so log loss and ROC AUC are left out rather than reported as
    numbers that only measure overconfidence.

    Returns:
        Baseline name → metric → value.
    """
    task = schema.target.task
    n_classes = len(schema.target.classes or [])
    result: dict[str, dict[str, float]] = {}
    for baseline in baselines:
        predictions = baseline_from_column(frame, baseline, schema, y_true)
        wanted = [n for n in names if baseline.kind != "label" or n not in PROBABILITY_METRICS]
        result[baseline.name] = compute_metrics(predictions, task, wanted, n_classes)
    return result
