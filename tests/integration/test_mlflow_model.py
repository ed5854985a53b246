"""Every keel version is an MLflow model: MLflow's loader opens it through keel's pickle-free, hash-checking one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from keel.application.models import export_version, load_version
from keel.application.predict import predict_file
from keel.errors import IntegrityError
from keel.io import artifacts
from keel.io.registry import Registry
from tests.integration.conftest import ProjectFactory
from tests.integration.test_registry import model_dir

URI = "models:/adult-income@champion"


def _use_store(monkeypatch: pytest.MonkeyPatch, workspace: Path) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{workspace / 'mlflow.db'}")


def keel_predictions(workspace: Path, rows: pd.DataFrame, tmp_path: Path) -> pd.DataFrame:
    """What `keel predict` writes for ``rows`` with the champion (its prediction columns)."""
    source, output = tmp_path / "rows.parquet", tmp_path / "scored.parquet"
    rows.to_parquet(source, index=False)
    handle = load_version(Registry.open(workspace), "adult-income@champion")
    predict_file(handle, source, output)
    scored = pd.read_parquet(output)
    return scored[[c for c in scored.columns if c == "prediction" or c.startswith("probability_")]]


@pytest.fixture
def sample(adult_rows: pd.DataFrame) -> pd.DataFrame:
    """Real rows as a user's file holds them, missing values included, with the label and other extra columns."""
    rows = adult_rows.sample(n=400, random_state=3).reset_index(drop=True)
    assert rows.isna().any().any()
    return rows


def test_the_mlmodel_names_keels_loader_and_nothing_pickled(adult_workspace: Path) -> None:
    folder = model_dir(adult_workspace)
    mlmodel = yaml.safe_load((folder / "MLmodel").read_text(encoding="utf-8"))
    flavor = mlmodel["flavors"]["python_function"]
    assert flavor["loader_module"] == "keel.mlflow_model"
    assert list(mlmodel["flavors"]) == ["python_function"]
    assert "python_model" not in flavor
    assert "cloudpickle_version" not in flavor
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    # The MLmodel and its companions are hashed like every other file.
    assert {"MLmodel", "input_example.json", "requirements.txt", "python_env.yaml"} <= set(manifest["files"])
    for path in folder.rglob("*"):
        assert path.suffix not in (".pkl", ".pickle", ".joblib", ".cloudpickle"), path
        if path.is_file():
            assert not path.read_bytes().startswith(b"\x80"), f"{path} looks like a pickle"


