"""A new workspace's store is a copy of the empty store MLflow built once for its version, and it is the same store."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from keel.io.empty_store import seed_store
from keel.io.registry import Registry


def schema(database: Path) -> dict[str, list[str]]:
    """Each table's and index's definition, its lines sorted: MLflow's own migrations order CHECK clauses at random."""
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL").fetchall()
    return {name: sorted(line.strip().rstrip(",") for line in sql.splitlines()) for name, sql in rows}


def rows(database: Path, query: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(database) as connection:
        return connection.execute(query).fetchall()


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "own-cache"


def test_a_seeded_store_is_the_store_mlflow_builds_and_keel_registers_in_it(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)  # MLflow puts the Default experiment's artifacts under the working folder
    built = tmp_path / "by-mlflow" / "mlflow.db"
    built.parent.mkdir()
    MlflowClient(tracking_uri=f"sqlite:///{built}").search_experiments()

    seeded = tmp_path / "seeded" / "mlflow.db"
    assert seed_store(seeded, cache)
    assert schema(seeded) == schema(built)
    assert rows(seeded, "SELECT * FROM alembic_version") == rows(built, "SELECT * FROM alembic_version")
    assert rows(seeded, "SELECT * FROM experiments") == []  # MLflow adds Default itself, where it would have

    registry = Registry.open(seeded.parent)
    assert registry.model_names() == []
    experiments = rows(seeded, "SELECT experiment_id, name, artifact_location FROM experiments")
    assert experiments == rows(built, "SELECT experiment_id, name, artifact_location FROM experiments")
    assert registry.experiment_id("adult-income") == "1"


def test_the_empty_store_is_built_once_then_copied(tmp_path: Path, cache: Path) -> None:
    assert seed_store(tmp_path / "one" / "mlflow.db", cache)
    (template,) = (cache / "mlflow-stores").glob("mlflow-*.db")
    built_at = template.stat().st_mtime_ns
    assert seed_store(tmp_path / "two" / "mlflow.db", cache)
    assert template.stat().st_mtime_ns == built_at
    assert (tmp_path / "two" / "mlflow.db").read_bytes() == template.read_bytes()
    assert not [p.name for p in (tmp_path / "two").iterdir() if p.name != "mlflow.db"]  # no temporary file left


def test_a_damaged_empty_store_is_built_again_not_copied(
    tmp_path: Path, cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert seed_store(tmp_path / "one" / "mlflow.db", cache)
    (template,) = (cache / "mlflow-stores").glob("mlflow-*.db")
    damaged = bytearray(template.read_bytes())
    damaged[len(damaged) // 2] ^= 0x01
    template.write_bytes(bytes(damaged))

    with caplog.at_level(logging.WARNING, logger="keel.io.empty_store"):
        assert seed_store(tmp_path / "two" / "mlflow.db", cache)
    assert "does not match its sha256" in caplog.text
    copied = (tmp_path / "two" / "mlflow.db").read_bytes()
    assert copied != bytes(damaged)
    assert copied == template.read_bytes()  # rebuilt in place
    assert Registry.open(tmp_path / "two").model_names() == []


def test_without_a_writable_cache_mlflow_builds_the_store_itself(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder would be")
    database = tmp_path / "ws" / "mlflow.db"
    assert not seed_store(database, blocked)
    assert not database.exists()


def test_a_failure_while_building_the_empty_store_leaves_the_store_to_mlflow(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import keel.io.empty_store

    def broken(folder: Path) -> Path:
        raise RuntimeError("MLflow could not create its tables here")

    monkeypatch.setattr(keel.io.empty_store, "_build", broken)
    database = tmp_path / "ws" / "mlflow.db"
    assert not seed_store(database, cache)
    assert not database.exists()
    assert not list((cache / "mlflow-stores").glob("mlflow-*"))  # nothing half-built is kept


def test_a_new_workspace_through_the_registry_uses_the_cache_and_the_users_umask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, umask_022: None
) -> None:
    monkeypatch.setenv("KEEL_CACHE_DIR", str(tmp_path / "cache"))
    registry = Registry.open(tmp_path / "ws")
    registry.client  # noqa: B018 - a first use opens (here: creates) the store
    assert registry.model_names() == []
    assert list((tmp_path / "cache" / "mlflow-stores").glob("mlflow-*.db.sha256"))
    assert stat.S_IMODE((tmp_path / "ws" / "mlflow.db").stat().st_mode) == 0o644
    os.umask(0o077)
    Registry.open(tmp_path / "private").client  # noqa: B018
    assert stat.S_IMODE((tmp_path / "private" / "mlflow.db").stat().st_mode) == 0o600
