"""``estimator: auto``'s pure logic: which candidates it tries in which order, when the budget stops it, and which
features encode the time of a chronological split."""

from __future__ import annotations

import numpy as np
import pytest

from keel.config import ModelConfig, stops_early
from keel.domain.automl import (
    Candidate,
    candidates,
    escalation,
    estimate_seconds,
    follow_ups,
    is_imbalanced,
    relative_cost,
    shallow_setting,
    should_start,
    time_trend_features,
)
from keel.domain.rounds import refit_model
from keel.domain.schema import ColumnSchema, FeatureSchema, TargetSchema


def _schema(task: str, types: dict[str, str]) -> FeatureSchema:
    columns = [ColumnSchema(name=name, role="feature", type=kind) for name, kind in types.items()]  # type: ignore[arg-type]
    classes = None if task == "regression" else ["a", "b", "c"]
    return FeatureSchema(columns=columns, target=TargetSchema(name="y", task=task, classes=classes), rows=100)  # type: ignore[arg-type]


_TABLE = {"year": "numeric", "hour": "numeric", "weather": "categorical"}


def _labels(found: list[Candidate]) -> list[str]:
    return [c.label for c in found]


def test_quick_candidates_come_first_then_the_portfolio_cheapest_first() -> None:
    found = candidates(_schema("regression", _TABLE), {"n_jobs": 1}, counts=True)
    assert _labels(found)[:4] == ["lightgbm", "ridge", "hist_gradient_boosting", "lightgbm poisson"]
    portfolio = found[4:]
    assert len(portfolio) >= 5
    assert all(c.model.estimator == "lightgbm" for c in portfolio)
    assert [c.cost for c in portfolio] == sorted(c.cost for c in portfolio)
    assert len(set(_labels(found))) == len(found), "leaderboard labels are unique"
    # n_jobs goes to LightGBM only; no trend candidate without trend features.
    assert all(c.model.params.get("n_jobs") == 1 for c in found if c.model.estimator == "lightgbm")
    assert "n_jobs" not in found[1].model.params
    assert not any("trend" in label for label in _labels(found))


def test_text_columns_add_linear_variants_and_balanced_weights_only_when_classes_are_imbalanced() -> None:
    schema = _schema("multiclass", {"title": "text", "size": "numeric"})
    balanced = candidates(schema, {}, imbalanced=True)
    assert _labels(balanced)[0] == "logistic_regression"
    linear = [c for c in balanced if c.model.estimator == "logistic_regression"]
    assert {c.model.params.get("C") for c in linear} == {None, 10.0, 100.0}
    assert any(c.model.params.get("class_weight") == "balanced" and c.model.params["C"] == 10.0 for c in linear)
    estimators = [c.model.estimator for c in balanced]
    assert estimators[:6] == ["logistic_regression"] * 5 + ["lightgbm"], "the linear model and its variants first"
    assert _labels(balanced)[5] == "lightgbm", "then LightGBM's defaults, before its other settings"
    assert len(set(_labels(balanced))) == len(balanced)
    plain = candidates(schema, {}, imbalanced=False)
    assert not any(c.model.params.get("class_weight") for c in plain)
    assert not any(c.model.estimator == "hist_gradient_boosting" for c in plain), "it needs dense features"
    ridge = candidates(_schema("regression", {"title": "text"}), {})
    assert {c.model.params.get("alpha") for c in ridge if c.model.estimator == "ridge"} == {None, 0.1, 10.0}


def test_trend_features_get_candidates_that_keep_them_out_of_every_interaction() -> None:
    found = candidates(_schema("regression", _TABLE), {}, counts=True, trend=["year"])
    trends = [c for c in found if "trend" in c.label]
    assert len(trends) == 7
    assert found.index(trends[0]) == 4, "right after the quick candidates"
    for candidate in trends:
        assert candidate.model.params["interaction_constraints"] == [["year"], ["hour", "weather"]]
        assert candidate.model.params["objective"] == "poisson", "a count target shifts in log scale"
    not_counts = candidates(_schema("regression", _TABLE), {}, counts=False, trend=["year"])
    assert all("objective" not in c.model.params for c in not_counts if "trend" in c.label)
    # No candidate when every feature follows time, or when a column is not one model input (text, datetime).
    assert not any(
        "trend" in c.label for c in candidates(_schema("regression", {"year": "numeric"}), {}, trend=["year"])
    )
    dated = _schema("regression", {**_TABLE, "when": "datetime"})
    assert not any("trend" in c.label for c in candidates(dated, {}, trend=["year"]))


