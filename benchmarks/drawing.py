"""What drawing a version's plots costs the painter, with the fixed layouts and with ``tight_layout`` on every plot.

Run: uv run python benchmarks/drawing.py [--runs N]

Fits the main job's Adult model and computes what its plots show as ``keel train`` does, then draws the five plots
(confusion matrix, ROC, calibration, feature importance, contributions) the way keel does, and the same five with
``tight_layout`` on each (as before the ROC, calibration and bar charts got their fixed or measured margins), in
turn, after one warm-up of each. Prints the median CPU seconds of each way and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from machine import bytecode_note


def main() -> None:
    from keel.application.engines import LocalEngine
    from keel.application.insights import global_contributions
    from keel.application.prepare import prepare
    from keel.application.progress import SilentReporter
    from keel.application.scoring import labelled_predictions
    from keel.config import load_config
    from keel.io import plots, reports

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()

    loaded = load_config([], [])
    prepared = prepare(loaded, SilentReporter())
    model, _ = LocalEngine().fit(loaded, prepared)
    predictions = labelled_predictions(model, prepared.parts.test, label="test rows", features=prepared.test_x)
    figures = plots.evaluation_figures(model.task, model.classes, y_true=predictions.y_true, proba=predictions.proba)
    importance = model.feature_importance()
    contributions = global_contributions(model, prepared.test_x.sample(n=276, random_state=42).reset_index(drop=True))
    assert contributions is not None, "a LightGBM model has contributions"
    folder = Path(tempfile.mkdtemp())
    keel_layout = plots.save_figure

    def tight_everywhere(figure: Any, path: Path, margins: dict[str, float] | None = None) -> Path:
        return keel_layout(figure, path)

    def draw(save: Any) -> float:
        plots.save_figure = reports.save_figure = save
        started = time.process_time()
        plots.evaluation_plots(folder, figures, importance)
        reports.contributions_plot(contributions, folder / "contributions.png")
        return time.process_time() - started

    timings: dict[str, list[float]] = {"keel's layouts": [], "tight_layout on each": []}
    draw(keel_layout)
    draw(tight_everywhere)
    for _ in range(args.runs):
        timings["keel's layouts"].append(draw(keel_layout))
        timings["tight_layout on each"].append(draw(tight_everywhere))
    medians = {way: statistics.median(values) for way, values in timings.items()}
    for way, value in medians.items():
        print(f"{way:<24}{value:>7.3f} s CPU")
    ratio = medians["keel's layouts"] / medians["tight_layout on each"]
    print(f"ratio {ratio:.2f}×")
    print(f"five Adult plots, median of {args.runs} runs each, in turn; {bytecode_note()}")


if __name__ == "__main__":
    main()
