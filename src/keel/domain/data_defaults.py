"""What a LightGBM config that leaves the model to keel's defaults gets from the shape of its data.

Two defaults depend on the data rather than on the estimator alone, and both apply only where a chronological split
makes the model a forecast:

- **Growth.** A regression target of counts (non-negative integers, as ``auto``'s Poisson candidates require), with
  features that follow ``split.time_column`` (a year, a running counter:
  :func:`keel.domain.automl.time_trend_features`): LightGBM fits a log link (``objective: poisson``, which still
  predicts the mean) with those features in an interaction-constraint group of their own.
  Kept apart, they can only scale the prediction, so a level that grew with time reaches the forecast months too;
  otherwise the trees tie the new level to the seasons they saw it in. Neither half helps alone (a squared-error
  model cannot scale, and a log link without the constraint still ties the level to the seasons).
- **The latest rows.** With default rounds, early stopping needs a validation part, and on a chronological split
  it is the latest training rows, the ones closest to what the model forecasts. The rounds are found on it, then
  the model is fitted again on the training and validation rows with those rounds.

A config that sets ``objective`` or ``interaction_constraints`` keeps them, and one that sets a round count keeps the
training part alone. The caller reports :attr:`DataDefaults.notes` to the user.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from keel.config import KeelConfig, ModelConfig, stops_early
from keel.domain.automl import trend_features
from keel.domain.schema import FeatureSchema

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

LOG_LINK_OBJECTIVE = "poisson"
"""The objective a growing count gets (a log link; it predicts the mean, as squared error does)."""

OBJECTIVE_PARAMS = frozenset({"objective", "objective_type", "app", "application", "loss"})
"""LightGBM's names for the objective: setting one keeps the user's objective and interactions."""

CONSTRAINT_PARAMS = frozenset({"interaction_constraints"})

_PLAIN = ("numeric", "boolean", "categorical")  # features that are one model input each, under their own name


@dataclass(frozen=True)
class DataDefaults:
    """The defaults the data asks for, on top of ``model.params``.

    Attributes:
        params: Parameters added to ``model.params`` (none when the user set them or the data does not ask).
        refit: Whether the model is fitted again on the training and validation rows with the rounds early
            stopping found on the validation part.
        notes: What was chosen and why, and how to choose otherwise, for the user.
    """

    params: dict[str, Any] = field(default_factory=dict)
    refit: bool = False
    notes: tuple[str, ...] = ()

    def model(self, model: ModelConfig) -> ModelConfig:
        """``model`` with :attr:`params` added."""
        return model.model_copy(update={"params": {**model.params, **self.params}}) if self.params else model


def data_defaults(
    config: KeelConfig,
    schema: FeatureSchema,
    *,
    train_x: pd.DataFrame,
    train_y: np.ndarray,
    train_frame: pd.DataFrame | None,
    has_valid: bool,
) -> DataDefaults:
    """The defaults of a LightGBM fit that depend on its data (see the module's description).

    Args:
        config: The validated configuration (its model, split, target and derived features).
        schema: Feature schema of the training rows.
        train_x: Coerced training feature columns.
        train_y: Encoded training target.
        train_frame: The training rows as loaded (with ``split.time_column``).
        has_valid: Whether there are validation rows (early stopping, and the refit after it, need them).

    Returns:
        What to add to the fit; nothing for another estimator or another split.
    """
    import numpy as np

    model, split = config.model, config.split
    if model.estimator != "lightgbm" or split.strategy != "chronological":
        return DataDefaults()
    params: dict[str, Any] = {}
    notes: list[str] = []
    mine = set(model.params)
    target = schema.target.name
    if schema.target.task == "regression" and not (OBJECTIVE_PARAMS | CONSTRAINT_PARAMS) & mine:
        trend = trend_features(split, schema, train_x, train_frame)
        others = [c.name for c in schema.features if c.name not in set(trend)] + list(config.features.derived)
        plain = all(column.type in _PLAIN for column in schema.features)
        values = np.asarray(train_y, dtype=np.float64)
        counts = values.size > 0 and bool(np.all(values >= 0) and np.all(np.mod(values, 1) == 0) and values.max() > 0)
        if trend and others and plain and counts:
            params = {"objective": LOG_LINK_OBJECTIVE, "interaction_constraints": [list(trend), others]}
            notes.append(
                f"defaults: {_names(trend)} follow(s) {split.time_column} and {target} is a count: LightGBM "
                f"fits objective {LOG_LINK_OBJECTIVE} (a log link; it still predicts the mean) with {_names(trend)} "
                "in an interaction-constraint group of its own, so the level that grew with time reaches the "
                "forecast; set model.params.objective (e.g. regression) to keep squared error"
            )
    refit = has_valid and stops_early(model.estimator, model.params)
    if refit:
        notes.append(
            "defaults: the rounds are found by early stopping on the validation part (the latest training rows), "
            "then the model is fitted again on the training and validation rows with those rounds; set "
            "model.params.n_estimators to fit the training part alone"
        )
    return DataDefaults(params=params, refit=refit, notes=tuple(notes))


def _names(features: Sequence[str]) -> str:
    return ", ".join(features)
