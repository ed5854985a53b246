"""Choosing the boosting round after the fact: the validation loss of every round, from the raw scores.

Used where LightGBM cannot stop early itself (``lightgbm.dask`` takes no callbacks).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


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
