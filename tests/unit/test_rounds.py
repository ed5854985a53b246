"""Boosting rounds by default: early stopping on a validation part, and the rounds tuning finds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from keel.config import DEFAULT_VALID_SHARE, ModelConfig, load_config
from keel.domain.boosting import patient_stopping
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


def test_default_rounds_wait_longer_after_a_late_best_round_and_a_fixed_patience_does_not() -> None:
    from keel.domain.rounds import PATIENCE_RATE

    assert plan_rounds(ModelConfig(), has_valid=True).adaptive
    assert not plan_rounds(ModelConfig(early_stopping_rounds=50), has_valid=True).adaptive
    # A validation loss that improves until round 300, stays flat for 80 rounds, then improves again at round 381:
    # 50 rounds of patience stop at the first flat stretch; 30 % of 300 rounds wait for the later improvement.
    losses = [1.0 - 0.001 * min(i + 1, 300) - (0.01 if i >= 380 else 0.0) for i in range(1000)]
    assert _stopped_at(patient_stopping(DEFAULT_PATIENCE, 0.0), losses) == 300
    assert _stopped_at(plan_rounds(ModelConfig(), has_valid=True).stopping_callback(), losses) == 381
    assert round(PATIENCE_RATE * 300) > DEFAULT_PATIENCE


def test_the_patient_callback_keeps_the_best_round_when_the_cap_is_reached() -> None:
    losses = [1.0 - 0.001 * min(i + 1, 90) for i in range(100)]  # best at round 90, the cap at 100
    assert _stopped_at(plan_rounds(ModelConfig(), has_valid=True).stopping_callback(), losses) == 90


def _stopped_at(callback: Any, losses: list[float]) -> int:
    """The best round (1-based) a stopping callback keeps, fed ``losses`` as the validation log loss."""
    from lightgbm.callback import CallbackEnv, EarlyStopException

    for i, loss in enumerate(losses):
        env = CallbackEnv(None, {}, i, 0, len(losses), [("valid_0", "binary_logloss", loss, False)])
        try:
            callback(env)
        except EarlyStopException as stop:
            return stop.best_iteration + 1
    raise AssertionError("the callback never stopped")
