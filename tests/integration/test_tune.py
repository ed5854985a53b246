"""A real Optuna study on SQLite: trials on the validation split, child runs in MLflow, a config to train."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from keel.errors import ConfigError
from tests.integration.conftest import ProjectFactory, synthetic

pytestmark = pytest.mark.timeout(600)

_SMALL = {"estimator": "lightgbm", "params": {"n_estimators": 30, "num_leaves": 7, "n_jobs": 1}}


@pytest.mark.slow
def test_tune_runs_a_study_on_sqlite_and_writes_a_config_for_train(
    make_project: ProjectFactory, module_workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import optuna
    from mlflow import MlflowClient

    from keel.application import tune as tune_module
    from keel.config import load_config

    config = make_project(
        synthetic("binary", rows=800), "tuned", split={"test_size": 0.25, "valid_size": 0.25, "seed": 1}, model=_SMALL
    )
    scored: list[int] = []
    real = tune_module.compute_metrics

    def recording(predictions: Any, *args: Any, **kwargs: Any) -> dict[str, float]:
        scored.append(len(predictions.y_true))
        return real(predictions, *args, **kwargs)

    monkeypatch.setattr(tune_module, "compute_metrics", recording)
    loaded = load_config([config])
    result = tune_module.tune(loaded, trials=4, output=tmp_path / "tuned.yaml")

    assert result.study == "tune-tuned"
    assert result.metric == "roc_auc"
    assert sum(result.trials.values()) == 4
    assert 0.5 < result.best_value <= 1.0
    # Every trial was scored on the 150 validation rows (800 - 200 test rows, a quarter of the rest), never the test.
    assert scored
    assert set(scored) == {150}
    storage = module_workspace / "optuna.db"
    assert storage.is_file()
    study = optuna.load_study(study_name="tune-tuned", storage=f"sqlite:///{storage}")
    assert len(study.trials) == 4
    assert study.best_value == result.best_value

    client = MlflowClient(tracking_uri=f"sqlite:///{module_workspace / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tuned")
    children = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{result.run_id}'"
    )
    assert len(children) == 4
    assert {run.data.tags["keel.job"] for run in children} == {"tune-trial"}

    tuned = load_config([tmp_path / "tuned.yaml"]).config
    # Every trial stopped early on the validation rows (the config's 30 rounds were not a cap), and the written
    # config trains the best trial's rounds with the learning rate they went with.
    rounds = {trial.number: trial.user_attrs.get("best_iteration") for trial in study.trials}
    assert all(r is not None for r in rounds.values())
    assert tuned.model.params == {
        "num_leaves": 7,
        "n_jobs": 1,
        **result.best_params,
        "n_estimators": rounds[result.best_trial],
    }
    assert tuned.model.early_stopping_rounds is None
    assert "learning_rate" in result.best_params
    assert set(result.best_params) == set(tune_module.search_space(tuned.tuning, "lightgbm"))

    again = tune_module.tune(loaded, trials=2, output=tmp_path / "tuned.yaml")
    assert sum(again.trials.values()) == 6, "a second run continues the same study"


def test_tune_refuses_a_config_without_a_validation_split(make_project: ProjectFactory) -> None:
    from keel.application.tune import tune
    from keel.config import load_config

    config = make_project(synthetic("binary"), "no-valid", model=_SMALL)
    with pytest.raises(ConfigError, match="never on the test split"):
        tune(load_config([config]), trials=1)


def test_tune_runs_the_leakage_check_train_runs(
    shared_data: Path, module_workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bike config with `casual` and `registered` put back (they sum to the target) is refused, as by train."""
    from keel.application.progress import SilentReporter
    from keel.application.tune import tune
    from keel.config import load_config
    from keel.errors import DataError

    monkeypatch.setenv("KEEL_DATA_DIR", str(shared_data))
    repo = Path(__file__).resolve().parents[2]
    loaded = load_config([repo / "configs" / "bikes.yaml"], ["data.ignore=[]", "split.valid_size=0.1"])
    reporter = SilentReporter()
    with pytest.raises(DataError, match="target leakage") as error:
        tune(loaded, trials=1, reporter=reporter)
    assert "'casual' + 'registered'" in str(error.value)
    assert not any(step.startswith("Running") for step in reporter.steps), "no trial ran"


def test_a_remote_cluster_needs_a_shared_storage(make_project: ProjectFactory) -> None:
    from keel.application.tune import tune
    from keel.config import load_config

    config = make_project(synthetic("binary"), "remote", split={"valid_size": 0.2}, model=_SMALL)
    with pytest.raises(ConfigError, match="postgresql"):
        tune(load_config([config]), trials=1, engine="dask", scheduler="tcp://scheduler.invalid:8786")


def test_pruning_callback_reports_every_tenth_round_and_prunes_when_told() -> None:
    import optuna

    from keel.application.tune import PRUNE_EVERY, _pruning_callback

    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=0.8))
    trial = study.ask()
    callback = _pruning_callback(trial, maximize=True)
    good = SimpleNamespace(iteration=0, evaluation_result_list=[("valid_0", "auc", 0.9, True)])
    callback(good)
    # A lower-is-better metric is reported negated so it points the study's way (and is then below the threshold);
    # between two checkpoints nothing is reported or decided.
    between = SimpleNamespace(
        iteration=PRUNE_EVERY - 1, evaluation_result_list=[("valid_0", "binary_logloss", 0.3, False)]
    )
    callback(between)
    bad = SimpleNamespace(iteration=PRUNE_EVERY, evaluation_result_list=[("valid_0", "binary_logloss", 0.3, False)])
    with pytest.raises(optuna.TrialPruned, match=f"round {PRUNE_EVERY}"):
        callback(bad)
    assert trial.storage.get_trial(trial._trial_id).intermediate_values == {0: 0.9, PRUNE_EVERY: -0.3}


def test_storage_passwords_are_masked() -> None:
    from keel.application.tune import masked

    assert masked("postgresql://keel:s3cret@db:5432/optuna") == "postgresql://keel:***@db:5432/optuna"
    assert masked("sqlite:////tmp/optuna.db") == "sqlite:////tmp/optuna.db"


@pytest.mark.slow
def test_a_time_budget_alone_bounds_the_study(make_project: ProjectFactory, tmp_path: Path) -> None:
    from keel.application.tune import tune
    from keel.config import load_config

    config = make_project(
        synthetic("binary", rows=400), "budget", split={"test_size": 0.25, "valid_size": 0.25, "seed": 1}, model=_SMALL
    )
    result = tune(load_config([config]), trials=None, timeout=3, output=tmp_path / "tuned.yaml")
    # No trial count: the study ran trials until the budget, then wrote the best config.
    assert sum(result.trials.values()) >= 1
    assert (tmp_path / "tuned.yaml").is_file()
