"""Evaluation plots saved as PNG files (matplotlib, no display needed)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

if TYPE_CHECKING:
    import numpy as np

MAX_IMPORTANCE_BARS = 20

UNIT_SQUARE_MARGINS = {"left": 0.133, "bottom": 0.117, "right": 0.97, "top": 0.927}
"""Where ``tight_layout`` puts the axes of a 5 × 5 in figure with ticks from 0.0 to 1.0, one line of label per axis
and a title, in matplotlib's default style: the ROC and calibration plots, whose text never changes, are laid out
with these instead (the layout pass was a third of their drawing)."""

MAX_LEGEND_ENTRIES = 20
"""More ROC curves than this make a legend taller than the axes; that plot is laid out by ``tight_layout``."""

_P = ParamSpec("_P")
_R = TypeVar("_R")


def pyplot() -> Any:
    """The ``pyplot`` module of matplotlib on the Agg backend (files only, no display), imported on first use."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def default_style(draw: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run a function that draws a figure in matplotlib's default style.

    A version's plots then look the same whoever trained it: a matplotlibrc or a notebook's style (a dark theme,
    larger fonts) does not change them, and :data:`UNIT_SQUARE_MARGINS` holds.
    """

    @functools.wraps(draw)
    def drawn(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        import matplotlib.style

        pyplot()
        with matplotlib.style.context("default"):
            return draw(*args, **kwargs)

    return drawn


def bar_chart_margins(figure: Any, labels: Sequence[str]) -> dict[str, float]:
    """Subplot margins for a horizontal bar chart in the default style: the widest bar label measured, the rest fixed.

    What ``tight_layout`` finds, to a few pixels, without its layout pass (a third of drawing the chart): at 100 dpi it
    leaves 25 px beside the widest label. The rest is fixed: 40 px above the axes for the chart's title (a figure
    title, centred on the image: above axes narrowed by long labels it would overhang them), 60 px below for the x
    axis' numbers, its offset text (``1e6``) and an x label, and 40 px to the right (the last tick label, up to 7
    characters before matplotlib writes an offset, overhangs the axes by half its width).
    """
    import matplotlib
    from matplotlib.text import Text

    renderer = figure.canvas.get_renderer()
    size = matplotlib.rcParams["ytick.labelsize"]
    widest = max(
        (Text(text=label, figure=figure, fontsize=size).get_window_extent(renderer).width for label in labels),
        default=0,
    )
    width, height = figure.get_size_inches() * figure.dpi
    scale = figure.dpi / 100
    return {
        "left": max(widest + 25 * scale, 45 * scale) / width,
        "right": 1 - 40 * scale / width,
        "bottom": 60 * scale / height,
        "top": 1 - 40 * scale / height,
    }


def save_figure(figure: Any, path: Path, margins: dict[str, float] | None = None) -> Path:
    """Lay out ``figure`` (``tight_layout``, or the subplot ``margins`` given), save it as PNG at ``path``, free it."""
    plt = pyplot()
    path.parent.mkdir(parents=True, exist_ok=True)
    if margins is None:
        figure.tight_layout()
    else:
        figure.subplots_adjust(**margins)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


@default_style
def confusion_matrix_plot(matrix: Sequence[Sequence[int]], classes: Sequence[Any], path: Path) -> Path:
    """Confusion matrix with counts (rows: true class, columns: predicted), rows normalised for colour."""
    import numpy as np

    plt = pyplot()
    counts = np.asarray(matrix)
    labels = list(range(len(classes)))
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
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
                j, i, f"{counts[i, j]:,}", ha="center", va="center", color="white" if shares[i, j] > 0.5 else "black"
            )
    axes.set_title("Confusion matrix (test)")
    return save_figure(figure, path)


@default_style
def roc_plot(curves: Sequence[dict[str, Any]], path: Path) -> Path:
    """ROC curves (one for a binary model, one-vs-rest for a multiclass one) from :func:`roc_curves`."""
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(5, 5))
    for curve in curves:
        axes.plot(curve["fpr"], curve["tpr"], label=f"{curve['label']} (AUC {curve['auc']:.3f})")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    axes.set_xlabel("false positive rate")
    axes.set_ylabel("true positive rate")
    axes.set_title("ROC (test)")
    axes.legend(loc="lower right", fontsize="small")
    return save_figure(figure, path, UNIT_SQUARE_MARGINS if len(curves) <= MAX_LEGEND_ENTRIES else None)


@default_style
def calibration_plot(points: dict[str, Any], path: Path) -> Path:
    """Reliability curve from :func:`calibration_points`."""
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(5, 5))
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    axes.plot(points["predicted"], points["observed"], marker="o")
    axes.set_xlabel(f"predicted probability ({points['label']})")
    axes.set_ylabel("observed frequency")
    axes.set_title("Calibration (test)")
    return save_figure(figure, path, UNIT_SQUARE_MARGINS)


def roc_curves(y_true: np.ndarray, proba: np.ndarray, classes: Sequence[Any]) -> list[dict[str, Any]]:
    """The ROC curve of the positive class (binary) or of each class against the rest (multiclass)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    curves = []
    targets = [1] if proba.shape[1] == 2 else list(range(proba.shape[1]))
    for k in targets:
        positive = y_true == k
        if positive.all() or not positive.any():
            continue
        fpr, tpr, _ = roc_curve(positive, proba[:, k])
        auc = float(roc_auc_score(positive, proba[:, k]))
        curves.append({"label": str(classes[k]), "fpr": fpr.tolist(), "tpr": tpr.tolist(), "auc": auc})
    return curves


