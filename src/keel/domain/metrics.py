"""Metrics with scikit-learn scorer names, naive baselines, per-class reports and per-slice metrics."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from keel.domain.schema import Task

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

CLASSIFICATION_METRICS = ["accuracy", "balanced_accuracy", "f1_macro", "f1_weighted", "roc_auc", "log_loss"]
REGRESSION_METRICS = ["rmse", "mae", "r2"]
GREATER_IS_BETTER = {
    "accuracy": True,
    "balanced_accuracy": True,
    "f1_macro": True,
    "f1_weighted": True,
    "roc_auc": True,
    "log_loss": False,
    "rmse": False,
    "mae": False,
    "r2": True,
}

WEIGHTED_PREFIX = "weighted_"
"""A weighted metric's name is its metric's with this prefix (``weighted_roc_auc``) where one name must say both
(the promotion gate's metric, MLflow tags)."""


def default_metrics(task: Task) -> list[str]:
    """The metrics reported when the config names none."""
    return list(REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS)


def default_promotion_metric(task: Task) -> str:
    """The metric the promotion gate compares when the config names none."""
    return {"binary": "roc_auc", "multiclass": "log_loss", "regression": "rmse"}[task]


def check_metrics_fit_task(metrics: Sequence[str], task: Task) -> list[str]:
    """Metric names that do not apply to ``task`` (e.g. ``rmse`` for a classifier)."""
    allowed = set(REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS)
    return [m for m in metrics if m not in allowed]


@dataclass
class Predictions:
    """Predictions on labelled rows.

    Attributes:
        y_true: Encoded true targets (class indices or values).
        proba: Class probabilities (classification), else ``None``.
        values: Predicted values (regression), else ``None``.
        weight: The rows' sample weights (``data.weight``), else ``None``; used by weighted metrics only.
    """

    y_true: np.ndarray
    proba: np.ndarray | None = None
    values: np.ndarray | None = None
    weight: np.ndarray | None = None

    def subset(self, mask: np.ndarray) -> Predictions:
        """The predictions of the rows selected by ``mask``."""
        return Predictions(
            y_true=self.y_true[mask],
            proba=None if self.proba is None else self.proba[mask],
            values=None if self.values is None else self.values[mask],
            weight=None if self.weight is None else self.weight[mask],
        )


@dataclass
class Evaluation:
    """Everything measured on one labelled dataset.

    Attributes:
        metrics: Metric name → value for the model.
        baseline: Metric name → value for the naive baseline (majority class / training mean).
        per_class: Class label → precision, recall, f1 and support (classification).
        slices: Column → value → metrics and row count.
        rows: Rows evaluated.
        baselines: Extra named baselines (``evaluation.baselines``) → their metrics.
        weighted_metrics: With sample weights (``data.weight``): the same metrics, each row weighing its weight;
            empty without weights.
        weighted_baseline: The naive baseline fitted and scored with the weights (weighted class shares or mean).
    """

    metrics: dict[str, float]
    baseline: dict[str, float]
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)
    slices: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    rows: int = 0
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)
    weighted_metrics: dict[str, float] = field(default_factory=dict)
    weighted_baseline: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "rows": self.rows,
            "metrics": self.metrics,
            "baseline": self.baseline,
            "weighted_metrics": self.weighted_metrics,
            "weighted_baseline": self.weighted_baseline,
            "per_class": self.per_class,
            "slices": self.slices,
            "baselines": self.baselines,
        }


