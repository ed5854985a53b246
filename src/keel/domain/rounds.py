"""How many boosting rounds LightGBM runs: early stopping on the validation part unless the config fixes a count."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from keel.config import ROUND_PARAMS, ModelConfig, stops_early

DEFAULT_ROUND_CAP = 5000
"""Most rounds a default LightGBM fit may boost; early stopping ends it long before on most tables."""

DEFAULT_PATIENCE = 50
"""Rounds without a better validation score after which a default LightGBM fit stops (at the least)."""

PATIENCE_RATE = 0.3
"""A default LightGBM fit waits this share of its best round's number when that exceeds ``DEFAULT_PATIENCE``
(AutoGluon's adaptive patience): a fit whose validation score still improves slowly after hundreds of rounds, as
with a Poisson objective, is not stopped by the first flat stretch."""


@dataclass(frozen=True)
class RoundPlan:
    """The estimator parameters and the early-stopping patience of one LightGBM fit.

    Attributes:
        params: ``model.params`` with the round cap added when early stopping is the default.
        patience: Rounds without improvement before stopping, or ``None`` to boost every round.
        adaptive: Whether the patience grows with the best round (:data:`PATIENCE_RATE`): the default, when
            ``model.early_stopping_rounds`` does not fix it.
    """

    params: dict[str, Any]
    patience: int | None
    adaptive: bool = False

    def stopping_callback(self) -> Any:
        """The LightGBM callback that stops boosting on the validation part as planned (``None``: no stopping)."""
        if self.patience is None:
            return None
        if self.adaptive:
            from keel.domain.boosting import patient_stopping

            return patient_stopping(self.patience, PATIENCE_RATE)
        import lightgbm

        return lightgbm.early_stopping(self.patience, verbose=False)


def plan_rounds(model: ModelConfig, *, has_valid: bool) -> RoundPlan:
    """The rounds of a LightGBM fit.

    With validation rows and no round count in ``model.params``, LightGBM boosts up to ``DEFAULT_ROUND_CAP``
    rounds and keeps the best one, stopping ``model.early_stopping_rounds`` rounds after it, or by default
    ``DEFAULT_PATIENCE`` rounds or ``PATIENCE_RATE`` times the best round's number, whichever is more. A round count
    in ``params`` is kept as given, with early stopping only when ``model.early_stopping_rounds`` asks for it.
    Without validation rows nothing is added (LightGBM's own 100 rounds).
    """
    params = dict(model.params)
    if not has_valid:
        return RoundPlan(params, None)
    if stops_early(model.estimator, params):
        params["n_estimators"] = DEFAULT_ROUND_CAP
        patience = model.early_stopping_rounds
        return RoundPlan(params, patience or DEFAULT_PATIENCE, adaptive=patience is None)
    return RoundPlan(params, model.early_stopping_rounds)


LIGHTGBM_DEFAULT_LEARNING_RATE = 0.1
"""LightGBM's own learning rate, written beside the rounds found when a study did not search it."""


def trial_model(model: ModelConfig, drawn: dict[str, Any]) -> ModelConfig:
    """The model section one tuning trial fits: the config's params with the drawn ones, stopping early.

    For LightGBM the config's round count is dropped (the trial finds its own rounds by early stopping) unless
    the search space draws one, and early stopping is on (``model.early_stopping_rounds`` or
    ``DEFAULT_PATIENCE``).
    """
    if model.estimator != "lightgbm":
        return model.model_copy(update={"params": {**model.params, **drawn}})
    base = {key: value for key, value in model.params.items() if key not in ROUND_PARAMS}
    patience = model.early_stopping_rounds or DEFAULT_PATIENCE
    return model.model_copy(update={"params": {**base, **drawn}, "early_stopping_rounds": patience})


def tuned_params(model: ModelConfig, best: dict[str, Any], best_iteration: int | None) -> dict[str, Any]:
    """``model.params`` for the config ``keel tune`` writes: the best trial's, with the rounds it stopped at.

    For LightGBM the best iteration becomes ``n_estimators`` and the learning rate it went with is written
    beside it (rounds found at one learning rate are wrong at another).
    """
    if model.estimator != "lightgbm" or best_iteration is None:
        return {**model.params, **best}
    base = {key: value for key, value in model.params.items() if key not in ROUND_PARAMS}
    params = {**base, **best}
    params.setdefault("learning_rate", LIGHTGBM_DEFAULT_LEARNING_RATE)
    params["n_estimators"] = int(best_iteration)
    return params


def refit_model(model: ModelConfig, best_iteration: int | None) -> ModelConfig:
    """The model section that fits a model again on the training and validation rows together.

    There are no rows left to stop on, so LightGBM boosts exactly the rounds early stopping chose on the validation
    part (``best_iteration``); the other estimators are fitted as they were. ``auto`` refits its choice so, and so
    does a default LightGBM fit on a chronological split (:mod:`keel.domain.data_defaults`).
    """
    if model.estimator != "lightgbm":
        return model
    params = {**model.params, "n_estimators": max(1, int(best_iteration or 100))}
    return model.model_copy(update={"params": params, "early_stopping_rounds": None})
