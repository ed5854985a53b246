"""Time budgets: a LightGBM fit that stops at a deadline, keeping its best validation round so far."""

from __future__ import annotations

import time
from typing import Any


def deadline_callback(deadline: float) -> Any:
    """A LightGBM callback that ends boosting once ``time.monotonic()`` passes ``deadline``.

    It follows the first validation metric as early stopping does, and on the deadline stops with the best round
    seen so far (the trees after it are dropped like those after an early stop). Without validation scores it
    stops at the current round.
    """
    import lightgbm

    best: dict[str, Any] = {"iteration": -1, "score": None, "results": []}

    def callback(env: Any) -> None:
        for entry in env.evaluation_result_list:
            name, _metric, value, higher_is_better = entry[:4]
            if name == "training":
                continue
            score = float(value) if higher_is_better else -float(value)
            if best["score"] is None or score > best["score"]:
                best.update(iteration=env.iteration, score=score, results=list(env.evaluation_result_list))
            break
        if time.monotonic() >= deadline:
            if best["iteration"] < 0:
                best.update(iteration=env.iteration, results=list(env.evaluation_result_list))
            raise lightgbm.callback.EarlyStopException(best["iteration"], best["results"])

    callback.order = 40  # type: ignore[attr-defined]  # after LightGBM's own early stopping (30)
    return callback
