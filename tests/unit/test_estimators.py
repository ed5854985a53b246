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


@pytest.mark.parametrize(
    ("name", "task", "params", "message"),
    [
        ("lightgbm", None, {"n_estimator": 10}, "did you mean 'n_estimators'"),
        ("lightgbm", "binary", {"num_leaves": 3.5}, "model.params.num_leaves`: expected int"),
        ("random_forest", None, {"criterion": "best"}, "criterion"),
        ("logistic_regression", "regression", {}, "cannot do regression"),
    ],
)
def test_parameters_are_checked_without_data(
    name: str, task: str | None, params: dict[str, object], message: str
) -> None:
    from keel.domain.estimators import check_params

    with pytest.raises(ConfigError, match=message):
        check_params(name, task, params)  # type: ignore[arg-type]


def test_an_undeclared_task_accepts_a_parameter_either_estimator_of_the_family_takes() -> None:
    from keel.domain.estimators import check_params

    # class_weight exists only on the classifier; with the task inferred later it may still be right.
    check_params("random_forest", None, {"class_weight": "balanced", "n_estimators": 10})
    with pytest.raises(ConfigError, match="class_weight"):
        check_params("random_forest", "regression", {"class_weight": "balanced"})
