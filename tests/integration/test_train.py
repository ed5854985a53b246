from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from keel.application.models import load_version
from keel.application.train import train
from keel.config import load_config
from keel.errors import ConfigError, DataError, RegistryError
from keel.io.registry import Registry

from .conftest import ProjectFactory, synthetic


@pytest.mark.parametrize(
    ("task", "estimator", "metric", "floor"),
    [
        ("binary", "lightgbm", "roc_auc", 0.9),
        ("binary", "logistic_regression", "roc_auc", 0.9),
        ("binary", "random_forest", "accuracy", 0.8),
        ("multiclass", "lightgbm", "accuracy", 0.7),
        ("multiclass", "hist_gradient_boosting", "accuracy", 0.7),
        ("regression", "lightgbm", "r2", 0.8),
        ("regression", "ridge", "r2", 0.8),
    ],
)
def test_each_task_and_estimator_trains_registers_and_reloads(
    make_project: ProjectFactory, module_workspace: Path, task: str, estimator: str, metric: str, floor: float
) -> None:
    name = f"{task}-{estimator}".replace("_", "-")
    params = {"n_estimators": 40, "num_leaves": 7} if estimator == "lightgbm" else {}
    config = make_project(synthetic(task), name, model={"estimator": estimator, "params": params})
    result = train(load_config([config]))
    assert result.task == task
    assert result.version == 1
    steps = {step["step"]: step["seconds"] for step in result.to_dict()["steps"]}  # what `keel train --json` prints
    assert list(steps)[:3] == ["Loading data", "Splitting and validating", f"Training {estimator}"]
    assert "Registering the model" in steps
    assert all(seconds >= 0 for seconds in steps.values())
    assert sum(steps.values()) <= result.seconds
    assert result.promotion.promote
    assert result.evaluation.metrics[metric] > floor
    baseline = result.evaluation.baseline[metric]
    assert result.evaluation.metrics[metric] > baseline
    handle = load_version(Registry.open(module_workspace), f"{name}@champion")
    assert handle.loaded.model.estimator_name == estimator
    files = set(handle.loaded.manifest["files"])
    assert {"schema.json", "config.yaml", "metrics.json"} <= files
    assert ("model.lgb.txt" if estimator == "lightgbm" else "estimator.skops") in files
    # A LightGBM pipeline is stored compiled, as data; other pipelines in skops.
    assert ("encoding.json" if estimator == "lightgbm" else "preprocessor.skops") in files
    assert any(name.startswith("plots/") and name.endswith(".png") for name in files)
    assert handle.loaded.manifest["data_fingerprint"]
    assert handle.loaded.schema.id_names == ["row_id"]


def test_second_identical_run_is_registered_but_not_promoted(
    make_project: ProjectFactory, module_workspace: Path
) -> None:
    config = make_project(synthetic("binary"), "gate")
    first = train(load_config([config]))
    second = train(load_config([config]))
    assert (first.version, second.version) == (1, 2)
    assert second.evaluation.metrics == first.evaluation.metrics
    assert not second.promotion.promote
    assert "margin" in second.promotion.reason
    registry = Registry.open(module_workspace)
    assert registry.alias_version("gate", "champion") == 1
    better = train(load_config([config], ["model.params.n_estimators=200", "model.params.num_leaves=15"]))
    decision = better.promotion
    assert decision.champion_value == pytest.approx(first.evaluation.metrics["roc_auc"])
    assert registry.alias_version("gate", "champion") == (3 if decision.promote else 1)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda f: f.drop(columns=["label"]), "'label' named in `data.target`"),
        (lambda f: f.iloc[:0], "no rows"),
        (lambda f: f.assign(label="only"), "only one class"),
        (lambda f: f.assign(x2=np.nan), "x2"),
        (lambda f: f.assign(x1=f["x1"].astype(object).where(f.index % 50 != 0, "oops")), "'oops'"),
    ],
    ids=["missing-target", "empty", "one-class", "all-missing-column", "unparseable-numbers"],
)
def test_invalid_data_is_refused_and_nothing_is_registered(
    make_project: ProjectFactory, module_workspace: Path, mutate: object, message: str
) -> None:
    frame = mutate(synthetic("binary"))  # type: ignore[operator]
    config = make_project(frame, "refused")
    with pytest.raises(DataError, match=message):
        train(load_config([config]))
    registry = Registry.open(module_workspace)
    if registry.exists():
        assert "refused" not in registry.model_names()


