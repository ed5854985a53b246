"""``model.estimator: auto``: the candidate estimators for a task and its columns, and the leaderboard they make.

Pure: the job that fits the candidates and times them is :mod:`keel.application.automl`. Candidates are scored on
the validation part only; the test part never takes part in the choice.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from keel.config import ModelConfig, SplitConfig
from keel.domain.metrics import GREATER_IS_BETTER
from keel.domain.rounds import DEFAULT_PATIENCE
from keel.domain.schema import FeatureSchema
from keel.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

AUTO_PARAMS = frozenset({"n_jobs"})
"""``model.params`` keys ``estimator: auto`` accepts (passed to the candidates that take them)."""

DEFAULT_TIME_BUDGET = 300.0
"""Seconds ``estimator: auto`` spends fitting candidates when ``model.time_budget`` is not set."""

CANDIDATE_ESTIMATORS = ("lightgbm", "logistic_regression", "ridge", "hist_gradient_boosting")
"""Every estimator :func:`candidates` may propose (for any task)."""

_TAKES_N_JOBS = {"lightgbm"}  # scikit-learn 1.8 deprecates n_jobs of LogisticRegression


TREND_CONCORDANCE = 0.95
"""How consistently a numeric feature must rise (or fall) with ``split.time_column`` on the training rows to count
as encoding time itself (Goodman and Kruskal's gamma, ties ignored; see :func:`time_trend_features`)."""

_TREND_SAMPLE = 2000  # rows compared pairwise by time_trend_features: 4 million pairs, a few milliseconds


@dataclass(frozen=True)
class Candidate:
    """One estimator ``auto`` tries.

    Attributes:
        label: Its name on the leaderboard (the estimator, and what differs from its defaults).
        model: The model section it is fitted with.
        cost: Its expected fit time relative to the estimator with its defaults (see :func:`relative_cost`);
            ``auto`` scales the seconds the candidates of the same estimator already took by it.
        stronger: A more strongly regularised candidate ``auto`` fits right after this one when this one scores
            better than LightGBM's defaults (:data:`DEFAULTS_LABEL`; see :func:`escalation`).
    """

    label: str
    model: ModelConfig
    cost: float = 1.0
    stronger: Candidate | None = None


DEFAULTS_LABEL = "lightgbm"
"""The leaderboard label of LightGBM with its defaults, the first candidate."""


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


def candidates(
    schema: FeatureSchema,
    params: Mapping[str, Any],
    *,
    counts: bool = False,
    imbalanced: bool = False,
    trend: Sequence[str] = (),
    rows: int = 0,
) -> list[Candidate]:
    """The estimators ``auto`` tries for this task and these columns, in the order it fits them.

    First the quick candidates, the strongest default first: LightGBM with early stopping (when a column is text,
    after the linear model and its variants from the portfolio); a linear model (logistic regression or ridge, on
    one-hot or TF-IDF features); HistGradientBoosting when no column is text (it needs dense features); for a
    regression target of counts (``counts``: non-negative integers) also LightGBM with a Poisson objective.

    Then, while the budget lasts, the portfolio (see :func:`portfolio`): slower LightGBM settings that often do a
    little better or blend well, linear models with other regularisation when a column is text, and, when some
    features follow the time of a chronological split (``trend``), LightGBM with those features kept out of every
    interaction.

    Args:
        schema: Feature schema of the training rows.
        params: ``model.params`` (only :data:`AUTO_PARAMS` keys).
        counts: Whether the regression target holds only non-negative integers.
        imbalanced: Whether the classes are imbalanced (see :func:`is_imbalanced`): text linear models then also
            try ``class_weight: balanced``.
        trend: Features that encode the time of a chronological split (see :func:`time_trend_features`).
        rows: Training rows (the shallow setting's rows per leaf grow with them, see :func:`shallow_setting`).
    """
    task = schema.target.task
    has_text = any(column.type == "text" for column in schema.features)
    linear = "ridge" if task == "regression" else "logistic_regression"
    found = [Candidate(DEFAULTS_LABEL, _model("lightgbm", params)), Candidate(linear, _model(linear, params))]
    rest = portfolio(schema, params, counts=counts, imbalanced=imbalanced, trend=trend, rows=rows)
    if has_text:
        # TF-IDF columns: the linear models are fast and usually the strongest, so they (and their variants) run
        # first; LightGBM on thousands of sparse columns takes minutes, longer still out of fold.
        variants = [c for c in rest if c.model.estimator == linear]
        return [found[1], *variants, found[0], *[c for c in rest if c.model.estimator != linear]]
    found.append(Candidate("hist_gradient_boosting", _model("hist_gradient_boosting", params)))
    if task == "regression" and counts:
        found.append(Candidate("lightgbm poisson", _model("lightgbm", params, objective="poisson")))
    return found + rest


def portfolio(
    schema: FeatureSchema,
    params: Mapping[str, Any],
    *,
    counts: bool = False,
    imbalanced: bool = False,
    trend: Sequence[str] = (),
    rows: int = 0,
) -> list[Candidate]:
    """The candidates ``auto`` fits after the quick ones while its budget lasts, each group cheapest first.

    - Time trend (chronological split, ``trend`` not empty, every feature a plain column): LightGBM with the
      ``trend`` features in their own interaction-constraint group, so they can only shift the prediction (in
      log scale with the Poisson objective, used too for counts): the model then extrapolates a level that grows
      with time instead of holding the latest rows at the level of older ones; once at LightGBM's defaults and
      once more at each of the settings below; these come first, as the latest rows are what the model must
      forecast.
    - Text columns: the linear model with weaker and stronger regularisation (``C`` 10 and 100 for logistic
      regression, ``alpha`` 0.1 and 10 for ridge), and ``class_weight: balanced`` when the classes are imbalanced.
    - LightGBM settings after AutoGluon's presets: learning rate 0.03 (more rounds); extra trees; a "large" one
      (learning rate 0.03, 128 leaves, feature fraction 0.9, 3 rows per leaf); one with half the features per tree
      and 64 leaves (different trees for the blend); 128 leaves with 40 % of the features per tree; a strongly
      regularised one for noisy targets (15 leaves, 50 rows per leaf, row and feature subsampling, L2 5).
    - The regularised setting carries a shallower one (:func:`shallow_setting`) as :attr:`Candidate.stronger`:
      it is not in the list, and is fitted right after the regularised one when that beats LightGBM's defaults
      (:func:`escalation`), so a noisy target gets it early even when a busy machine fits few candidates, and
      other targets do not pay for it.

    Args:
        schema: Feature schema of the training rows.
        params: ``model.params`` (only :data:`AUTO_PARAMS` keys).
        counts: Whether the regression target holds only non-negative integers.
        imbalanced: Whether the classes are imbalanced.
        trend: Features that encode the time of a chronological split.
        rows: Training rows.
    """
    task = schema.target.task
    has_text = any(column.type == "text" for column in schema.features)
    trends: list[Candidate] = []
    linears: list[Candidate] = []
    found: list[Candidate] = []
    plain = all(column.type in ("numeric", "boolean", "categorical") for column in schema.features)
    others = [column.name for column in schema.features if column.name not in set(trend)]
    if trend and plain and others:
        shift = {"objective": "poisson"} if task == "regression" and counts else {}
        alone = {**shift, "interaction_constraints": [list(trend), others]}
        prefix = "lightgbm " + ("poisson " if shift else "") + "time trend alone"
        for suffix, extra in [("", {}), *LIGHTGBM_SETTINGS]:
            label = f"{prefix} {suffix}".strip()
            trends.append(
                Candidate(label, _model("lightgbm", params, **alone, **extra), relative_cost("lightgbm", extra))
            )
    if has_text:
        linear = "ridge" if task == "regression" else "logistic_regression"
        settings: list[dict[str, Any]] = (
            [{"alpha": 0.1}, {"alpha": 10.0}] if linear == "ridge" else [{"C": 10.0}, {"C": 100.0}]
        )
        if imbalanced and linear == "logistic_regression":
            settings = [{"C": 10.0, "class_weight": "balanced"}, *settings, {"C": 100.0, "class_weight": "balanced"}]
        for extra in settings:
            label = " ".join([linear, *(f"{k}={v}" for k, v in extra.items())])
            linears.append(Candidate(label, _model(linear, params, **extra), relative_cost(linear, extra)))
    shallow = shallow_setting(rows)
    stronger = Candidate("lightgbm shallow", _model("lightgbm", params, **shallow), relative_cost("lightgbm", shallow))
    for suffix, extra in LIGHTGBM_SETTINGS:
        model, cost = _model("lightgbm", params, **extra), relative_cost("lightgbm", extra)
        then = stronger if suffix == "regularised" else None
        found.append(Candidate(f"lightgbm {suffix}", model, cost, stronger=then))
    # Costs compare within an estimator only; the linear variants are seconds on text, LightGBM minutes.
    return sorted(trends, key=lambda c: c.cost) + linears + sorted(found, key=lambda c: c.cost)  # stable sorts


LIGHTGBM_SETTINGS: list[tuple[str, dict[str, Any]]] = [
    # (what the leaderboard adds to "lightgbm", the params); after AutoGluon's LightGBM presets
    ("learning_rate=0.03", {"learning_rate": 0.03}),
    ("extra_trees", {"extra_trees": True, "learning_rate": 0.05}),
    ("colsample_bytree=0.5 num_leaves=64", {"colsample_bytree": 0.5, "num_leaves": 64, "learning_rate": 0.05,
                                             "min_child_samples": 5, "reg_lambda": 1.0}),
    ("regularised", {"num_leaves": 15, "min_child_samples": 50, "subsample": 0.8, "subsample_freq": 1,
                     "colsample_bytree": 0.7, "reg_lambda": 5.0, "learning_rate": 0.03}),
    ("large", {"learning_rate": 0.03, "num_leaves": 128, "colsample_bytree": 0.9, "min_child_samples": 3}),
    ("num_leaves=128 colsample_bytree=0.4", {"learning_rate": 0.05, "num_leaves": 128, "colsample_bytree": 0.4,
                                              "min_child_samples": 3, "reg_lambda": 1.0}),
]  # fmt: skip
"""The LightGBM settings of the portfolio after the defaults."""

SHALLOW_ROWS_PER_LEAF = 1 / 256
"""Share of the training rows the shallow setting's every leaf holds at least (see :func:`shallow_setting`)."""


def shallow_setting(rows: int) -> dict[str, Any]:
    """LightGBM params for a noisy target: few, large leaves, row and feature subsampling and L2.

    When the outcome is mostly chance (a match, a click, a default on a loan), deep trees fit the noise: 7 leaves,
    each holding at least 1/256 of the ``rows`` (and LightGBM's 20), half the features per tree, 80 % of the rows
    per round and L2 5 average over many rows instead. Its rows per leaf grow with the table, as a fixed count
    would be strong regularisation on a thousand rows and none on a million.
    """
    return {
        "num_leaves": 7, "min_child_samples": max(20, round(rows * SHALLOW_ROWS_PER_LEAF)), "subsample": 0.8,
        "subsample_freq": 1, "colsample_bytree": 0.5, "reg_lambda": 5.0, "learning_rate": 0.05,
    }  # fmt: skip


def escalation(candidate: Candidate, scores: Mapping[str, float | None], metric: str) -> Candidate | None:
    """The candidate to fit right after ``candidate``: its :attr:`~Candidate.stronger` one when it beat the defaults.

    A regularised setting that scores better than LightGBM's defaults says the target rewards regularisation, so
    a still more regularised one is worth fitting before the rest of the portfolio. ``None`` when ``candidate``
    has none, when either score is missing or undefined, or when it did not beat LightGBM's defaults.

    Args:
        candidate: The candidate just fitted.
        scores: Validation (or out-of-fold) scores by label, of every candidate fitted so far.
        metric: The selection metric.
    """
    own, base = scores.get(candidate.label), scores.get(DEFAULTS_LABEL)
    if candidate.stronger is None or own is None or base is None or own != own or base != base:
        return None
    better = own > base if GREATER_IS_BETTER.get(metric, True) else own < base
    return candidate.stronger if better else None


FOLLOW_UP_SEEDS = 4
FOLLOW_UP_ROUNDS = 4
"""Rounds of :func:`follow_ups` ``auto`` runs at most, each from the scores so far, while its budget lasts."""
"""Reseeded copies of the best LightGBM candidate ``auto`` fits last, when its budget still lasts."""


def follow_ups(done: Sequence[tuple[Candidate, float | None]], metric: str, seed: int) -> list[Candidate]:
    """What ``auto`` fits once the portfolio is done and time is left, from the LightGBM candidates' scores.

    First the two best LightGBM candidates again at a third of their learning rate (three times the rounds: slower,
    usually a little better); then the best one with other seeds and row and feature subsampling, which mostly
    adds to the blend (its errors differ a little from the original's).

    Args:
        done: The fitted candidates with their validation scores (``None`` or NaN when undefined).
        metric: The selection metric.
        seed: The copies use the seeds after it (``split.seed``, then further on for each later round).
    """
    sign = 1.0 if GREATER_IS_BETTER.get(metric, True) else -1.0
    scored = [(c, sign * v) for c, v in done if c.model.estimator == "lightgbm" and v is not None and v == v]
    ranked = [c for c, _ in sorted(scored, key=lambda cv: -cv[1])]
    found: list[Candidate] = []
    for candidate in ranked[:2]:
        rate = float(candidate.model.params.get("learning_rate", 0.1)) / 3
        params = {**candidate.model.params, "learning_rate": round(rate, 4)}
        label = re.sub(r" learning_rate=\S+", "", candidate.label) + f" learning_rate={rate:.3g}"
        found.append(Candidate(label, candidate.model.model_copy(update={"params": params}), candidate.cost * 3))
    if ranked:
        best = ranked[0]
        base = re.sub(r" seed \d+", "", best.label)
        for k in range(1, FOLLOW_UP_SEEDS + 1):
            params = {"subsample": 0.8, "subsample_freq": 1, **best.model.params, "random_state": seed + k}
            if "random_state" not in best.model.params:  # a copy of a copy keeps its fraction
                params["colsample_bytree"] = 0.8 * float(best.model.params.get("colsample_bytree", 1.0))
            found.append(Candidate(f"{base} seed {seed + k}", best.model.model_copy(update={"params": params}),
                                   best.cost))  # fmt: skip
    return found


def _model(estimator: str, params: Mapping[str, Any], **extra: Any) -> ModelConfig:
    shared = {k: v for k, v in params.items() if estimator in _TAKES_N_JOBS}
    # LightGBM candidates stop a fixed DEFAULT_PATIENCE rounds after their best: they share one budget.
    patience = DEFAULT_PATIENCE if estimator == "lightgbm" else None
    return ModelConfig(
        estimator=estimator,  # type: ignore[arg-type]
        params={**shared, **extra},
        early_stopping_rounds=patience,
    )


def relative_cost(estimator: str, params: Mapping[str, Any]) -> float:
    """A candidate's expected fit time relative to ``estimator`` with its defaults (a rough prior).

    LightGBM: rounds grow as the learning rate falls (×0.1/lr), and as the square root of how much smaller than
    31 the leaves are (small trees learn less per round); a round's cost grows with the square root of the leaves
    and in proportion to the features each tree sees, but not below half a default round's (the gradients and the
    row sample cost the same however small the tree); extra trees (random thresholds) need about 1.5 times the
    rounds (measured: 2 to 13 times the default's seconds at learning rate 0.05). A linear model: about twice the
    iterations per tenfold weaker regularisation (logistic ``C`` above 1).

    Measured on 68,500 rows: 7 leaves, half the features and learning rate 0.05 took 1.9 times the default's
    seconds (this rule: 2.1; without the last two terms it said 0.48, and as ``auto`` scales its estimates by the
    slowest rate seen, that one mistake made every later estimate four times too long).
    """
    import math

    if estimator == "lightgbm":
        rate = 0.1 / float(params.get("learning_rate", 0.1))
        leaves = float(params.get("num_leaves", 31)) / 31.0
        rounds = rate * math.sqrt(max(1.0, 1.0 / leaves)) * (1.5 if params.get("extra_trees") else 1.0)
        per_round = max(0.5, math.sqrt(leaves) * float(params.get("colsample_bytree", 1.0)))
        return rounds * per_round
    if estimator == "logistic_regression":
        return 1.0 + max(0.0, math.log10(float(params.get("C", 1.0))))
    return 1.0


def estimate_seconds(candidate: Candidate, done: Sequence[tuple[Candidate, float]]) -> float | None:
    """Seconds ``candidate`` is expected to take, from the fits of the same estimator already ``done``.

    The slowest rate (seconds per unit of :attr:`Candidate.cost`) among them is used, so the estimate errs on the
    long side. ``None`` when no candidate of that estimator was fitted yet.
    """
    rates = [seconds / c.cost for c, seconds in done if c.model.estimator == candidate.model.estimator]
    return max(rates) * candidate.cost if rates else None


def should_start(candidate: Candidate, done: Sequence[tuple[Candidate, float]], remaining: float) -> str:
    """Why ``candidate`` must not start with ``remaining`` seconds of the budget left (``""``: start it).

    The first candidate always starts. Later ones start only while time is left and when their estimated fit time
    (:func:`estimate_seconds`) fits in it: a LightGBM candidate could be stopped at the deadline with its best round
    so far, but one expected to need more than the time left would stop far from its best and only waste it.
    """
    if not done:
        return ""
    if remaining <= 0:
        return "the budget was spent"
    expected = estimate_seconds(candidate, done)
    if expected is not None and expected > remaining:
        return f"about {expected:.0f} s expected, {remaining:.0f} s left"
    return ""


def is_imbalanced(class_counts: Sequence[int]) -> bool:
    """Whether the rarest class has fewer than half the rows of the most frequent one."""
    counts = [int(c) for c in class_counts if c > 0]
    return len(counts) > 1 and 2 * min(counts) < max(counts)


def time_trend_features(
    columns: Mapping[str, np.ndarray], time: np.ndarray, *, threshold: float = TREND_CONCORDANCE
) -> list[str]:
    """The numeric features that encode time itself: they rise (or fall) with ``time`` on nearly every pair of rows.

    A pair of rows at different times is concordant when the feature moves the same way as time, discordant when
    it moves the other way, and ignored when the feature is equal (Goodman and Kruskal's gamma). A year column, a
    running counter or the time column itself score 1; a month or an hour of the day, which come back every year or
    day, score far lower. Rank correlation would not do: a feature with two values, like a year over two years,
    cannot exceed 0.87 however perfectly it follows time.

    Args:
        columns: Numeric feature values of the training rows, by name (missing values as NaN).
        time: ``split.time_column`` of the same rows (numbers, datetimes or sortable text).
        threshold: Smallest absolute gamma that counts.

    Returns:
        The names whose absolute gamma reaches ``threshold``, in the order given.
    """
    import numpy as np

    order = np.argsort(time, kind="stable")
    if len(order) > _TREND_SAMPLE:  # evenly spaced in time, so the sample spans the whole period
        order = order[np.linspace(0, len(order) - 1, _TREND_SAMPLE).round().astype(np.int64)]
    _, times = np.unique(np.asarray(time)[order], return_inverse=True)  # ranks, ties equal: numbers, dates, text
    later = np.sign(_pairwise_difference(times))
    found = []
    for name, values in columns.items():
        sample = np.asarray(values, dtype=np.float64)[order]
        keep = ~np.isnan(sample)
        if keep.sum() < 2 or np.unique(sample[keep]).size < 2:
            continue
        moves = np.sign(_pairwise_difference(sample[keep])) * later[np.ix_(keep, keep)]
        decided = np.count_nonzero(moves)
        gamma = float(moves.sum()) / decided if decided else 0.0
        if abs(gamma) >= threshold:
            found.append(name)
    return found


def trend_features(
    split: SplitConfig, schema: FeatureSchema, train_x: pd.DataFrame, train_frame: pd.DataFrame | None
) -> list[str]:
    """The numeric or boolean features that follow ``split.time_column`` on the training rows.

    See :func:`time_trend_features`; none unless the split is chronological and ``train_frame`` holds that column.

    Args:
        split: The split section (its strategy and time column).
        schema: Feature schema of the training rows.
        train_x: Coerced training feature columns.
        train_frame: The training rows as loaded (with the time column).
    """
    import numpy as np
    import pandas as pd

    column = split.time_column
    if split.strategy != "chronological" or train_frame is None or column not in train_frame.columns:
        return []
    numeric = {}
    for feature in schema.features:
        if feature.type in ("numeric", "boolean") and feature.name in train_x.columns:
            values = pd.to_numeric(train_x[feature.name], errors="coerce")
            numeric[feature.name] = values.to_numpy(dtype=np.float64, na_value=np.nan)
    return time_trend_features(numeric, train_frame[column].to_numpy()) if numeric else []


def _pairwise_difference(values: np.ndarray) -> np.ndarray:
    """``values[j] - values[i]`` for every pair, upper triangle only (each pair once)."""
    import numpy as np

    values = values.astype(np.float64)
    return np.triu(values[None, :] - values[:, None], k=1)


REFIT_SHARE = 0.2
"""Share of ``auto``'s budget kept for refitting the chosen model on the training and validation rows together."""


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