def test_relative_cost_grows_with_rounds_and_leaves() -> None:
    assert relative_cost("lightgbm", {}) == 1.0
    assert relative_cost("lightgbm", {"learning_rate": 0.03}) == pytest.approx(10 / 3)
    assert relative_cost("lightgbm", {"learning_rate": 0.03, "num_leaves": 128}) > relative_cost(
        "lightgbm", {"learning_rate": 0.03}
    )
    assert relative_cost("logistic_regression", {"C": 100.0}) > relative_cost("logistic_regression", {"C": 10.0}) > 1


def test_small_trees_are_not_costed_as_cheap_they_need_more_rounds() -> None:
    # Measured on 68,500 rows: the shallow setting (7 leaves, half the features, learning rate 0.05) took 1.9 times
    # the defaults' seconds. auto scales every later estimate by the slowest rate seen, so costing it at a fraction
    # of the defaults made the reseeded copies look four times too slow to start.
    shallow = relative_cost("lightgbm", shallow_setting(68_500))
    assert 1.5 < shallow < 3.0
    assert relative_cost("lightgbm", {"num_leaves": 7}) > 1.0, "fewer leaves: more rounds, each not much cheaper"
    assert relative_cost("lightgbm", {"colsample_bytree": 0.1}) == 0.5, "a round costs at least half a default one"


def _candidate(label: str, estimator: str = "lightgbm", cost: float = 1.0) -> Candidate:
    return Candidate(label, ModelConfig(estimator=estimator), cost)  # type: ignore[arg-type]


def test_the_estimate_scales_the_slowest_fit_of_the_same_estimator() -> None:
    done = [(_candidate("a"), 10.0), (_candidate("b", cost=2.0), 30.0), (_candidate("r", "ridge"), 1.0)]
    assert estimate_seconds(_candidate("c", cost=4.0), done) == pytest.approx(60.0), "15 s per unit of cost"
    assert estimate_seconds(_candidate("h", "hist_gradient_boosting"), done) is None


def test_budget_stopping() -> None:
    first, slow = _candidate("first"), _candidate("slow", cost=10.0)
    assert should_start(first, [], remaining=-5.0) == "", "the first candidate always runs"
    done = [(first, 20.0)]
    assert should_start(slow, done, remaining=0.0) == "the budget was spent"
    assert should_start(slow, done, remaining=150.0) == "about 200 s expected, 150 s left"
    assert should_start(slow, done, remaining=250.0) == ""
    assert should_start(_candidate("new", "ridge"), done, remaining=1.0) == "", "unknown cost: it may start"


def test_imbalanced_classes() -> None:
    assert is_imbalanced([100, 40])
    assert not is_imbalanced([100, 60, 55])
    assert not is_imbalanced([100])
    assert not is_imbalanced([100, 0]), "an absent class is not a rare one"


def _hours(days: int) -> np.ndarray:
    return np.arange(days * 24)