def compute_metrics(
    predictions: Predictions, task: Task, names: Sequence[str], n_classes: int = 0, *, weighted: bool = False
) -> dict[str, float]:
    """Compute the named metrics.

    A metric that is undefined on these rows (ROC AUC when only one class is present) is reported as NaN.

    Args:
        predictions: The predictions and true targets.
        task: The task.
        names: Metrics to compute.
        n_classes: Number of classes (classification).
        weighted: Weigh each row by ``predictions.weight`` (scikit-learn's ``sample_weight``); every metric is NaN
            when the weights sum to 0.
    """
    import numpy as np
    from sklearn import metrics as skm

    y = predictions.y_true
    weight = predictions.weight if weighted else None
    if weighted and weight is None:
        raise ValueError("weighted metrics need the rows' weights; these predictions carry none")
    if weight is not None and not float(np.sum(weight)) > 0:
        return dict.fromkeys(names, math.nan)
    result: dict[str, float] = {}
    if task == "regression":
        if predictions.values is None:
            raise ValueError("regression metrics need predicted values; these predictions hold probabilities")
        values = predictions.values
        for name in names:
            if name == "rmse":
                result[name] = float(np.sqrt(skm.mean_squared_error(y, values, sample_weight=weight)))
            elif name == "mae":
                result[name] = float(skm.mean_absolute_error(y, values, sample_weight=weight))
            elif name == "r2":
                result[name] = _quiet(skm.r2_score, y, values, sample_weight=weight) if len(y) > 1 else math.nan
        return result
    if predictions.proba is None:
        raise ValueError(f"{task} metrics need class probabilities; these predictions hold values")
    proba = np.clip(predictions.proba, 1e-15, 1 - 1e-15)
    labels = list(range(n_classes or proba.shape[1]))
    predicted = proba.argmax(axis=1)
    for name in names:
        if name == "accuracy":
            result[name] = float(skm.accuracy_score(y, predicted, sample_weight=weight))
        elif name == "balanced_accuracy":
            result[name] = _quiet(skm.balanced_accuracy_score, y, predicted, sample_weight=weight)
        elif name == "f1_macro":
            result[name] = float(
                skm.f1_score(y, predicted, average="macro", labels=labels, zero_division=0, sample_weight=weight)
            )
        elif name == "f1_weighted":
            result[name] = float(
                skm.f1_score(y, predicted, average="weighted", labels=labels, zero_division=0, sample_weight=weight)
            )
        elif name == "log_loss":
            result[name] = float(skm.log_loss(y, proba, labels=labels, sample_weight=weight))
        elif name == "roc_auc":
            result[name] = _roc_auc(y, proba, labels, weight)
    return result


def _roc_auc(y: np.ndarray, proba: np.ndarray, labels: list[int], weight: np.ndarray | None = None) -> float:
    import numpy as np
    from sklearn.metrics import roc_auc_score

    present = np.unique(y if weight is None else y[weight > 0])
    if len(present) < 2:
        return math.nan
    if proba.shape[1] == 2:
        return float(roc_auc_score(y, proba[:, 1], sample_weight=weight))
    if len(present) < len(labels):
        # One-vs-rest over the classes present, renormalised, so a slice missing a class still gets a value.
        keep = np.isin(y, present)
        sub = proba[keep][:, present]
        sub = sub / sub.sum(axis=1, keepdims=True)
        remapped = np.searchsorted(present, y[keep])
        kept_weight = None if weight is None else weight[keep]
        if len(present) == 2:
            return float(roc_auc_score(remapped, sub[:, 1], sample_weight=kept_weight))
        return float(roc_auc_score(remapped, sub, multi_class="ovr", average="macro", sample_weight=kept_weight))
    return float(roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=labels, sample_weight=weight))


def _quiet(function: Any, *args: Any, **kwargs: Any) -> float:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(function(*args, **kwargs))


def baseline_predictions(
    y_true: np.ndarray, train_y: np.ndarray, task: Task, n_classes: int, train_weight: np.ndarray | None = None
) -> Predictions:
    """The naive baseline: class shares of the training data (majority class) or the training mean.

    With ``train_weight`` the shares (or the mean) are weighted: the constant model a weighted fit would make.
    """
    import numpy as np

    if task == "regression":
        return Predictions(y_true=y_true, values=np.full(len(y_true), float(np.average(train_y, weights=train_weight))))
    shares = np.bincount(train_y, weights=train_weight, minlength=n_classes)
    shares = shares / shares.sum()
    return Predictions(y_true=y_true, proba=np.tile(shares, (len(y_true), 1)))


