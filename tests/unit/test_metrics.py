from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from keel.domain.metrics import (
    Predictions,
    baseline_predictions,
    compute_metrics,
    evaluate_predictions,
    improvement,
)
from keel.domain.promotion import decide_promotion


def test_classification_metrics_match_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=300)
    p1 = np.clip(y * 0.6 + rng.uniform(0, 0.4, size=300), 0, 1)
    proba = np.column_stack([1 - p1, p1])
    names = ["accuracy", "balanced_accuracy", "f1_macro", "f1_weighted", "roc_auc", "log_loss"]
    result = compute_metrics(Predictions(y_true=y, proba=proba), "binary", names)
    assert result["accuracy"] == pytest.approx(skm.accuracy_score(y, p1 > 0.5))
    assert result["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p1))
    assert result["log_loss"] == pytest.approx(skm.log_loss(y, proba))
    assert result["f1_macro"] == pytest.approx(skm.f1_score(y, p1 > 0.5, average="macro"))


def test_multiclass_roc_auc_is_one_vs_rest_and_defined_on_partial_slices() -> None:
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    proba = np.eye(3)[y] * 0.7 + 0.1
    assert compute_metrics(Predictions(y_true=y, proba=proba), "multiclass", ["roc_auc"])["roc_auc"] == 1.0
    partial = Predictions(y_true=y[y < 2], proba=proba[y < 2])
    assert compute_metrics(partial, "multiclass", ["roc_auc"], n_classes=3)["roc_auc"] == 1.0
    only_one = Predictions(y_true=np.zeros(3, dtype=int), proba=proba[:3])
    assert math.isnan(compute_metrics(only_one, "multiclass", ["roc_auc"])["roc_auc"])


def test_regression_metrics() -> None:
    y = np.array([1.0, 2.0, 3.0, 4.0])
    values = np.array([1.5, 2.0, 2.5, 4.0])
    result = compute_metrics(Predictions(y_true=y, values=values), "regression", ["rmse", "mae", "r2"])
    assert result["rmse"] == pytest.approx(math.sqrt(0.125))
    assert result["mae"] == pytest.approx(0.25)
    assert result["r2"] == pytest.approx(skm.r2_score(y, values))


def test_baseline_predicts_training_shares_or_mean() -> None:
    train_y = np.array([0, 0, 0, 1])
    baseline = baseline_predictions(np.array([0, 1]), train_y, "binary", 2)
    assert baseline.proba is not None
    assert baseline.proba.tolist() == [[0.75, 0.25], [0.75, 0.25]]
    regression = baseline_predictions(np.array([1.0]), np.array([2.0, 4.0]), "regression", 0)
    assert regression.values is not None
    assert regression.values.tolist() == [3.0]


def test_evaluation_reports_slices_and_classes() -> None:
    y = np.array([0, 1] * 50)
    proba = np.column_stack([1 - y * 0.8, y * 0.8 + 0.1])
    frame = pd.DataFrame({"sex": ["F"] * 60 + ["M"] * 35 + ["X"] * 5})
    evaluation = evaluate_predictions(
        Predictions(y_true=y, proba=proba),
        baseline_predictions(y, y, "binary", 2),
        "binary",
        ["accuracy"],
        classes=["no", "yes"],
        frame=frame,
        slices=["sex"],
        min_slice_rows=10,
    )
    assert set(evaluation.slices["sex"]) == {"F", "M"}
    assert evaluation.slices["sex"]["F"]["rows"] == 60
    assert evaluation.per_class["yes"]["support"] == 50
    assert evaluation.metrics["accuracy"] == 1.0
    assert evaluation.baseline["accuracy"] == 0.5


def test_improvement_respects_the_metric_direction() -> None:
    assert improvement("roc_auc", 0.9, 0.8) == pytest.approx(0.1)
    assert improvement("log_loss", 0.3, 0.4) == pytest.approx(0.1)
    assert improvement("rmse", 50.0, 40.0) == pytest.approx(-10.0)


def test_promotion_gate() -> None:
    assert decide_promotion("roc_auc", 0.9, None, 0.0).promote
    assert not decide_promotion("roc_auc", 0.9, 0.9, 0.0).promote
    assert decide_promotion("roc_auc", 0.91, 0.9, 0.005).promote
    assert not decide_promotion("roc_auc", 0.903, 0.9, 0.005).promote
    lower_better = decide_promotion("log_loss", 0.30, 0.35, 0.01, champion="version 2")
    assert lower_better.promote
    assert "version 2" in lower_better.reason
    assert not decide_promotion("roc_auc", math.nan, 0.9, 0.0).promote
