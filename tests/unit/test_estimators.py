from __future__ import annotations

import pytest

from keel.domain.estimators import build_estimator
from keel.errors import ConfigError


def test_user_params_win_over_defaults_and_the_seed_is_applied() -> None:
    spec = build_estimator("lightgbm", "binary", {"n_estimators": 12, "verbose": 1}, seed=9)
    params = spec.estimator.get_params()
    assert (params["n_estimators"], params["verbose"], params["random_state"]) == (12, 1, 9)


def test_lightgbm_core_parameters_and_aliases_are_accepted() -> None:
    spec = build_estimator("lightgbm", "regression", {"lambda_l2": 1.0, "max_bin": 63}, seed=0)
    assert spec.estimator.get_params()["max_bin"] == 63


@pytest.mark.parametrize(
    ("name", "task", "params", "message"),
    [
        ("lightgbm", "binary", {"n_estimators": "ten"}, "expected int"),
        ("lightgbm", "binary", {"learning_rat": 0.1}, "learning_rate"),
        ("random_forest", "binary", {"criterion": "best"}, "criterion"),
        ("logistic_regression", "regression", {}, "cannot do regression"),
        ("ridge", "binary", {}, "cannot do binary"),
    ],
)
def test_bad_parameters_are_config_errors_naming_them(
    name: str, task: str, params: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        build_estimator(name, task, params, seed=0)  # type: ignore[arg-type]


def test_feature_names_stay_unique_after_cleaning_for_lightgbm() -> None:
    from keel.domain.training import lightgbm_feature_names

    names = lightgbm_feature_names(["text__char__a,", "text__char__a:", "text__char__a b", "plain"])
    assert len(set(names)) == 4
    assert all(not any(ch in name for ch in '[]{}":, ') for name in names)
    assert names[-1] == "plain"
