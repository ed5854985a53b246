"""Hyper-parameter search spaces: the defaults per estimator and how a trial draws from them.

Pure: a *trial* is anything with Optuna's ``suggest_int`` / ``suggest_float`` / ``suggest_categorical`` methods.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Protocol

from keel.config import ParamSpace, TuningConfig
from keel.domain.metrics import GREATER_IS_BETTER


def _int(low: int, high: int, *, log: bool = False, step: int | None = None) -> ParamSpace:
    return ParamSpace(type="int", low=low, high=high, log=log, step=step)


def _float(low: float, high: float, *, log: bool = False) -> ParamSpace:
    return ParamSpace(type="float", low=low, high=high, log=log)


DEFAULT_SPACES: dict[str, dict[str, ParamSpace]] = {
    # Ranges that cover what usually matters for each family on tabular data; ``tuning.space`` replaces them.
    # LightGBM's round count is left to early stopping (set `model.early_stopping_rounds`), not searched.
    "lightgbm": {
        "learning_rate": _float(0.01, 0.3, log=True),
        "num_leaves": _int(8, 256, log=True),
        "min_child_samples": _int(5, 100, log=True),
        "colsample_bytree": _float(0.4, 1.0),
        "subsample": _float(0.5, 1.0),
        "subsample_freq": _int(0, 5),
        "reg_lambda": _float(1e-8, 10.0, log=True),
    },
    "hist_gradient_boosting": {
        "learning_rate": _float(0.01, 0.3, log=True),
        "max_leaf_nodes": _int(8, 128, log=True),
        "min_samples_leaf": _int(5, 100, log=True),
        "l2_regularization": _float(1e-8, 10.0, log=True),
    },
    "random_forest": {
        "n_estimators": _int(100, 500, step=50),
        "min_samples_leaf": _int(1, 20, log=True),
        "max_features": ParamSpace(type="categorical", choices=["sqrt", "log2", 0.5, 1.0]),
    },
    "logistic_regression": {"C": _float(1e-3, 100.0, log=True)},
    "ridge": {"alpha": _float(1e-3, 100.0, log=True)},
}


class Trial(Protocol):
    """What a search space needs from an Optuna trial."""

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        """Draw an integer."""
        ...

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        """Draw a float."""
        ...

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        """Draw one of ``choices``."""
        ...


def search_space(tuning: TuningConfig, estimator: str) -> dict[str, ParamSpace]:
    """The space searched: ``tuning.space`` when given, else the estimator's default."""
    return dict(tuning.space) if tuning.space else dict(DEFAULT_SPACES.get(estimator, {}))


def suggest_params(trial: Trial, space: Mapping[str, ParamSpace]) -> dict[str, Any]:
    """Draw one value per parameter of ``space``.

    Args:
        trial: An Optuna trial (or anything with the same ``suggest_*`` methods).
        space: Parameter name → search space.

    Returns:
        Parameter name → value, ready to merge into ``model.params``.
    """
    params: dict[str, Any] = {}
    for name, spec in space.items():
        if spec.type == "categorical":
            params[name] = trial.suggest_categorical(name, list(spec.choices or []))
            continue
        if spec.low is None or spec.high is None:  # ParamSpace refuses this; kept for type checkers
            raise ValueError(f"search space for {name!r} needs low and high")
        if spec.type == "int":
            step = int(spec.step) if spec.step else 1
            params[name] = trial.suggest_int(name, int(spec.low), int(spec.high), step=step, log=spec.log)
        else:
            params[name] = trial.suggest_float(name, float(spec.low), float(spec.high), step=spec.step, log=spec.log)
    return params


def direction(metric: str) -> Literal["maximize", "minimize"]:
    """``maximize`` or ``minimize`` for a metric name."""
    return "maximize" if GREATER_IS_BETTER.get(metric, True) else "minimize"
