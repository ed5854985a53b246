"""Checks of the configuration alone, run before any data is read."""

from __future__ import annotations

from typing import Any

import pytest

from keel.application.prepare import check_config
from keel.config import KeelConfig
from keel.errors import ConfigError


def _config(**sections: Any) -> KeelConfig:
    data = {"train": {"path": "nowhere.csv"}, "target": "y", **sections.pop("data", {})}
    return KeelConfig.model_validate({"project": {"name": "check"}, "data": data, **sections})


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"model": {"params": {"learning_rat": 0.1}}}, "did you mean 'learning_rate'"),
        ({"model": {"params": {"n_estimators": "ten"}}}, "model.params.n_estimators`: expected int"),
        ({"data": {"task": "regression"}, "evaluation": {"metrics": ["accuracy"]}}, "do not apply to a regression"),
        ({"data": {"task": "binary"}, "tuning": {"metric": "rmse"}}, "tuning.metric: metric(s) rmse"),
        ({"data": {"task": "binary"}, "evaluation": {"promotion": {"metric": "r2"}}}, "evaluation: metric(s) r2"),
        ({"evaluation": {"metrics": ["rmse", "accuracy"]}}, "no task fits both"),
        ({"data": {"task": "regression"}, "model": {"estimator": "logistic_regression"}}, "cannot do regression"),
    ],
)
def test_config_mistakes_are_refused_without_reading_data(sections: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        check_config(_config(**sections))
    assert message in str(error.value)


def test_a_sound_config_passes_and_metrics_wait_for_the_data_when_the_task_is_not_declared() -> None:
    check_config(_config(model={"params": {"n_estimators": 10}}, evaluation={"metrics": ["rmse"]}))
