"""Choosing the boosting round: early stopping whose patience grows, and the best round found after the fact.

After the fact means from the validation loss of every round, computed from the raw scores, where LightGBM cannot
stop early itself (``lightgbm.dask`` takes no callbacks).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


def patient_stopping(patience: int, rate: float) -> Any:
    """A LightGBM callback that stops once the validation score has not improved for ``max(patience, rate × best)``.

    ``best`` is the best round's number so far (AutoGluon's adaptive early stopping). It follows the first metric of
    the first validation set, as LightGBM's ``early_stopping`` does with one metric, and keeps the best round when
    the round cap is reached too, so ``best_iteration`` is always the best round.
    """
    import lightgbm

    state: dict[str, Any] = {"best": -1, "score": None, "results": []}

    def callback(env: Any) -> None:
        entry = next((e for e in env.evaluation_result_list if e[0] != "training"), None)
        if entry is None:
            return
        _name, _metric, value, higher_is_better = entry[:4]
        score = float(value) if higher_is_better else -float(value)
        if state["score"] is None or score > state["score"]:
            state.update(best=env.iteration, score=score, results=list(env.evaluation_result_list))
        waited = env.iteration - state["best"]
        if waited >= max(patience, round(rate * (state["best"] + 1))) or env.iteration == env.end_iteration - 1:
            raise lightgbm.callback.EarlyStopException(state["best"], state["results"])

    callback.order = 30  # type: ignore[attr-defined]  # where LightGBM's own early stopping runs
    return callback


def best_round(booster: Any, matrix: Any, y: np.ndarray, task: str, patience: int) -> int:
    """The boosting round with the lowest validation loss, stopping ``patience`` rounds after it.

    The loss is the objective's default metric (log loss for classification, squared error for regression),
    computed from the raw scores summed round by round, so the cost is one pass over the trees.

    Args:
        booster: The trained ``lightgbm.Booster``.
        matrix: Transformed validation features.
        y: Encoded validation target.
        task: ``binary``, ``multiclass`` or ``regression``.
        patience: Rounds without improvement after which the search stops (``early_stopping_rounds``).

    Returns:
        The number of rounds to keep (at least 1).
    """
    import numpy as np

    total = booster.current_iteration()
    raw: np.ndarray | None = None
    best_loss, best = math.inf, 1
    for round_index in range(total):
        step = np.asarray(booster.predict(matrix, start_iteration=round_index, num_iteration=1, raw_score=True))
        raw = step if raw is None else raw + step
        loss = _loss(raw, y, task)
        if loss < best_loss - 1e-12:
            best_loss, best = loss, round_index + 1
        elif round_index + 1 - best >= patience:
            break
    return best


def _loss(raw: np.ndarray, y: np.ndarray, task: str) -> float:
    import numpy as np

    if task == "regression":
        return float(np.mean((raw - y) ** 2))
    eps = 1e-15
    if task == "binary":
        p = 1.0 / (1.0 + np.exp(-raw))
        p = np.clip(p, eps, 1 - eps)
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    shifted = raw - raw.max(axis=1, keepdims=True)
    log_proba = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-np.mean(log_proba[np.arange(len(y)), y]))
