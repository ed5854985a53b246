"""``model.estimator: auto``: fit every candidate within the time budget and keep the best on the validation part.

The test part is not an input here: candidates are fitted on the training rows and ranked on the validation rows,
so the rows ``keel train`` evaluates on cannot change which model is chosen.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from keel.application.budget import deadline_callback
from keel.application.progress import Reporter
from keel.config import KeelConfig
from keel.domain.automl import DEFAULT_TIME_BUDGET, Entry, best_entry, candidates
from keel.domain.metrics import Predictions, compute_metrics
from keel.domain.model import FittedModel
from keel.domain.training import FitReport, fit_model
from keel.errors import ConfigError, DataError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


def fit_auto(
    config: KeelConfig,
    schema: Any,
    *,
    train_x: pd.DataFrame,
    train_y: np.ndarray,
    valid_x: pd.DataFrame | None,
    valid_y: np.ndarray | None,
    metric: str,
    reporter: Reporter,
) -> tuple[FittedModel, FitReport]:
    """Fit the candidates for the task in turn and return the one with the best validation ``metric``.

    A candidate starts only while the budget (``model.time_budget``) lasts; LightGBM candidates still boosting when
    it runs out stop there with their best round so far. The first candidate always runs, so a tiny budget still
    gives a model.

    Returns:
        The chosen model, and its fit report with the leaderboard of every candidate.

    Raises:
        ConfigError: There are no validation rows to rank the candidates on.
        DataError: The validation metric is undefined for every candidate.
    """
    import numpy as np

    if valid_x is None or valid_y is None or not len(valid_x):
        raise ConfigError("`model.estimator: auto` ranks candidates on the validation part, and it is empty")
    budget = config.model.time_budget or DEFAULT_TIME_BUDGET
    deadline = time.monotonic() + budget
    counts = schema.target.task == "regression" and bool(np.all(train_y >= 0) and np.all(np.mod(train_y, 1) == 0))
    entries: list[Entry] = []
    fitted: dict[str, tuple[FittedModel, FitReport]] = {}
    for candidate in candidates(schema, config.model.params, counts=counts):
        name = candidate.model.estimator
        if entries and time.monotonic() >= deadline:
            entries.append(Entry(candidate.label, name, None, 0.0, note=f"skipped: the {budget:g} s budget was spent"))
            reporter.note(f"auto: {candidate.label}: skipped, the {budget:g} s budget was spent")
            continue
        started = time.monotonic()
        callbacks = [deadline_callback(deadline)] if name == "lightgbm" else []
        model, report = fit_model(
            schema, config.features, candidate.model, seed=config.split.seed, train_x=train_x, train_y=train_y,
            valid_x=valid_x, valid_y=valid_y, callbacks=callbacks,
        )  # fmt: skip
        score = validation_score(model, valid_x, valid_y, metric)
        seconds = time.monotonic() - started
        note = "stopped by the time budget" if name == "lightgbm" and time.monotonic() >= deadline else ""
        entries.append(Entry(candidate.label, name, score, seconds, report.best_iteration, note))
        fitted[candidate.label] = (model, report)
        reporter.note(
            f"auto: {candidate.label}: validation {metric} {score:.5f} in {seconds:.1f} s"
            + (f" ({report.best_iteration} rounds)" if report.best_iteration else "")
            + (f", {note}" if note else "")
        )
    try:
        best = best_entry(entries, metric)
    except ValueError:
        raise DataError(f"validation {metric} is undefined for every candidate (one class only?)") from None
    model, report = fitted[best.label]
    report.leaderboard = [entry.to_dict() | {"chosen": entry is best} for entry in entries]
    report.chosen = best.label
    reporter.note(f"auto: chose {best.label} (best validation {metric} of {len(fitted)} fitted candidates)")
    return model, report


def validation_score(model: FittedModel, valid_x: pd.DataFrame, valid_y: np.ndarray, metric: str) -> float:
    """``metric`` of ``model`` on the validation rows."""
    if model.task == "regression":
        predictions = Predictions(y_true=valid_y, values=model.predict_value(valid_x))
    else:
        predictions = Predictions(y_true=valid_y, proba=model.predict_proba(valid_x))
    return float(compute_metrics(predictions, model.task, [metric], len(model.classes))[metric])