def test_unparseable_numbers_are_counted_with_examples(make_project: ProjectFactory) -> None:
    frame = synthetic("binary")
    frame["x1"] = frame["x1"].astype(object)
    frame.loc[[3, 7, 9], "x1"] = ["unknown", "twelve", "unknown"]
    with pytest.raises(DataError) as error:
        train(load_config([make_project(frame, "counted", split={"strategy": "random", "test_size": 0.01})]))
    message = str(error.value)
    assert "column 'x1' (numeric)" in message
    assert "'unknown'" in message


def test_rows_without_a_label_are_dropped_and_counted(make_project: ProjectFactory) -> None:
    frame = synthetic("binary")
    frame.loc[:9, "label"] = None
    result = train(load_config([make_project(frame, "unlabelled")]))
    assert result.dropped == {"train: missing target": 10}


def test_metric_that_does_not_fit_the_task_is_a_config_error(make_project: ProjectFactory) -> None:
    config = make_project(synthetic("regression"), "wrong-metric", evaluation={"metrics": ["accuracy"]})
    with pytest.raises(ConfigError, match="do not apply to a regression task"):
        train(load_config([config]))


def test_unknown_estimator_parameter_suggests_the_right_one(make_project: ProjectFactory) -> None:
    config = make_project(synthetic("binary"), "typo", model={"params": {"n_estimator": 10}})
    with pytest.raises(ConfigError, match="n_estimators"):
        train(load_config([config]))


def test_a_misspelled_parameter_is_refused_before_any_data_is_read(make_project: ProjectFactory) -> None:
    from keel.application.progress import SilentReporter

    config = make_project(synthetic("binary"), "typo-early", model={"params": {"num_leafs": 7}})
    reporter = SilentReporter()
    with pytest.raises(ConfigError, match=r"model\.params\.num_leafs"):
        train(load_config([config], ["data.train.path=no-such-file.csv"]), reporter)
    assert reporter.steps == []  # not even "Loading data" began; the missing file was never looked at


def test_slices_report_each_value(make_project: ProjectFactory) -> None:
    config = make_project(synthetic("binary"), "sliced", evaluation={"slices": ["colour"], "min_slice_rows": 10})
    result = train(load_config([config]))
    assert set(result.evaluation.slices["colour"]) == {"red", "green", "blue"}


def test_model_names_are_resolved_with_clear_errors(module_workspace: Path) -> None:
    registry = Registry.open(module_workspace)
    with pytest.raises(RegistryError, match="no registered model named 'nope'"):
        load_version(registry, "nope@champion")


def test_explicit_test_file_and_chronological_split(make_project: ProjectFactory, tmp_path: Path) -> None:
    frame = synthetic("regression")
    frame["day"] = pd.date_range("2024-01-01", periods=len(frame), freq="D").strftime("%Y-%m-%d")
    config = make_project(
        frame,
        "timed",
        split={"strategy": "chronological", "time_column": "day", "test_size": 100, "valid_size": 0},
        data={"ignore": ["day"]},
    )
    result = train(load_config([config]))
    assert result.rows["test"] == 100
    test_file = tmp_path / "holdout.csv"
    synthetic("binary", rows=200, seed=9).to_csv(test_file, index=False)
    explicit = make_project(
        synthetic("binary"),
        "explicit",
        data={"test": {"path": str(test_file)}},
        split={"strategy": "explicit", "valid_size": 0.1},
    )
    assert train(load_config([explicit])).rows["test"] == 200