def test_a_year_column_follows_time_though_its_rank_correlation_cannot_reach_0_87() -> None:
    time = _hours(540)  # a year and a half of hours
    year = (time >= 365 * 24).astype(float)
    month = ((time // (24 * 30)) % 12).astype(float)
    hour = (time % 24).astype(float)
    counter = time * 3.0 + 7
    falling = -time.astype(float)
    rng = np.random.default_rng(0)
    noise = rng.normal(size=time.size)
    rank = np.corrcoef(year, time)[0, 1]
    assert rank < 0.87
    columns = {"year": year, "month": month, "hour": hour, "counter": counter, "falling": falling, "noise": noise}
    shuffled = rng.permutation(time.size)  # row order does not matter, only the time column's
    found = time_trend_features({k: v[shuffled] for k, v in columns.items()}, time[shuffled])
    assert found == ["year", "counter", "falling"]


def test_trend_detection_takes_dates_missing_values_and_ignores_constants() -> None:
    time = np.arange("2020-01-01", "2022-01-01", dtype="datetime64[D]")
    year = time.astype("datetime64[Y]").astype(int).astype(float) + 1970
    year[::7] = np.nan
    found = time_trend_features({"year": year, "constant": np.ones(time.size)}, time)
    assert found == ["year"]
    as_text = np.array([str(t) for t in time])  # ISO dates sort as text
    assert time_trend_features({"year": year}, as_text) == ["year"]


def test_follow_ups_slow_down_the_two_best_lightgbm_candidates_then_reseed_the_best() -> None:
    done = [
        (_candidate("lightgbm"), 0.80),
        (_candidate("ridge", "ridge"), 0.95),  # best overall, but not LightGBM
        (Candidate("lightgbm large", ModelConfig(estimator="lightgbm", params={"learning_rate": 0.03}), 3.0), 0.85),
        (_candidate("lightgbm broken"), float("nan")),
    ]
    found = follow_ups(done, "roc_auc", seed=42)
    assert [c.label for c in found[:2]] == ["lightgbm large learning_rate=0.01", "lightgbm learning_rate=0.0333"]
    assert found[0].model.params["learning_rate"] == 0.01
    assert found[0].cost == 9.0
    seeds = found[2:]
    assert [c.model.params["random_state"] for c in seeds] == [43, 44, 45, 46]
    assert all(c.label.startswith("lightgbm large seed") and c.model.params["subsample"] == 0.8 for c in seeds)
    # Lower is better for log loss: the order of the two flips.
    flipped = follow_ups(done, "log_loss", seed=0)
    assert flipped[0].label == "lightgbm learning_rate=0.0333"
    assert follow_ups([(_candidate("ridge", "ridge"), 1.0)], "rmse", seed=0) == []


def test_a_refit_boosts_exactly_the_rounds_early_stopping_chose() -> None:
    chosen = ModelConfig(estimator="lightgbm", params={"learning_rate": 0.03, "n_jobs": 1})  # type: ignore[arg-type]
    refit = refit_model(chosen, best_iteration=412)
    assert refit.params == {"learning_rate": 0.03, "n_jobs": 1, "n_estimators": 412}
    assert refit.early_stopping_rounds is None
    assert not stops_early(refit.estimator, refit.params), "no validation rows are left to stop on"
    linear = ModelConfig(estimator="logistic_regression", params={"C": 10.0})  # type: ignore[arg-type]
    assert refit_model(linear, None) == linear


def test_a_later_round_reseeds_the_best_copy_under_its_base_name_with_new_seeds() -> None:
    params = {"subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.4, "random_state": 43}
    copy = Candidate("lightgbm large seed 43", ModelConfig(estimator="lightgbm", params=params))  # type: ignore[arg-type]
    found = follow_ups([(copy, 0.9), (_candidate("lightgbm"), 0.8)], "accuracy", seed=46)
    seeds = found[2:]  # after the two slower copies
    assert [c.label for c in seeds] == [f"lightgbm large seed {n}" for n in (47, 48, 49, 50)]
    assert all(c.model.params["colsample_bytree"] == 0.4 for c in seeds), "a copy of a copy keeps its fraction"


def test_the_shallow_setting_comes_right_after_the_regularised_one_only_when_that_beats_the_defaults() -> None:
    found = candidates(_schema("binary", _TABLE), {"n_jobs": 1}, rows=68_500)
    assert "lightgbm shallow" not in _labels(found), "not fitted unless regularisation helped"
    regularised = next(c for c in found if c.label == "lightgbm regularised")
    stronger = regularised.stronger
    assert stronger is not None
    assert stronger.label == "lightgbm shallow"
    assert stronger.model.params["num_leaves"] < regularised.model.params["num_leaves"]
    assert stronger.model.params["min_child_samples"] == 268, "1/256 of the training rows per leaf"
    assert stronger.model.params["n_jobs"] == 1
    assert stronger.model.early_stopping_rounds is not None
    slow = [found.index(c) for c in found if c.label in ("lightgbm large", "lightgbm extra_trees")]
    assert found.index(regularised) < min(slow), "the regularised setting is fitted before the slow ones"
    # Log loss: lower is better. The defaults at 0.6125, the regularised setting at 0.6107: the shallow one next.
    assert escalation(regularised, {"lightgbm": 0.6125, "lightgbm regularised": 0.6107}, "log_loss") is stronger
    assert escalation(regularised, {"lightgbm": 0.6100, "lightgbm regularised": 0.6107}, "log_loss") is None
    # Higher is better for accuracy; a missing or undefined score never escalates.
    assert escalation(regularised, {"lightgbm": 0.891, "lightgbm regularised": 0.890}, "accuracy") is None
    assert escalation(regularised, {"lightgbm": 0.890, "lightgbm regularised": 0.891}, "accuracy") is stronger
    assert escalation(regularised, {"lightgbm regularised": 0.891}, "accuracy") is None
    assert escalation(regularised, {"lightgbm": float("nan"), "lightgbm regularised": 0.891}, "accuracy") is None
    assert escalation(found[0], {"lightgbm": 0.9}, "accuracy") is None, "the defaults carry no stronger setting"


def test_the_shallow_settings_rows_per_leaf_grow_with_the_table_but_never_below_lightgbms_own() -> None:
    assert shallow_setting(1_000)["min_child_samples"] == 20
    assert shallow_setting(25_600)["min_child_samples"] == 100
    assert shallow_setting(2_560_000)["min_child_samples"] == 10_000
