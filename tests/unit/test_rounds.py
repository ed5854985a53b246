"""Boosting rounds by default: early stopping on a validation part, and the rounds tuning finds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from keel.config import DEFAULT_VALID_SHARE, ModelConfig, load_config
from keel.domain.rounds import DEFAULT_PATIENCE, DEFAULT_ROUND_CAP, plan_rounds, trial_model, tuned_params

MINIMAL = """
project: demo
data:
  train: {path: data.csv}
  target: y
"""


def _load(tmp_path: Path, *overrides: str) -> object:
    path = tmp_path / "config.yaml"
    path.write_text(MINIMAL)
    return load_config([path], list(overrides)).config


def test_a_config_without_validation_or_rounds_carves_a_validation_part(tmp_path: Path) -> None:
    config = _load(tmp_path)
    assert config.split.valid_size == DEFAULT_VALID_SHARE  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "overrides",
    [
        ("model.params.n_estimators=300",),  # an explicit round count is the user's choice
        ("model.params.num_boost_round=300",),  # so is an alias of it
        ("split.valid_size=0",),  # an explicit "no validation part"
        ("model.estimator=ridge",),  # no boosting rounds to stop
        ("engine=dask",),  # Dask training picks rounds from its configured count
    ],
)
def test_the_validation_part_is_carved_only_for_default_rounds(tmp_path: Path, overrides: tuple[str, ...]) -> None:
    assert _load(tmp_path, *overrides).split.valid_size == 0  # type: ignore[attr-defined]


def test_early_stopping_asked_with_a_round_count_gets_a_validation_part(tmp_path: Path) -> None:
    config = _load(tmp_path, "model.params.n_estimators=1000", "model.early_stopping_rounds=20")
    assert config.split.valid_size == DEFAULT_VALID_SHARE  # type: ignore[attr-defined]


def test_a_configured_validation_share_is_kept(tmp_path: Path) -> None:
    assert _load(tmp_path, "split.valid_size=0.3").split.valid_size == 0.3  # type: ignore[attr-defined]


def test_default_rounds_stop_early_up_to_the_cap() -> None:
    plan = plan_rounds(ModelConfig(params={"learning_rate": 0.05}), has_valid=True)
    assert plan.params == {"learning_rate": 0.05, "n_estimators": DEFAULT_ROUND_CAP}
    assert plan.patience == DEFAULT_PATIENCE
    assert plan_rounds(ModelConfig(early_stopping_rounds=7), has_valid=True).patience == 7


def test_an_explicit_round_count_is_kept() -> None:
    plan = plan_rounds(ModelConfig(params={"n_estimators": 300}), has_valid=True)
    assert plan.params == {"n_estimators": 300}
    assert plan.patience is None
    assert (
        plan_rounds(ModelConfig(params={"n_estimators": 300}, early_stopping_rounds=20), has_valid=True).patience == 20
    )


def test_without_validation_rows_nothing_is_added() -> None:
    plan = plan_rounds(ModelConfig(), has_valid=False)
    assert plan.params == {}
    assert plan.patience is None


def test_a_trial_finds_its_rounds_and_the_written_params_keep_them_with_the_learning_rate() -> None:
    model = ModelConfig(params={"n_estimators": 1000, "num_leaves": 15, "n_jobs": 1})
    trial = trial_model(model, {"learning_rate": 0.03})
    assert trial.params == {"num_leaves": 15, "n_jobs": 1, "learning_rate": 0.03}
    assert trial.early_stopping_rounds == DEFAULT_PATIENCE
    assert tuned_params(model, {"learning_rate": 0.03}, 412) == {
        "num_leaves": 15,
        "n_jobs": 1,
        "learning_rate": 0.03,
        "n_estimators": 412,
    }
    # The learning rate the rounds went with is written even when the study did not search it.
    assert tuned_params(model, {"num_leaves": 31}, 90)["learning_rate"] == 0.1


def test_default_rounds_stop_on_the_validation_part_and_keep_the_best_round() -> None:
    from keel.config import DataConfig, FeaturesConfig
    from keel.domain.schema import infer_schema
    from keel.domain.training import encode_target, fit_model

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=600), "z": rng.normal(size=600)})
    frame["y"] = np.where(frame["x"] + rng.normal(scale=1.0, size=600) > 0, "yes", "no")
    schema = infer_schema(frame, DataConfig(train={"path": "t.csv"}, target="y"))
    x, y = frame[["x", "z"]], encode_target(frame["y"], schema)
    model, report = fit_model(
        schema, FeaturesConfig(), ModelConfig(), seed=1, train_x=x[:500], train_y=y[:500], valid_x=x[500:],
        valid_y=y[500:],
    )  # fmt: skip
    assert report.best_iteration is not None
    # A noisy one-feature target: the best round comes long before the cap, and only those trees are kept.
    assert 1 <= report.best_iteration < 500
    assert model.estimator.current_iteration() == report.best_iteration


def test_a_passed_deadline_stops_boosting_with_the_best_round_so_far() -> None:
    import time

    import lightgbm

    from keel.application.budget import deadline_callback

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    y = (x[:, 0] > 0).astype(int)
    model = lightgbm.LGBMClassifier(n_estimators=500, verbose=-1)
    model.fit(x[:300], y[:300], eval_set=[(x[300:], y[300:])], callbacks=[deadline_callback(time.monotonic() - 1)])
    assert model.booster_.current_iteration() == 1, "the deadline had passed: one round, not 500"
    assert model.booster_.best_iteration == 1
