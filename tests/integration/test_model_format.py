"""How a version's feature pipeline is stored: a LightGBM model's compiled encoding as JSON, loaded without skops.

Versions written before ``encoding.json`` existed (a ``preprocessor.skops`` beside the booster) keep loading.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from keel.domain.model import FittedModel
from keel.domain.validation import coerce_features
from keel.errors import IntegrityError
from keel.io import artifacts
from tests.unit.test_serving_predictor import _fit, _synthetic


def _save(model: FittedModel, folder: Path, *, before_encoding_json: bool = False) -> Path:
    if before_encoding_json:
        # What save_model wrote before the encoding was stored as data: the fitted pipeline in skops.
        import skops.io as sio

        folder.mkdir(parents=True)
        model.estimator.save_model(str(folder / artifacts.BOOSTER_FILE))
        sio.dump(model.preprocessor, folder / artifacts.PREPROCESSOR_FILE)
        artifacts.write_json(folder / artifacts.SCHEMA_FILE, model.schema.model_dump(mode="json"))
    else:
        artifacts.save_model(folder, model)
    artifacts.write_manifest(
        folder,
        {
            "estimator": model.estimator_name,
            "feature_names": model.feature_names,
            "categorical_indices": model.categorical_indices,
        },
    )
    return folder


def _fresh_rows(task: str) -> object:
    fresh = _synthetic(task, rows=300, seed=4)
    fresh.loc[::7, "colour"] = "purple"  # never seen in training
    fresh.loc[::11, "colour"] = None
    fresh["size"] = fresh["size"].astype(int)  # integer-like categories arriving as integers
    return fresh


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_a_lightgbm_version_stores_its_encoding_as_json_and_scores_like_the_fitted_pipeline(
    task: str, tmp_path: Path
) -> None:
    model = _fit(_synthetic(task), "lightgbm")
    folder = _save(model, tmp_path / "model")
    assert (folder / artifacts.ENCODING_FILE).is_file()
    assert not (folder / artifacts.PREPROCESSOR_FILE).exists()
    loaded = artifacts.load_model(folder).model
    assert loaded.preprocessor is None
    rows = coerce_features(_fresh_rows(task), model.schema).frame  # type: ignore[arg-type]
    np.testing.assert_array_equal(loaded.transform(rows), model.preprocessor.transform(rows))
    if task == "regression":
        np.testing.assert_array_equal(loaded.predict_value(rows), model.predict_value(rows))
    else:
        np.testing.assert_array_equal(loaded.predict_proba(rows), model.predict_proba(rows))
    np.testing.assert_array_equal(loaded.contributions(rows), model.contributions(rows))


def test_a_version_written_with_a_skops_preprocessor_still_loads_and_scores_the_same(tmp_path: Path) -> None:
    model = _fit(_synthetic("binary"), "lightgbm")
    old = artifacts.load_model(_save(model, tmp_path / "old", before_encoding_json=True)).model
    new = artifacts.load_model(_save(model, tmp_path / "new")).model
    assert old.preprocessor is not None
    assert old.encoding is not None
    rows = coerce_features(_fresh_rows("binary"), model.schema).frame  # type: ignore[arg-type]
    np.testing.assert_array_equal(old.predict_proba(rows), new.predict_proba(rows))
    # Saving a loaded old version again (an export, say) writes the new format with the same encoding.
    again = artifacts.load_model(_save(old, tmp_path / "again")).model
    assert again.preprocessor is None
    np.testing.assert_array_equal(again.predict_proba(rows), new.predict_proba(rows))


def test_other_estimators_keep_their_pipeline_in_skops(tmp_path: Path) -> None:
    model = _fit(_synthetic("binary"), "logistic_regression")
    folder = _save(model, tmp_path / "model")
    assert (folder / artifacts.PREPROCESSOR_FILE).is_file()
    assert not (folder / artifacts.ENCODING_FILE).exists()
    rows = coerce_features(_fresh_rows("binary"), model.schema).frame  # type: ignore[arg-type]
    np.testing.assert_array_equal(artifacts.load_model(folder).model.predict_proba(rows), model.predict_proba(rows))


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("not json", "not a keel compiled encoding"),
        (
            '{"format": "keel-encoding/1", "columns": [{"name": "colour", "kind": "category", "categories": {}}]}',
            "colour",
        ),
        ('{"format": "other", "columns": []}', "keel-encoding/1"),
    ],
)
def test_a_malformed_encoding_with_matching_hashes_is_refused_naming_the_file(
    tmp_path: Path, content: str, expected: str
) -> None:
    folder = _save(_fit(_synthetic("binary"), "lightgbm"), tmp_path / "model")
    (folder / artifacts.ENCODING_FILE).write_text(content)
    manifest = json.loads((folder / artifacts.MANIFEST).read_text())
    manifest["files"][artifacts.ENCODING_FILE] = artifacts.sha256_file(folder / artifacts.ENCODING_FILE)
    # Every hash matches, the manifest's own content hash included: only the encoding's content can be refused.
    manifest[artifacts.CONTENT_KEY] = artifacts._content_sha256(manifest)
    (folder / artifacts.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(IntegrityError) as error:
        artifacts.load_model(folder)
    assert artifacts.ENCODING_FILE in str(error.value)
    assert expected in str(error.value)


def test_loading_and_scoring_the_adult_champion_imports_no_skops_nor_keels_sklearn_pipeline(
    adult_workspace: Path,
) -> None:
    script = f"""
