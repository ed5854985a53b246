from __future__ import annotations

import json
import pickle
import sqlite3
from pathlib import Path

import pytest

from keel.application.models import describe, list_versions, load_version, promote
from keel.domain.validation import coerce_features
from keel.errors import IntegrityError, RegistryError
from keel.io import artifacts
from keel.io.registry import STATUS_TAG, Registry


def model_dir(workspace: Path, version: int = 1) -> Path:
    registry = Registry.open(workspace)
    return registry.local_directory(load_version(registry, f"adult-income:{version}").info)


def test_round_trip_loads_a_verified_model_with_its_provenance(copy_workspace: Path, adult_rows) -> None:  # type: ignore[no-untyped-def]
    handle = load_version(Registry.open(copy_workspace), "adult-income@champion")
    assert handle.info.version == 1
    assert handle.info.aliases == ["champion"]
    manifest = handle.loaded.manifest
    assert manifest["estimator"] == "lightgbm"
    assert manifest["seed"] == 42
    assert set(manifest["data_fingerprint"]) == {"adult.data.gz", "adult.test.gz"}
    assert {"lightgbm", "scikit-learn", "mlflow"} <= set(manifest["packages"])
    proba = handle.loaded.model.predict_proba(coerce_features(adult_rows, handle.loaded.schema).frame)
    assert proba.shape == (len(adult_rows), 2)
    assert handle.loaded.metrics["test"]["metrics"]["accuracy"] > 0.87


@pytest.mark.parametrize("name", ["model.lgb.txt", "encoding.json", "schema.json", "plots/roc.png"])
def test_one_flipped_byte_in_any_artifact_is_refused_naming_the_file(copy_workspace: Path, name: str) -> None:
    target = model_dir(copy_workspace) / name
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    with pytest.raises(IntegrityError) as error:
        load_version(Registry.open(copy_workspace), "adult-income@champion")
    assert name in str(error.value)
    assert "sha256" in str(error.value)


def test_a_rewritten_manifest_is_caught_by_the_registry_hash(copy_workspace: Path) -> None:
    folder = model_dir(copy_workspace)
    (folder / "schema.json").write_text((folder / "schema.json").read_text().replace("adult", "adult "))
    artifacts.write_manifest(folder, {"estimator": "lightgbm"})  # an attacker re-hashing the files
    with pytest.raises(IntegrityError, match="manifest was changed"):
        load_version(Registry.open(copy_workspace), "adult-income@champion")


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.write_text, (self.marker, "pwned"))


@pytest.mark.parametrize("name", ["encoding.json", "model.lgb.txt"])
def test_a_pickle_payload_in_place_of_a_model_file_never_runs(copy_workspace: Path, tmp_path: Path, name: str) -> None:
    marker = tmp_path / "marker"
    folder = model_dir(copy_workspace)
    (folder / name).write_bytes(pickle.dumps(_Payload(marker)))
    manifest = json.loads((folder / "manifest.json").read_text())
    # Even with hashes that match (a compromised store rewrote the manifest), loading must not unpickle anything.
    artifacts.write_manifest(folder, {k: v for k, v in manifest.items() if k not in ("format", "files")})
    assert json.loads((folder / "manifest.json").read_text())["files"][name] == artifacts.sha256_file(folder / name)
    with pytest.raises(IntegrityError):
        artifacts.load_model(folder)
    assert not marker.exists()


def test_the_trusted_type_list_is_keels_constant() -> None:
    assert isinstance(artifacts.TRUSTED_TYPES, tuple)
    assert not any("pickle" in t or t.startswith(("builtins.", "os.", "subprocess")) for t in artifacts.TRUSTED_TYPES)


def test_an_incomplete_version_is_listed_as_such_and_never_loaded(copy_workspace: Path) -> None:
    with sqlite3.connect(copy_workspace / "mlflow.db") as db:
        db.execute("UPDATE model_version_tags SET value = 'registering' WHERE key = ? AND version = 1", (STATUS_TAG,))
    registry = Registry.open(copy_workspace)
    [info] = list_versions(registry, "adult-income")
    assert describe(info)["status"].startswith("incomplete")
    with pytest.raises(RegistryError, match="incomplete"):
        load_version(registry, "adult-income:1")


def test_manual_promotion_needs_a_reason_and_records_it(copy_workspace: Path) -> None:
    registry = Registry.open(copy_workspace)
    with pytest.raises(RegistryError, match="--reason"):
        promote(registry, "adult-income", 1, "  ")
    info = promote(registry, "adult-income", 1, "re-approved after audit")
    assert info.tags["keel.promotion"] == "manual: re-approved after audit"
    with pytest.raises(RegistryError, match="no version 7"):
        promote(registry, "adult-income", 7, "typo")


def test_missing_registry_says_how_to_create_one(workspace: Path) -> None:
    with pytest.raises(RegistryError, match="run `keel train` first"):
        load_version(Registry.open(), "adult-income@champion")
