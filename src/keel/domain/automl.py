"""``model.estimator: auto``: the candidate estimators for a task and its columns, and the leaderboard they make.

Pure: the job that fits the candidates and times them is :mod:`keel.application.automl`. Candidates are scored on
the validation part only; the test part never takes part in the choice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from keel.config import ModelConfig
from keel.domain.metrics import GREATER_IS_BETTER
from keel.domain.schema import FeatureSchema
from keel.errors import ConfigError

AUTO_PARAMS = frozenset({"n_jobs"})
"""``model.params`` keys ``estimator: auto`` accepts (passed to the candidates that take them)."""

DEFAULT_TIME_BUDGET = 300.0
"""Seconds ``estimator: auto`` spends fitting candidates when ``model.time_budget`` is not set."""

CANDIDATE_ESTIMATORS = ("lightgbm", "logistic_regression", "ridge", "hist_gradient_boosting")
"""Every estimator :func:`candidates` may propose (for any task)."""

_TAKES_N_JOBS = {"lightgbm"}  # scikit-learn 1.8 deprecates n_jobs of LogisticRegression


@dataclass(frozen=True)
class Candidate:
    """One estimator ``auto`` tries.

    Attributes:
        label: Its name on the leaderboard (the estimator, and what differs from its defaults).
        model: The model section it is fitted with.
    """

    label: str
    model: ModelConfig


@dataclass
class Entry:
    """One row of the leaderboard.

    Attributes:
        label: The candidate's name.
        estimator: Its estimator.
        score: Its validation score (``None`` when it was not fitted).
        fit_seconds: Seconds its fit and validation scoring took.
        best_iteration: Boosting rounds kept (LightGBM).
        note: Why it was skipped or stopped, if it was.
    """

    label: str
    estimator: str
    score: float | None
    fit_seconds: float
    best_iteration: int | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored with the version."""
        return {
            "candidate": self.label,
            "estimator": self.estimator,
            "valid_score": self.score,
            "fit_seconds": round(self.fit_seconds, 3),
            "best_iteration": self.best_iteration,
            "note": self.note,
        }


def check_auto_params(params: Mapping[str, Any]) -> None:
    """Refuse ``model.params`` that ``estimator: auto`` cannot hand to every candidate.

    Raises:
        ConfigError: A key other than those in :data:`AUTO_PARAMS`.
    """
    unknown = sorted(set(params) - AUTO_PARAMS)
    if unknown:
        raise ConfigError(
            f"`model.params` with `model.estimator: auto` takes only {', '.join(sorted(AUTO_PARAMS))}; "
            f"{', '.join(repr(k) for k in unknown)} belong(s) to one estimator: name it in model.estimator instead"
        )


def candidates(schema: FeatureSchema, params: Mapping[str, Any], *, counts: bool = False) -> list[Candidate]:
    """The estimators ``auto`` tries for this task and these columns, strongest default first.

    LightGBM with early stopping (second, after the linear model, when a column is text); a linear model
    (logistic regression or ridge, on one-hot or TF-IDF features);
    HistGradientBoosting when no column is text (it needs dense features); for a regression target of counts
    (``counts``: non-negative integers) also LightGBM with a Poisson objective; and LightGBM at a lower learning
    rate (slower, often a little better), last so a short budget skips it first.

    Args:
        schema: Feature schema of the training rows.
        params: ``model.params`` (only :data:`AUTO_PARAMS` keys).
        counts: Whether the regression target holds only non-negative integers.
    """
    task = schema.target.task
    has_text = any(column.type == "text" for column in schema.features)

    def model(estimator: str, **extra: Any) -> ModelConfig:
        shared = {k: v for k, v in params.items() if estimator in _TAKES_N_JOBS}
        return ModelConfig(estimator=estimator, params={**shared, **extra})  # type: ignore[arg-type]

    linear = "ridge" if task == "regression" else "logistic_regression"
    found = [Candidate("lightgbm", model("lightgbm")), Candidate(linear, model(linear))]
    if has_text:
        found.reverse()  # TF-IDF columns: the linear model is fast and usually the strongest, so it runs first
    if not has_text:
        found.append(Candidate("hist_gradient_boosting", model("hist_gradient_boosting")))
    if task == "regression" and counts:
        found.append(Candidate("lightgbm poisson", model("lightgbm", objective="poisson")))
    found.append(Candidate("lightgbm learning_rate=0.03", model("lightgbm", learning_rate=0.03)))
    return found


def best_entry(entries: Sequence[Entry], metric: str) -> Entry:
    """The fitted entry with the best validation score (the earlier one on a tie).

    Raises:
        ValueError: No entry was fitted.
    """
    fitted = [e for e in entries if e.score is not None and e.score == e.score]  # NaN != NaN
    if not fitted:
        raise ValueError("no candidate was fitted")
    sign = 1.0 if GREATER_IS_BETTER.get(metric, True) else -1.0
    return max(fitted, key=lambda e: (sign * float(e.score or 0.0), -entries.index(e)))