import sys
from keel.application.models import load_version
from keel.io.registry import Registry
model = load_version(Registry.open({str(adult_workspace)!r}), "adult-income@champion").loaded.model
import pandas as pd
from keel.domain.validation import coerce_features
rows = pd.DataFrame([model.schema.example])
print(model.predict_proba(coerce_features(rows, model.schema).frame).shape)
print(sorted(m for m in sys.modules if m.startswith(("skops", "sklearn.compose", "sklearn.feature_extraction"))))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    shape, modules = result.stdout.strip().splitlines()
    assert shape == "(1, 2)"
    assert modules == "[]"


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.write_text, (self.marker, "pwned"))


def test_a_pickle_payload_as_an_older_versions_preprocessor_never_runs(tmp_path: Path) -> None:
    import pickle

    marker = tmp_path / "marker"
    folder = _save(_fit(_synthetic("binary"), "lightgbm"), tmp_path / "old", before_encoding_json=True)
    (folder / artifacts.PREPROCESSOR_FILE).write_bytes(pickle.dumps(_Payload(marker)))
    artifacts.write_manifest(folder, {"estimator": "lightgbm"})  # hashes that match: a compromised store
    with pytest.raises(IntegrityError, match=artifacts.PREPROCESSOR_FILE):
        artifacts.load_model(folder)
    assert not marker.exists()


def _text_rows(rows: int = 300, seed: int = 0) -> object:
    import pandas as pd

    rng = np.random.default_rng(seed)
    common = ["model", "data", "the", "résumé", "training", "a", "of", "naïve", "pipeline", "with"]
    words = {"yes": ["excellent", "great", "superb"], "no": ["awful", "poor", "broken"]}
    labels = rng.choice(["yes", "no"], size=rows)
    title = [" ".join(rng.choice(common + words[y], size=6)) for y in labels]
    body = [" ".join(rng.choice(common + words[y][:1], size=12)) for y in labels]
    return pd.DataFrame({"title": title, "body": body, "size": rng.choice(["s", "m"], size=rows), "label": labels})


def _fit_text(frame: object, join: bool, estimator: str = "logistic_regression") -> FittedModel:
    from keel.config import DataConfig, FeaturesConfig, ModelConfig
    from keel.domain.schema import infer_schema
    from keel.domain.training import encode_target, fit_model

    data = DataConfig.model_validate(
        {"train": {"path": "t.csv"}, "target": "label", "types": {"title": "text", "body": "text"}}
    )
    schema = infer_schema(frame, data)  # type: ignore[arg-type]
    features = FeaturesConfig.model_validate({"text": {"join": join, "max_features": 500}})
    model, _ = fit_model(
        schema,
        features,
        ModelConfig.model_validate(
            {"estimator": estimator, "params": {"n_estimators": 20, "verbose": -1} if estimator == "lightgbm" else {}}
        ),
        seed=0,
        train_x=coerce_features(frame, schema).frame,  # type: ignore[arg-type]
        train_y=encode_target(frame["label"], schema),  # type: ignore[index]
    )
    return model