def test_mlflow_loads_the_champion_and_predicts_what_keel_predict_writes(
    adult_workspace: Path, sample: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    _use_store(monkeypatch, adult_workspace)
    model = mlflow.pyfunc.load_model(URI)
    assert model.loader_module == "keel.mlflow_model"
    predicted = model.predict(sample)  # the label and any other column are ignored, as the signature says
    expected = keel_predictions(adult_workspace, sample, tmp_path)
    assert list(predicted.columns) == ["prediction", "probability_<=50K", "probability_>50K"]
    pd.testing.assert_frame_equal(predicted.reset_index(drop=True), expected, check_dtype=False)
    assert set(predicted["prediction"]) == {"<=50K", ">50K"}


def test_the_signature_example_and_requirements_come_from_training(
    adult_workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    from mlflow.models import Model

    _use_store(monkeypatch, adult_workspace)
    folder = model_dir(adult_workspace)
    schema = load_version(Registry.open(adult_workspace), URI.removeprefix("models:/")).loaded.schema
    inputs = {spec.name: spec for spec in Model.load(str(folder)).get_input_schema().inputs}
    assert list(inputs) == schema.feature_names
    assert inputs["age"].type.name == "long"
    assert inputs["education"].type.name == "string"
    # Adult's workclass, occupation and native_country had missing values in training: they may be left out.
    optional = {name for name, spec in inputs.items() if not spec.required}
    assert (
        optional
        == {c.name for c in schema.features if c.missing_rate > 0}
        == {
            "workclass",
            "occupation",
            "native_country",
        }
    )
    example = json.loads((folder / "input_example.json").read_text(encoding="utf-8"))
    row = dict(zip(example["columns"], example["data"][0], strict=True))
    assert row == {name: schema.example[name] for name in schema.feature_names}  # a real training row
    requirements = (folder / "requirements.txt").read_text(encoding="utf-8").split()
    from importlib.metadata import version

    assert f"keel=={version('keel')}" in requirements
    model = mlflow.pyfunc.load_model(URI)
    # The stored example scores, and a request without the optional columns is scored as missing values.
    frame = pd.DataFrame([row])
    full = model.predict(frame)
    partial = model.predict(frame.drop(columns=sorted(optional)))
    assert len(full) == len(partial) == 1
    expected = model.predict(frame.assign(workclass=None, occupation=None, native_country=None))
    pd.testing.assert_frame_equal(partial, expected)


def test_a_wrongly_typed_column_gets_mlflows_error(adult_workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow
    from mlflow.exceptions import MlflowException

    _use_store(monkeypatch, adult_workspace)
    model = mlflow.pyfunc.load_model(URI)
    row = load_version(Registry.open(adult_workspace), "adult-income@champion").loaded.schema.example
    with pytest.raises(MlflowException, match="age"):
        model.predict(pd.DataFrame([{**row, "age": "forty"}]))


@pytest.mark.parametrize("name", ["model.lgb.txt", "encoding.json", "schema.json", "MLmodel", "manifest.json"])
def test_a_flipped_byte_is_refused_by_mlflows_loader_naming_the_file(
    copy_workspace: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    import mlflow

    _use_store(monkeypatch, copy_workspace)
    target = model_dir(copy_workspace) / name
    data = bytearray(target.read_bytes())
    # A byte inside a value, so MLmodel stays YAML and the manifest stays JSON: keel's check must catch it.
    position = data.rfind(b"utc_time_created") + 25 if name == "MLmodel" else len(data) // 2
    if name == "manifest.json":
        position = data.find(b'"created_at"') + 20
    data[position] ^= 0x01
    target.write_bytes(bytes(data))
    with pytest.raises(IntegrityError) as error:
        mlflow.pyfunc.load_model(URI)
    assert name in str(error.value)


def test_an_exported_folder_loads_with_mlflow_and_a_changed_one_is_refused(
    copy_workspace: Path, sample: pd.DataFrame, tmp_path: Path
) -> None:
    import mlflow

    folder = export_version(Registry.open(copy_workspace), "adult-income@champion", tmp_path / "export").directory
    assert (folder / "MLmodel").is_file()
    predicted = mlflow.pyfunc.load_model(str(folder)).predict(sample)
    expected = keel_predictions(copy_workspace, sample, tmp_path)
    pd.testing.assert_frame_equal(predicted.reset_index(drop=True), expected, check_dtype=False)
    # In an export the manifest is checked against registry.json too.
    manifest = folder / "manifest.json"
    text = json.loads(manifest.read_text(encoding="utf-8"))
    artifacts.write_manifest(folder, {**{k: v for k, v in text.items() if k not in ("format", "files")}, "seed": 1})
    with pytest.raises(IntegrityError, match=r"manifest\.json"):
        mlflow.pyfunc.load_model(str(folder))


def test_a_version_registered_before_mlmodels_existed_still_loads_in_keel(
    copy_workspace: Path, adult_rows: pd.DataFrame
) -> None:
    registry = Registry.open(copy_workspace)
    old = _register_the_old_way(registry, model_dir(copy_workspace), copy_workspace / "old")
    handle = load_version(registry, f"adult-income:{old}")
    assert not (handle.loaded.directory / "MLmodel").exists()
    assert "content_sha256" not in handle.loaded.manifest
    current = load_version(registry, "adult-income:1")
    rows = adult_rows.head(50)
    from keel.application.predict import score_chunk

    assert score_chunk(handle.loaded.model, rows, label="rows")[0].equals(
        score_chunk(current.loaded.model, rows, label="rows")[0]
    )


def _register_the_old_way(registry: Registry, current: Path, folder: Path) -> int:
    """A version as keel wrote them before MLmodel: no MLflow files, a manifest without its content hash."""
    shutil.copytree(current, folder)
    for name in ("MLmodel", "input_example.json", "serving_input_example.json", "requirements.txt"):
        (folder / name).unlink()
    for name in ("python_env.yaml", "conda.yaml"):
        (folder / name).unlink()
    manifest: dict[str, Any] = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    del manifest["content_sha256"]
    manifest["files"] = {name: digest for name, digest in manifest["files"].items() if (folder / name).is_file()}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    manifest_sha = artifacts.sha256_file(folder / "manifest.json")
    with registry.run("adult-income", run_name="old") as run_id:
        source = registry.log_model_directory(run_id, folder)
        version = registry.register("adult-income", source, run_id)
        registry.mark_complete("adult-income", version, manifest_sha, {})
    return version


def test_the_mlflow_ui_tells_the_versions_story(adult_workspace: Path) -> None:
    registry = Registry.open(adult_workspace)
    handle = load_version(registry, "adult-income@champion")
    info, metrics = handle.info, handle.loaded.metrics["test"]
    assert info.description.startswith("adult-income: binary model of `income` (lightgbm). Test roc_auc ")
    assert f"against the naive baseline's {metrics['baseline']['roc_auc']:.4f}" in info.description
    assert info.description.endswith("\n\nIncome above $50K from the 1994 US census (UCI Adult)")
    assert info.tags["keel.promoted"] == "true"
    assert info.tags["keel.promotion"] == "first version: no champion yet"
    assert len(info.tags["keel.data_fingerprint"]) == 64
    assert info.tags["keel.git_commit"] == str(handle.loaded.manifest["git_commit"] or "unknown")
    run = registry.client.get_run(info.run_id)
    # The run's metrics carry the names of keel's JSON: metrics.<name> and baseline.<name>.
    assert set(run.data.metrics) == set(metrics["metrics"]) | {f"baseline.{k}" for k in metrics["baseline"]}
    assert run.data.metrics["roc_auc"] == pytest.approx(metrics["metrics"]["roc_auc"])
    datasets = {d.tags[0].value: d.dataset for d in run.inputs.dataset_inputs}
    assert set(datasets) == {"training", "testing"}
    fingerprint = handle.loaded.manifest["data_fingerprint"]
    rows = handle.loaded.metrics["rows"]
    assert rows["test"] == 16281
    for context, file_name, part in (("training", "adult.data.gz", "train"), ("testing", "adult.test.gz", "test")):
        dataset = datasets[context]
        assert json.loads(dataset.source)["uri"].endswith(file_name)
        profile = json.loads(dataset.profile)
        assert profile["sha256"] == {file_name: fingerprint[file_name]}
        assert profile["num_rows"] == rows[part]


def test_a_users_table_scores_the_same_through_mlflow(
    make_project: ProjectFactory, module_workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Codes, yes/no flags, dates and long texts as a CSV holds them, with missing values: read back by pandas."""
    import mlflow
    import numpy as np

    from keel.application.train import train
    from keel.config import load_config

    rng = np.random.default_rng(4)
    rows = 800
    words = np.array(["pump", "valve", "leak", "warm", "cold", "noise", "normal", "alarm"])
    frame = pd.DataFrame(
        {
            "row_id": np.arange(rows),
            "temp": np.round(rng.normal(20, 5, rows), 2),
            "count": rng.integers(0, 50, rows),
            "plant": rng.choice([1, 2, 3], rows),
            "active": rng.choice(["yes", "no"], rows),
            "seen": pd.date_range("2024-01-01", periods=rows, freq="h").astype(str),
            "note": [" ".join(rng.choice(words, 40)) for _ in range(rows)],
        }
    )
    score = frame["temp"] * 0.2 + (frame["plant"] == 2) * 2 + (frame["active"] == "yes") + rng.normal(0, 1, rows)
    frame["label"] = np.where(score > score.median(), "hot", "cold")
    frame.loc[rng.choice(rows, 60, replace=False), "temp"] = np.nan
    config = make_project(
        frame,
        "plant",
        data={"types": {"plant": "categorical", "active": "boolean", "seen": "datetime", "note": "text"}},
    )
    train(load_config([config]))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{module_workspace / 'mlflow.db'}")
    new = pd.read_csv(tmp_path / "plant.csv").drop(columns="label").head(150)  # the strings pandas reads
    model = mlflow.pyfunc.load_model("models:/plant@champion")
    predicted = model.predict(new)
    source, output = tmp_path / "new.csv", tmp_path / "scored.csv"
    new.to_csv(source, index=False)
    predict_file(load_version(Registry.open(module_workspace), "plant@champion"), source, output)
    expected = pd.read_csv(output)[list(predicted.columns)]
    assert list(predicted.columns) == ["prediction", "probability_cold", "probability_hot"]
    pd.testing.assert_frame_equal(predicted, expected, check_dtype=False, atol=1e-12)
    # temp had missing values in training: it may be left out; an infinite value is refused with keel's reason.
    assert len(model.predict(new.drop(columns="temp"))) == len(new)
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException, match=r"1 row\(s\) cannot be scored \(first problem: temp: not a number\)"):
        model.predict(new.head(3).assign(temp=[1.0, np.inf, 2.0]))
