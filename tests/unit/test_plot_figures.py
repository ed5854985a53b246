"""What the evaluation plots show is computed in the main process: the same numbers scikit-learn gives."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, roc_auc_score

from keel.io import plots, reports


@pytest.mark.parametrize("classes", [["no", "yes"], ["a", "b", "c", "d"]])
def test_confusion_matrix_and_roc_match_scikit_learn(classes: list[str]) -> None:
    rng = np.random.default_rng(3)
    y_true = rng.integers(0, len(classes), 900)
    proba = rng.dirichlet(np.ones(len(classes)), 900)
    proba[np.arange(900), y_true] += 0.3  # better than chance
    proba /= proba.sum(axis=1, keepdims=True)
    figures = plots.evaluation_figures(
        "multiclass" if len(classes) > 2 else "binary", classes, y_true=y_true, proba=proba
    )
    labels = list(range(len(classes)))
    assert figures["confusion_matrix"] == confusion_matrix(y_true, proba.argmax(axis=1), labels=labels).tolist()
    assert figures["classes"] == classes
    curves = figures["roc"]
    targets = [1] if len(classes) == 2 else labels
    assert [c["label"] for c in curves] == [classes[k] for k in targets]
    for curve, k in zip(curves, targets, strict=True):
        assert curve["auc"] == pytest.approx(roc_auc_score(y_true == k, proba[:, k]))
        assert curve["fpr"][0] == 0.0
        assert curve["tpr"][-1] == 1.0
    points = figures["calibration"]
    assert len(points["predicted"]) == len(points["observed"]) > 3
    assert all(0 <= v <= 1 for v in points["observed"])


def test_a_class_missing_from_the_test_rows_gets_no_curve_and_an_empty_row() -> None:
    y_true = np.array([0, 0, 1, 1, 0, 1])
    proba = np.array([[0.7, 0.2, 0.1]] * 3 + [[0.1, 0.8, 0.1]] * 3)
    figures = plots.evaluation_figures("multiclass", ["a", "b", "c"], y_true=y_true, proba=proba)
    assert [c["label"] for c in figures["roc"]] == ["a", "b"]
    assert figures["confusion_matrix"][2] == [0, 0, 0]


def test_regression_shows_every_residual() -> None:
    y_true = np.array([1.0, 2.0, 4.0])
    figures = plots.evaluation_figures("regression", [], y_true=y_true, values=np.array([1.5, 2.0, 3.0]))
    assert figures["residuals"]["residual"].tolist() == [-0.5, 0.0, 1.0]
    assert figures["residuals"]["predicted"].tolist() == [1.5, 2.0, 3.0]


def _roc_and_calibration(seed: int = 5) -> dict:
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 2, 2000)
    p = np.clip(y_true * 0.3 + rng.random(2000) * 0.7, 0, 1)
    return plots.evaluation_figures("binary", ["no", "yes"], y_true=y_true, proba=np.column_stack([1 - p, p]))


@pytest.mark.parametrize("draw", ["roc", "calibration"])
def test_the_fixed_margins_are_where_tight_layout_puts_the_axes(
    draw: str, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ROC and calibration plots skip the layout pass; their fixed margins are what it would give."""
    figures = _roc_and_calibration()
    laid_out: dict[str, tuple[float, ...]] = {}
    save = plots.save_figure

    def tight_instead(figure, path, margins=None):  # type: ignore[no-untyped-def]
        assert margins == plots.UNIT_SQUARE_MARGINS
        figure.tight_layout()
        p = figure.subplotpars
        laid_out["tight"] = (p.left, p.bottom, p.right, p.top)
        return save(figure, path)

    monkeypatch.setattr(plots, "save_figure", tight_instead)
    if draw == "roc":
        plots.roc_plot(figures["roc"], tmp_path / "plot.png")
    else:
        plots.calibration_plot(figures["calibration"], tmp_path / "plot.png")
    fixed = plots.UNIT_SQUARE_MARGINS
    assert laid_out["tight"] == pytest.approx((fixed["left"], fixed["bottom"], fixed["right"], fixed["top"]), abs=0.002)


def test_a_users_matplotlib_style_does_not_change_the_plots(tmp_path) -> None:
    import matplotlib

    figures = _roc_and_calibration()
    plots.evaluation_plots(tmp_path / "default", figures, {"age": 3.0, "hours": 1.0})
    with matplotlib.rc_context({"font.size": 22, "axes.facecolor": "black", "lines.linewidth": 5}):
        plots.evaluation_plots(tmp_path / "styled", figures, {"age": 3.0, "hours": 1.0})
    names = sorted(p.name for p in (tmp_path / "default").iterdir())
    assert names == ["calibration.png", "confusion_matrix.png", "feature_importance.png", "roc.png"]
    for name in names:
        assert (tmp_path / "styled" / name).read_bytes() == (tmp_path / "default" / name).read_bytes(), name


BAR_CHARTS = {
    "adult": {"capital_gain": 1200.0, "relationship": 900.0, "age": 300.0, "native_country": 40.0},
    "long names": {f"a_rather_long_feature_name_number_{i}": float(i * i * 1000) for i in range(25)},
    "tiny values": {"x": 0.000123, "y": 0.000456},
    "decimals": {"x": 0.123456, "y": 0.0456, "z": 0.3},
    "six digits": {"x": 987654.0, "y": 5.0},
    "huge values": {f"f{i}": 1e9 * (i + 1) for i in range(8)},
    "non-ASCII and dollars": {"Größe (m²)": 2.5, "price $ paid $": 1.0, "данные ε": 0.5},
}


@pytest.mark.parametrize("case", sorted(BAR_CHARTS))
@pytest.mark.parametrize("chart", ["importance", "contributions"])
def test_bar_charts_laid_out_without_tight_layout_clip_no_text(
    case: str, chart: str, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every label, tick, title and offset text of a bar chart lies inside the saved image."""
    values = dict(sorted(BAR_CHARTS[case].items(), key=lambda item: -item[1]))
    checked: list[str] = []
    save = plots.save_figure

    def check_then_save(figure, path, margins=None):  # type: ignore[no-untyped-def]
        assert margins is not None  # laid out without tight_layout
        figure.subplots_adjust(**margins)
        figure.canvas.draw()
        renderer = figure.canvas.get_renderer()
        drawn = figure.get_tightbbox(renderer)  # what is drawn (inches), ticks outside the axes' range left out
        image = figure.bbox_inches
        inside = (drawn.x0 >= image.x0, drawn.y0 >= image.y0, drawn.x1 <= image.x1, drawn.y1 <= image.y1)
        assert all(inside), f"drawn {drawn.bounds} beyond the image {image.bounds} (left, bottom, right, top: {inside})"
        checked.extend(label.get_text() for label in figure.axes[0].get_yticklabels())
        return save(figure, path, margins)

    monkeypatch.setattr(plots, "save_figure", check_then_save)
    monkeypatch.setattr(reports, "save_figure", check_then_save)
    if chart == "importance":
        plots.importance_plot(values, tmp_path / "plot.png")
    else:
        reports.contributions_plot(values, tmp_path / "plot.png")
    assert set(checked) == set(list(values)[:20])  # the 20 largest
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