def per_class_report(predictions: Predictions, classes: Sequence[Any]) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support per class."""
    from sklearn.metrics import precision_recall_fscore_support

    if predictions.proba is None:
        raise ValueError("a per-class report needs class probabilities; these predictions hold values")
    predicted = predictions.proba.argmax(axis=1)
    labels = list(range(len(classes)))
    precision, recall, f1, support = precision_recall_fscore_support(
        predictions.y_true, predicted, labels=labels, zero_division=0
    )
    return {
        str(label): {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, label in enumerate(classes)
    }


def slice_metrics(
    predictions: Predictions,
    frame: pd.DataFrame,
    columns: Sequence[str],
    task: Task,
    names: Sequence[str],
    *,
    n_classes: int,
    max_values: int,
    min_rows: int,
) -> dict[str, dict[str, dict[str, float]]]:
    """Metrics for each frequent value of each slice column.

    Args:
        predictions: Predictions aligned with ``frame``'s rows.
        frame: The evaluated rows (raw columns).
        columns: Slice columns.
        task: The task.
        names: Metrics to compute.
        n_classes: Number of classes.
        max_values: Most values per column (most frequent first).
        min_rows: Values with fewer rows are skipped.

    Returns:
        Column → value → metrics plus ``rows`` (and ``weighted_<metric>`` when the predictions carry weights).
    """
    result: dict[str, dict[str, dict[str, float]]] = {}
    for column in columns:
        values = frame[column].astype("string").fillna("(missing)").reset_index(drop=True)
        counts = values.value_counts()
        per_value: dict[str, dict[str, float]] = {}
        for value, count in counts.head(max_values).items():
            if count < min_rows:
                continue
            mask = (values == value).to_numpy()
            subset = predictions.subset(mask)
            scores = compute_metrics(subset, task, names, n_classes)
            if subset.weight is not None:  # with data.weight, the weighted metrics too, as weighted_<name>
                weighted = compute_metrics(subset, task, names, n_classes, weighted=True)
                scores |= {f"{WEIGHTED_PREFIX}{name}": value for name, value in weighted.items()}
            per_value[str(value)] = {**scores, "rows": int(count)}
        result[column] = per_value
    return result


def evaluate_predictions(
    predictions: Predictions,
    baseline: Predictions,
    task: Task,
    names: Sequence[str],
    *,
    classes: Sequence[Any],
    frame: pd.DataFrame | None = None,
    slices: Sequence[str] = (),
    max_slice_values: int = 10,
    min_slice_rows: int = 30,
    weighted_baseline: Predictions | None = None,
) -> Evaluation:
    """Metrics for the model and the baseline, the per-class report and slices.

    When ``predictions`` carry weights, the weighted metrics of the model and of ``weighted_baseline`` (the baseline
    fitted with the weights; ``baseline`` when not given) are measured too, with the same weights.
    """
    from dataclasses import replace

    n_classes = len(classes)
    evaluation = Evaluation(
        metrics=compute_metrics(predictions, task, names, n_classes),
        baseline=compute_metrics(baseline, task, names, n_classes),
        rows=len(predictions.y_true),
    )
    if predictions.weight is not None:
        weighed = replace(weighted_baseline or baseline, weight=predictions.weight)
        evaluation.weighted_metrics = compute_metrics(predictions, task, names, n_classes, weighted=True)
        evaluation.weighted_baseline = compute_metrics(weighed, task, names, n_classes, weighted=True)
    if task != "regression":
        evaluation.per_class = per_class_report(predictions, classes)
    if frame is not None and slices:
        evaluation.slices = slice_metrics(
            predictions,
            frame,
            slices,
            task,
            names,
            n_classes=n_classes,
            max_values=max_slice_values,
            min_rows=min_slice_rows,
        )
    return evaluation


def greater_is_better(metric: str) -> bool:
    """Whether higher values of ``metric`` (or its weighted form, ``weighted_<metric>``) are better."""
    return GREATER_IS_BETTER[metric.removeprefix(WEIGHTED_PREFIX) if metric not in GREATER_IS_BETTER else metric]


def improvement(metric: str, new: float, old: float) -> float:
    """How much better ``new`` is than ``old`` (positive is better), whichever direction the metric runs."""
    return new - old if greater_is_better(metric) else old - new
