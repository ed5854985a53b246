"""Scoring and training on a real Dask LocalCluster (2 worker processes on loopback)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from keel.errors import ConfigError, DataError, KeelError
from tests.integration.conftest import ProjectFactory, synthetic

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """A LocalCluster of 2 single-threaded worker processes on 127.0.0.1, shared by the module's tests."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        yield cluster.scheduler_address


def _write_parts(frame: pd.DataFrame, folder: Path, parts: int) -> Path:
    folder.mkdir(parents=True)
    size = -(-len(frame) // parts)
    for index in range(parts):
        frame.iloc[index * size : (index + 1) * size].to_parquet(folder / f"part-{index}.parquet", index=False)
    return folder


@pytest.fixture
def adult_parquet(adult_rows: pd.DataFrame, tmp_path: Path) -> Path:
    """The Adult test rows with an id column and two unreadable rows, as 3 Parquet part files."""
    frame = adult_rows.copy()
    frame.insert(0, "row_id", range(len(frame)))
    frame["hours_per_week"] = frame["hours_per_week"].astype(str)
    frame.loc[[7, 12_000], "hours_per_week"] = "forty"
    return _write_parts(frame, tmp_path / "input", parts=3)


def test_dask_scoring_matches_in_process_row_for_row(
    adult_workspace: Path, adult_parquet: Path, tmp_path: Path, scheduler: str
) -> None:
    from keel.application.dask_predict import predict_dask
    from keel.application.models import load_version
    from keel.application.predict import predict_file
    from keel.io.registry import Registry

    handle = load_version(Registry.open(adult_workspace), "adult-income@champion")
    local = predict_file(handle, adult_parquet, tmp_path / "local.parquet")
    # A chunk size that does not divide the partitions: chunking must not change any row.
    dask = predict_dask(handle, adult_parquet, tmp_path / "dask", chunk_rows=1_777, scheduler=scheduler)

    assert (
        (dask.rows, dask.predicted, dask.invalid) == (local.rows, local.predicted, local.invalid) == (16_281, 16_279, 2)
    )
    assert dask.unseen == local.unseen
    assert sorted(p.name for p in (tmp_path / "dask").iterdir()) == [f"part-0000{i}.parquet" for i in range(3)]
    expected = pd.read_parquet(tmp_path / "local.parquet")
    scored = pd.read_parquet(tmp_path / "dask")
    pd.testing.assert_frame_equal(scored, expected)
    assert scored["row_id"].tolist() == [i for i in range(16_281) if i not in (7, 12_000)]
    assert scored["row"].tolist() == scored["row_id"].tolist()  # positions counted across the three part files
    errors = pd.read_parquet(dask.errors)
    assert errors["row_id"].tolist() == [7, 12_000]
    assert errors["row"].tolist() == [7, 12_000]
    assert errors["error"].str.contains("hours_per_week").all()
    pd.testing.assert_frame_equal(errors, pd.read_parquet(local.errors))


def test_dask_scoring_refuses_a_tampered_model_on_the_workers(
    copy_workspace: Path, adult_parquet: Path, tmp_path: Path, scheduler: str
) -> None:
    from keel.application.dask_predict import predict_dask
    from keel.application.models import load_version
    from keel.io import artifacts
    from keel.io.registry import Registry

    handle = load_version(Registry.open(copy_workspace), "adult-income@champion")
    booster = handle.loaded.directory / artifacts.BOOSTER_FILE
    booster.write_text(booster.read_text().replace("num_leaves", "num_leavez", 1))
    with pytest.raises(KeelError, match="sha256"):
        predict_dask(handle, adult_parquet, tmp_path / "out", scheduler=scheduler)
    assert not (tmp_path / "out").exists()


def test_dask_scoring_needs_parquet_and_a_folder_output(adult_workspace: Path, tmp_path: Path) -> None:
    from keel.application.dask_predict import predict_dask
    from keel.application.models import load_version
    from keel.io.registry import Registry

    handle = load_version(Registry.open(adult_workspace), "adult-income@champion")
    with pytest.raises(DataError, match="no Parquet files"):
        predict_dask(handle, tmp_path, tmp_path / "out")
    (tmp_path / "rows.csv").write_text("age\n30\n")
    with pytest.raises(DataError, match="reads Parquet"):
        predict_dask(handle, tmp_path / "rows.csv", tmp_path / "out")
    with pytest.raises(DataError, match="folder of Parquet parts"):
        predict_dask(handle, tmp_path, tmp_path / "out.parquet")


def _like_local(config: Path, distributed: Any, local: Any, dask_name: str, local_name: str) -> tuple[Any, Any]:
    """Check a Dask-trained version scores like the local one and holds the same files; return both versions."""
    from keel.application.models import load_version
    from keel.config import load_config
    from keel.io.registry import Registry

    metric = distributed.promotion.metric
    # Same rows, same test rows: the distributed fit is as good as the local one within noise.
    assert distributed.evaluation.metrics[metric] == pytest.approx(local.evaluation.metrics[metric], rel=0.1)
    registry = Registry.open(load_config([config]).config.registry.workspace)
    handle = load_version(registry, f"{dask_name}@champion")
    local_handle = load_version(registry, f"{local_name}@champion")
    assert set(handle.loaded.manifest["files"]) == set(local_handle.loaded.manifest["files"])
    return handle, local_handle


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_dask_training_registers_a_version_like_local_training(
    make_project: ProjectFactory, scheduler: str, task: str
) -> None:
    from keel.application.train import train
    from keel.config import load_config

    config = make_project(synthetic(task, rows=2_000), f"dask-{task}", split={"valid_size": 0.2, "seed": 1})
    local = train(load_config([config], [f"registry.model_name=local-{task}"]))
    distributed = train(
        load_config(
            [config],
            [
                "engine=dask",
                f"scheduler={scheduler}",
                "model.early_stopping_rounds=10",
                f"registry.model_name=dask-{task}",
            ],
        )
    )

    assert distributed.version == 1
    assert distributed.promotion.promote
    assert any("is not Parquet" in note for note in distributed.notes)  # CSV: read on the driver, and said so
    handle, _ = _like_local(config, distributed, local, f"dask-{task}", f"local-{task}")
    assert handle.loaded.model.is_booster
    assert 1 <= handle.loaded.manifest["best_iteration"] <= 40
    assert handle.loaded.model.estimator.current_iteration() == handle.loaded.manifest["best_iteration"]


@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_dask_training_on_parquet_parts_matches_local_training(
    make_project: ProjectFactory, scheduler: str, task: str, tmp_path: Path
) -> None:
    from keel.application.train import train
    from keel.config import load_config

    frame = synthetic(task, rows=3_000)
    parts = _write_parts(frame.iloc[:2_400], tmp_path / "parts", parts=3)
    frame.iloc[2_400:].to_parquet(tmp_path / "test.parquet", index=False)
    data = {"train": {"path": str(parts)}, "test": {"path": str(tmp_path / "test.parquet")}}
    split = {"strategy": "explicit", "valid_size": 0.2, "seed": 1}
    config = make_project(frame, f"parquet-{task}", data=data, split=split)
    common = ["model.early_stopping_rounds=10"]
    local = train(load_config([config], [*common, f"registry.model_name=local-pq-{task}"]))
    overrides = [*common, "engine=dask", f"scheduler={scheduler}", f"registry.model_name=dask-pq-{task}"]
    distributed = train(load_config([config], overrides))

    assert any(note.startswith("split on the workers") for note in distributed.notes)
    assert distributed.rows["test"] == local.rows["test"] == 600
    handle, local_handle = _like_local(config, distributed, local, f"dask-pq-{task}", f"local-pq-{task}")
    assert handle.loaded.model.schema.target.classes == local_handle.loaded.model.schema.target.classes
    assert handle.loaded.model.estimator.current_iteration() == handle.loaded.manifest["best_iteration"] <= 40


@pytest.fixture
def adult_training_parts(tmp_path: Path) -> Path:
    """The packaged Adult training rows (32,561) as 4 Parquet part files."""
    from keel.config import load_config
    from keel.io.sources import resolve_source
    from keel.io.tables import read_table

    source = load_config().config.data.train
    return _write_parts(read_table(resolve_source(source).path, csv=source.csv), tmp_path / "train-parts", parts=4)


def _refuse_reading(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Make every way this process reads a table with pandas fail for files under ``folder``."""
    import keel.application.dataset
    import keel.io.tables

    def guard(original):  # type: ignore[no-untyped-def]
        def reader(path, *args, **kwargs):  # type: ignore[no-untyped-def]
            if str(folder) in str(path):
                raise AssertionError(f"the driver read {path} with pandas")
            return original(path, *args, **kwargs)

        return reader

    monkeypatch.setattr(keel.io.tables, "read_table", guard(keel.io.tables.read_table))
    monkeypatch.setattr(keel.application.dataset, "read_table", guard(keel.application.dataset.read_table))
    monkeypatch.setattr(keel.io.tables, "_parquet_batches", guard(keel.io.tables._parquet_batches))
    monkeypatch.setattr(pd, "read_parquet", guard(pd.read_parquet))


def test_dask_training_reads_splits_and_encodes_parquet_parts_on_the_workers(
    adult_training_parts: Path, module_workspace: Path, scheduler: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keel.application.models import load_version
    from keel.application.train import train
    from keel.config import load_config
    from keel.io.registry import Registry

    common = [
        f"registry.workspace={module_workspace}",
        f"data.train.path={adult_training_parts}",
        "model.params.n_estimators=300",
    ]
    local = train(load_config(overrides=[*common, "registry.model_name=adult-parts-local"]))
    _refuse_reading(monkeypatch, adult_training_parts)
    with pytest.raises(AssertionError, match=r"read .* with pandas"):  # the guard works
        train(load_config(overrides=[*common, "registry.model_name=adult-parts-guard"]))
    distributed = train(
        load_config(
            overrides=[*common, "engine=dask", f"scheduler={scheduler}", "registry.model_name=adult-parts-dask"]
        )
    )

    assert any(note.startswith("split on the workers") for note in distributed.notes)
    assert distributed.rows["test"] == local.rows["test"] == 16_281  # the same explicit test table
    assert distributed.rows["train"] + distributed.rows["valid"] == 32_561
    assert distributed.rows["valid"] == pytest.approx(3_256, abs=150)  # a random 10 %, not an exact count
    assert distributed.version == 1
    assert distributed.promotion.promote
    metrics, expected = distributed.evaluation.metrics, local.evaluation.metrics
    assert metrics["accuracy"] == pytest.approx(expected["accuracy"], abs=0.01)
    assert metrics["roc_auc"] == pytest.approx(expected["roc_auc"], abs=0.01)
    registry = Registry.open(module_workspace)
    handle = load_version(registry, "adult-parts-dask@champion")
    local_handle = load_version(registry, "adult-parts-local@champion")
    assert set(handle.loaded.manifest["files"]) == set(local_handle.loaded.manifest["files"])
    assert handle.loaded.manifest["data_fingerprint"] == local_handle.loaded.manifest["data_fingerprint"]
    schema, local_schema = handle.loaded.model.schema, local_handle.loaded.model.schema
    assert schema.rows == distributed.rows["train"]
    assert [(c.name, c.role, c.type) for c in schema.columns] == [
        (c.name, c.role, c.type) for c in local_schema.columns
    ]
    assert schema.column("workclass").categories == local_schema.column("workclass").categories
    assert schema.target.classes == local_schema.target.classes


def test_dask_training_refuses_to_collect_more_rows_than_allowed(
    adult_training_parts: Path, module_workspace: Path, scheduler: str
) -> None:
    from keel.application.train import train
    from keel.config import load_config

    overrides = [
        f"registry.workspace={module_workspace}",
        f"data.train.path={adult_training_parts}/*.parquet",
        "split.strategy=random",
        "engine=dask",
        f"scheduler={scheduler}",
        "dask_collect_rows=5000",
    ]
    with pytest.raises(ConfigError, match=r"about 9,117 test and validation rows .* dask_collect_rows \(5,000\)"):
        train(load_config(overrides=overrides))


def test_dask_training_names_unreadable_part_files(
    make_project: ProjectFactory, scheduler: str, tmp_path: Path
) -> None:
    from keel.application.train import train
    from keel.config import load_config

    frame = synthetic("binary", rows=900)
    parts = _write_parts(frame, tmp_path / "parts", parts=3)
    config = make_project(frame, "dask-unreadable", data={"train": {"path": str(parts)}})
    overrides = ["engine=dask", f"scheduler={scheduler}"]
    frame.iloc[:300].rename(columns={"x1": "x_one"}).to_parquet(parts / "part-1.parquet", index=False)
    with pytest.raises(DataError, match=r"cannot read it as Parquet .* same columns"):
        train(load_config([config], overrides))
    (parts / "part-2.parquet").write_bytes((parts / "part-2.parquet").read_bytes()[:500])
    with pytest.raises(DataError, match=r"part-2\.parquet: not a readable Parquet file"):
        train(load_config([config], overrides))


def test_dask_training_explains_port_problems(make_project: ProjectFactory, scheduler: str) -> None:
    from keel.application.train import train
    from keel.config import load_config

    config = make_project(synthetic("binary"), "dask-ports")
    # Two workers on one machine cannot both listen on one fixed port.
    overrides = ["engine=dask", f"scheduler={scheduler}", "model.params.local_listen_port=12400"]
    with pytest.raises(KeelError, match="could not set up their network"):
        train(load_config([config], overrides))


def test_best_round_stops_where_the_validation_loss_is_lowest() -> None:
    import lightgbm
    import numpy as np

    from keel.domain.boosting import best_round

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    y = (x[:, 0] + rng.normal(scale=1.5, size=400) > 0).astype(int)
    booster = lightgbm.train(
        {"objective": "binary", "verbose": -1, "learning_rate": 0.3, "num_leaves": 15, "min_data_in_leaf": 2},
        lightgbm.Dataset(x[:200], y[:200]),
        num_boost_round=80,
    )
    losses = [
        -np.mean(y[200:] * np.log(p) + (1 - y[200:]) * np.log(1 - p))
        for p in (booster.predict(x[200:], num_iteration=i) for i in range(1, 81))
    ]
    assert best_round(booster, x[200:], y[200:], "binary", patience=80) == int(np.argmin(losses)) + 1


def test_tune_runs_trials_on_the_workers(make_project: ProjectFactory, scheduler: str, tmp_path: Path) -> None:
    from keel.application.tune import tune
    from keel.config import load_config

    model = {"estimator": "lightgbm", "params": {"n_estimators": 20, "num_leaves": 7}}
    config = make_project(synthetic("binary"), "dask-tune", split={"valid_size": 0.25, "seed": 1}, model=model)
    result = tune(load_config([config]), trials=4, engine="dask", scheduler=scheduler, output=tmp_path / "t.yaml")

    assert sum(result.trials.values()) == 4
    assert (tmp_path / "t.yaml").is_file()
