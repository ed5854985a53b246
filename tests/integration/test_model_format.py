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
