"""Evaluation plots saved as PNG files (matplotlib, no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

MAX_IMPORTANCE_BARS = 20


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(figure: Any, path: Path) -> Path:
    plt = _pyplot()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def confusion_matrix_plot(y_true: np.ndarray, predicted: np.ndarray, classes: Sequence[Any], path: Path) -> Path:
    """Confusion matrix with counts, rows normalised for colour."""
    import numpy as np
    from sklearn.metrics import confusion_matrix

    plt = _pyplot()
    labels = list(range(len(classes)))
    matrix = confusion_matrix(y_true, predicted, labels=labels)
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.6 * len(classes) + 2)
    figure, axes = plt.subplots(figsize=(size, size))
    axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    names = [str(c) for c in classes]
    axes.set_xticks(labels, names, rotation=45, ha="right")
    axes.set_yticks(labels, names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    for i in labels:
        for j in labels:
            axes.text(
                j, i, f"{matrix[i, j]:,}", ha="center", va="center", color="white" if shares[i, j] > 0.5 else "black"
            )
    axes.set_title("Confusion matrix (test)")
    return _save(figure, path)


def roc_plot(y_true: np.ndarray, proba: np.ndarray, classes: Sequence[Any], path: Path) -> Path:
    """ROC curve (binary) or one-vs-rest curves (multiclass)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(5, 5))
    targets = [1] if proba.shape[1] == 2 else list(range(proba.shape[1]))
    for k in targets:
        positive = y_true == k
        if positive.all() or not positive.any():
            continue
        fpr, tpr, _ = roc_curve(positive, proba[:, k])
        auc = roc_auc_score(positive, proba[:, k])
        axes.plot(fpr, tpr, label=f"{classes[k]} (AUC {auc:.3f})")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    axes.set_xlabel("false positive rate")
    axes.set_ylabel("true positive rate")
    axes.set_title("ROC (test)")
    axes.legend(loc="lower right", fontsize="small")
    return _save(figure, path)


def calibration_plot(y_true: np.ndarray, proba: np.ndarray, path: Path, bins: int = 10) -> Path:
    """Reliability curve of the positive class (binary) or of the predicted class (multiclass)."""
    import numpy as np

    plt = _pyplot()
    if proba.shape[1] == 2:
        confidence, hit = proba[:, 1], (y_true == 1)
        label = "positive class"
    else:
        confidence, hit = proba.max(axis=1), proba.argmax(axis=1) == y_true
        label = "predicted class"
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges) - 1, 0, bins - 1)
    xs, ys = [], []
    for b in range(bins):
        mask = which == b
        if mask.sum() >= 5:
            xs.append(confidence[mask].mean())
            ys.append(hit[mask].mean())
    figure, axes = plt.subplots(figsize=(5, 5))
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    axes.plot(xs, ys, marker="o")
    axes.set_xlabel(f"predicted probability ({label})")
    axes.set_ylabel("observed frequency")
    axes.set_title("Calibration (test)")
    return _save(figure, path)


def residuals_plot(y_true: np.ndarray, predicted: np.ndarray, path: Path) -> Path:
    """Residuals against predicted values."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.scatter(predicted, y_true - predicted, s=4, alpha=0.3)
    axes.axhline(0, color="grey", linewidth=1)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true − predicted")
    axes.set_title("Residuals (test)")
    return _save(figure, path)


def importance_plot(importance: dict[str, float], path: Path, title: str = "Feature importance") -> Path:
    """Horizontal bars for the most important features."""
    plt = _pyplot()
    top = sorted(importance.items(), key=lambda item: item[1], reverse=True)[:MAX_IMPORTANCE_BARS]
    top.reverse()
    figure, axes = plt.subplots(figsize=(6, max(3.0, 0.3 * len(top) + 1)))
    axes.barh([name for name, _ in top], [value for _, value in top])
    axes.set_title(title)
    return _save(figure, path)