@pytest.mark.parametrize("join", [True, False])
def test_a_text_pipelines_vocabularies_are_stored_as_arrays_outside_skops_and_score_the_same(
    tmp_path: Path, join: bool
) -> None:
    import zipfile

    model = _fit_text(_text_rows(), join)
    folder = _save(model, tmp_path / "model")
    assert (folder / "vocabularies.npz").is_file()
    with zipfile.ZipFile(folder / artifacts.PREPROCESSOR_FILE) as archive:
        inside = b"".join(archive.read(name) for name in archive.namelist())
    assert b"excellent" not in inside  # the terms are not in the skops archive
    assert b'"vocabulary_"' not in inside
    loaded = artifacts.load_model(folder).model
    rows = coerce_features(_text_rows(rows=50, seed=3), model.schema).frame  # type: ignore[arg-type]
    np.testing.assert_array_equal(loaded.predict_proba(rows), model.predict_proba(rows))
    from keel.io.vocabularies import text_vectorizers

    fitted, restored = text_vectorizers(model.preprocessor), text_vectorizers(loaded.preprocessor)
    assert len(fitted) == len(restored) == (2 if join else 4)  # word and character n-grams per vocabulary
    for before, after in zip(fitted, restored, strict=True):
        assert after.vocabulary_ == before.vocabulary_
        np.testing.assert_array_equal(after.idf_, before.idf_)
    # Saving left the fitted model whole.
    np.testing.assert_array_equal(model.predict_proba(rows), loaded.predict_proba(rows))


def test_a_lightgbm_text_version_keeps_its_pipeline_in_skops_without_the_vocabulary_and_explains_the_same(
    tmp_path: Path,
) -> None:
    from keel.application.insights import contribution_matrix

    frame = _text_rows()
    frame.loc[::17, "size"] = None  # type: ignore[index]
    model = _fit_text(frame, join=False, estimator="lightgbm")
    folder = _save(model, tmp_path / "model")
    names = {p.name for p in folder.iterdir()}
    assert {artifacts.BOOSTER_FILE, artifacts.PREPROCESSOR_FILE, "vocabularies.npz"} <= names
    assert artifacts.ENCODING_FILE not in names  # text is not compiled
    loaded = artifacts.load_model(folder).model
    rows = coerce_features(_text_rows(rows=50, seed=5), model.schema).frame  # type: ignore[arg-type]
    np.testing.assert_array_equal(loaded.predict_proba(rows), model.predict_proba(rows))
    np.testing.assert_array_equal(contribution_matrix(loaded, rows), contribution_matrix(model, rows))


def test_a_text_version_written_with_its_vocabulary_inside_skops_still_loads(tmp_path: Path) -> None:
    import skops.io as sio

    model = _fit_text(_text_rows(), join=True)
    folder = tmp_path / "old"
    folder.mkdir()
    sio.dump(model.estimator, folder / artifacts.ESTIMATOR_FILE)
    sio.dump(model.preprocessor, folder / artifacts.PREPROCESSOR_FILE)  # as versions were written before
    artifacts.write_json(folder / artifacts.SCHEMA_FILE, model.schema.model_dump(mode="json"))
    artifacts.write_manifest(folder, {"estimator": "logistic_regression", "feature_names": model.feature_names})
    rows = coerce_features(_text_rows(rows=50, seed=3), model.schema).frame  # type: ignore[arg-type]
    np.testing.assert_array_equal(artifacts.load_model(folder).model.predict_proba(rows), model.predict_proba(rows))


@pytest.mark.parametrize("damage", ["garbage", "fewer idf weights"])
def test_a_damaged_vocabulary_archive_with_matching_hashes_is_refused_naming_it(tmp_path: Path, damage: str) -> None:
    folder = _save(_fit_text(_text_rows(), join=True), tmp_path / "model")
    path = folder / "vocabularies.npz"
    if damage == "garbage":
        path.write_bytes(b"PK\x03\x04 not really a zip")
    else:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {key: stored[key] for key in stored.files}
        arrays["idf_0"] = arrays["idf_0"][:-1]
        np.savez_compressed(path, **arrays)
    artifacts.write_manifest(folder, {"estimator": "logistic_regression"})
    with pytest.raises(IntegrityError, match=r"vocabularies\.npz"):
        artifacts.load_model(folder)