def calibration_points(y_true: np.ndarray, proba: np.ndarray, bins: int = 10) -> dict[str, Any]:
    """Mean predicted probability against observed frequency per probability bin (bins of 5 rows or more).

    Of the positive class (binary) or of the predicted class (multiclass).
    """
    import numpy as np

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
            xs.append(float(confidence[mask].mean()))
            ys.append(float(hit[mask].mean()))
    return {"predicted": xs, "observed": ys, "label": label}


@default_style
def residuals_plot(predicted: np.ndarray, residual: np.ndarray, path: Path) -> Path:
    """Residuals (true − predicted) against predicted values."""
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.scatter(predicted, residual, s=4, alpha=0.3)
    axes.axhline(0, color="grey", linewidth=1)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true − predicted")
    axes.set_title("Residuals (test)")
    return save_figure(figure, path)


@default_style
def importance_plot(importance: dict[str, float], path: Path, title: str = "Feature importance") -> Path:
    """Horizontal bars for the most important features."""
    plt = pyplot()
    top = sorted(importance.items(), key=lambda item: item[1], reverse=True)[:MAX_IMPORTANCE_BARS]
    top.reverse()
    figure, axes = plt.subplots(figsize=(6, max(3.0, 0.3 * len(top) + 1)))
    names = [name for name, _ in top]
    axes.barh(names, [value for _, value in top])
    figure.suptitle(title)
    return save_figure(figure, path, bar_chart_margins(figure, names))


def evaluation_figures(
    task: str,
    classes: Sequence[Any],
    *,
    y_true: np.ndarray,
    proba: np.ndarray | None = None,
    values: np.ndarray | None = None,
) -> dict[str, Any]:
    """What the evaluation plots show, computed from the test predictions (numpy and scikit-learn, no matplotlib).

    Drawn by :func:`evaluation_plots`, in keel's sidecar process during training.

    Args:
        task: ``binary``, ``multiclass`` or ``regression``.
        classes: Class labels in the order of ``proba``'s columns (classification).
        y_true: Encoded true targets of the test rows.
        proba: Class probabilities (classification).
        values: Predicted values (regression).

    Returns:
        ``residuals`` (predicted values and residuals, arrays) for regression; ``confusion_matrix`` (counts),
        ``classes``, ``roc`` and ``calibration`` for classification.
    """
    import numpy as np

    if task == "regression":
        if values is None:
            raise ValueError("regression predictions carry no values to plot")
        return {"residuals": {"predicted": values, "residual": y_true - values}}
    if proba is None:
        raise ValueError("classification predictions carry no probabilities to plot")
    size = len(classes)
    predicted = proba.argmax(axis=1)
    matrix = np.bincount(y_true.astype(np.int64) * size + predicted, minlength=size * size).reshape(size, size)
    return {
        "confusion_matrix": matrix.tolist(),
        "classes": [str(c) for c in classes],
        "roc": roc_curves(y_true, proba, classes),
        "calibration": calibration_points(y_true, proba),
    }


def evaluation_plots(
    folder: Path,
    figures: dict[str, Any],
    importance: dict[str, float] | None = None,
) -> None:
    """Draw the plots of a version's test evaluation from :func:`evaluation_figures`.

    Residuals (regression) or confusion matrix, ROC and calibration (classification), and the estimator's own
    feature importance when it has one.

    Args:
        folder: Where the PNG files go.
        figures: See :func:`evaluation_figures`.
        importance: Feature importance by input column.
    """
    if "residuals" in figures:
        residuals = figures["residuals"]
        residuals_plot(residuals["predicted"], residuals["residual"], folder / "residuals.png")
    else:
        confusion_matrix_plot(figures["confusion_matrix"], figures["classes"], folder / "confusion_matrix.png")
        roc_plot(figures["roc"], folder / "roc.png")
        calibration_plot(figures["calibration"], folder / "calibration.png")
    if importance:
        importance_plot(importance, folder / "feature_importance.png")
