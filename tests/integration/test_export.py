"""``keel models export``: a verified version copied out of the registry into a folder that needs no registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from keel.application.models import export_version, load_version
from keel.cli import app
from keel.errors import IntegrityError, RegistryError
from keel.io import artifacts
from keel.io.exports import load_exported
from keel.io.registry import Registry


def test_export_is_loadable_without_the_registry_and_records_the_version(copy_workspace: Path, tmp_path: Path) -> None:
    registry = Registry.open(copy_workspace)
    result = export_version(registry, "adult-income@champion", tmp_path / "export")

    metadata = json.loads((result.directory / "registry.json").read_text(encoding="utf-8"))
    info = load_version(registry, "adult-income:1").info
    assert metadata["name"] == "adult-income"
    assert metadata["version"] == 1
    assert metadata["aliases"] == ["champion"]
    assert metadata["manifest_sha256"] == info.manifest_sha256
    # The plain model loader verifies every file against the manifest; load_exported also checks the manifest.
    loaded = artifacts.load_model(result.directory, manifest_sha256=metadata["manifest_sha256"])
    assert loaded.schema.target.name == "income"
    _, again = load_exported(result.directory)
    assert again == metadata
    # Everything is readable by a service running as another user.
    assert all(p.stat().st_mode & 0o004 for p in result.directory.rglob("*"))


def test_a_changed_export_is_refused_naming_the_file(copy_workspace: Path, tmp_path: Path) -> None:
    folder = export_version(Registry.open(copy_workspace), "adult-income:1", tmp_path / "export").directory
    schema = folder / "schema.json"
    schema.write_text(schema.read_text(encoding="utf-8").replace("income", "incomf", 1), encoding="utf-8")
    with pytest.raises(IntegrityError, match=r"schema\.json"):
        load_exported(folder)


def test_export_never_overwrites_a_folder_with_content(copy_workspace: Path, tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.mkdir()
    (target / "keep.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(RegistryError, match="not an empty folder"):
        export_version(Registry.open(copy_workspace), "adult-income@champion", target)
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
    assert not list(tmp_path.glob(".taken.*"))  # no half-written copy is left beside it


def test_export_of_an_unknown_version_fails_and_writes_nothing(copy_workspace: Path, tmp_path: Path) -> None:
    with pytest.raises(RegistryError):
        export_version(Registry.open(copy_workspace), "adult-income:7", tmp_path / "export")
    assert not (tmp_path / "export").exists()


def test_the_command_exports_and_prints_json(copy_workspace: Path, tmp_path: Path) -> None:
    target = tmp_path / "cli-export"
    result = CliRunner().invoke(app, ["models", "export", "adult-income@champion", "--output", str(target), "--json"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["directory"] == str(target)
    assert printed["version"] == 1
    assert (target / "manifest.json").is_file()
    again = CliRunner().invoke(app, ["models", "export", "adult-income@champion", "-o", str(target)])
    assert again.exit_code == 2
