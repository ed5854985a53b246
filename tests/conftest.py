"""Shared fixtures: an isolated environment per test and one trained Adult model per session."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import pandas as pd

REPO = Path(__file__).resolve().parents[1]
_SCRUBBED = ("KEEL_WORKSPACE", "MLFLOW_TRACKING_URI", "KEEL_API_KEYS", "KEEL_CACHE_DIR")


@pytest.fixture(scope="session")
def _empty_stores(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder of empty MLflow stores for the whole session (keel.io.empty_store builds it on first use)."""
    return tmp_path_factory.mktemp("mlflow-stores")


@pytest.fixture(autouse=True)
def _isolated_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory, _empty_stores: Path
) -> None:
    """No test reads or writes the developer's registry, cache or keys.

    Each test has its own cache folder (beside its ``tmp_path``, which stays the test's own), except for the empty
    MLflow store that new workspaces copy (a link to the session's folder): building it runs MLflow's migrations,
    2 s per new workspace otherwise.
    """
    for name in _SCRUBBED:
        monkeypatch.delenv(name, raising=False)
    cache = tmp_path_factory.mktemp("cache")
    (cache / "mlflow-stores").symlink_to(_empty_stores, target_is_directory=True)
    monkeypatch.setenv("KEEL_CACHE_DIR", str(cache))


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask (022) for the test, whatever the developer's, restored afterwards."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty workspace that every keel call in the test uses (through KEEL_WORKSPACE)."""
    folder = tmp_path / "workspace"
    monkeypatch.setenv("KEEL_WORKSPACE", str(folder))
    return folder


@pytest.fixture(scope="session")
def adult_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace holding the packaged Adult model, trained once per session (version 1, champion).

    Tests must not change it; copy it (``copy_workspace``) to modify the registry.
    """
    from keel.application.train import train
    from keel.config import load_config

    folder = tmp_path_factory.mktemp("adult") / "workspace"
    saved = {name: os.environ.pop(name, None) for name in _SCRUBBED}
    try:
        train(load_config(overrides=[f"registry.workspace={folder}"]))
    finally:
        for name, value in saved.items():
            if value is not None:
                os.environ[name] = value
    return folder


@pytest.fixture
def copy_workspace(adult_workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the session's Adult workspace, set as KEEL_WORKSPACE.

    The embedded store records absolute artifact paths, so the copy keeps them pointing at its own files.
    """
    from tests.workspaces import copy_workspace_to

    target = copy_workspace_to(adult_workspace, tmp_path / "workspace")
    monkeypatch.setenv("KEEL_WORKSPACE", str(target))
    return target


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real datasets folder (KEEL_DATA_DIR, as CI sets it).

    Outside CI a developer without the folder sees these tests skipped with the reason; in CI (CI=true) a missing
    folder is a failure, so CI always runs them.
    """
    value = os.environ.get("KEEL_DATA_DIR")
    folder = Path(value).resolve() if value else (REPO.parent / "shared" / "data")
    if not folder.is_dir():
        message = f"real datasets not found at {folder}; set KEEL_DATA_DIR to the shared data folder"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return folder


@pytest.fixture(scope="session")
def keel_command() -> list[str]:
    """How to run the installed CLI in a subprocess (the same interpreter as the tests)."""
    return [sys.executable, "-m", "keel"]


@pytest.fixture
def adult_rows() -> pd.DataFrame:
    """The official Adult test rows as a user's CSV would hold them (header row, labels without the full stop)."""
    from keel.config import load_config
    from keel.io.sources import resolve_source
    from keel.io.tables import read_table

    config = load_config().config
    assert config.data.test is not None
    frame = read_table(resolve_source(config.data.test).path, csv=config.data.test.csv)
    frame["income"] = frame["income"].str.rstrip(".")
    return frame
