"""Search spaces: defaults per estimator, validation of declared spaces, and drawing parameters from them."""

from __future__ import annotations

import pytest

from keel.config import ParamSpace, TuningConfig
from keel.domain.estimators import build_estimator, estimator_names
from keel.domain.tuning import DEFAULT_SPACES, direction, search_space, suggest_params
from keel.errors import ConfigError


@pytest.mark.parametrize("name", estimator_names())
def test_every_estimator_has_a_default_space_its_estimator_accepts(name: str) -> None:
    import optuna

    space = search_space(TuningConfig(), name)
    assert space, f"no default space for {name}"
    params = suggest_params(optuna.trial.FixedTrial(_midpoints(space)), space)
    task = "regression" if name == "ridge" else "binary"
    build_estimator(name, task, params, seed=0)  # raises ConfigError on an unknown or ill-typed parameter


def test_a_declared_space_replaces_the_default() -> None:
    tuning = TuningConfig(space={"num_leaves": ParamSpace(type="int", low=4, high=8)})
    assert list(search_space(tuning, "lightgbm")) == ["num_leaves"]


def test_values_drawn_stay_in_their_space() -> None:
    import optuna

    space = {
        "a": ParamSpace(type="int", low=10, high=50, step=10),
        "b": ParamSpace(type="float", low=1e-4, high=1.0, log=True),
        "c": ParamSpace(type="categorical", choices=["x", None, 3]),
    }
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(30):
        params = suggest_params(study.ask(), space)
        assert params["a"] in {10, 20, 30, 40, 50}
        assert 1e-4 <= params["b"] <= 1.0
        assert params["c"] in ("x", None, 3)


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"type": "int", "low": 5}, "needs `low` and `high`"),
        ({"type": "float", "low": 2, "high": 1}, "is above"),
        ({"type": "float", "low": 0, "high": 1, "log": True}, "needs `low` > 0"),
        ({"type": "categorical"}, "non-empty `choices`"),
    ],
)
def test_a_bad_space_is_refused_at_load_time(space: dict[str, object], message: str) -> None:
    from keel.config import load_config

    flat = [f"tuning.space.num_leaves.{key}={value}" for key, value in space.items()]
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=flat)


def test_direction_follows_the_metric() -> None:
    assert direction("roc_auc") == "maximize"
    assert direction("log_loss") == "minimize"
    assert direction("rmse") == "minimize"


def _midpoints(space: dict[str, ParamSpace]) -> dict[str, object]:
    values: dict[str, object] = {}
    for name, spec in space.items():
        if spec.type == "categorical":
            values[name] = (spec.choices or [None])[0]
        elif spec.type == "int":
            values[name] = int(spec.low or 0)
        else:
            values[name] = float(spec.low or 0)
    return values


def test_default_spaces_only_name_known_estimators() -> None:
    assert set(DEFAULT_SPACES) == set(estimator_names())
