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
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_SHARED_ACROSS_MODULES = {"trained": "example-projects"}
"""Session fixtures that several modules read and that are too slow to build once per xdist worker: the tests
that use one run in one worker (a group), so it is built once."""


def _share_the_cores() -> None:
    """Under pytest-xdist, each worker's threads (OpenMP: LightGBM, scikit-learn; BLAS) get an equal share of cores.

    Without a limit every worker's OpenMP pool takes every core, and OpenMP threads spinning for a core another
    worker holds make fits many times slower. Set in the environment, the limit also holds in the keel, server and
    Dask worker processes the tests start; a limit the developer set is kept.
    """
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers <= 1:
        return
    threads = max(1, (os.cpu_count() or 1) // workers)
    for name in _THREAD_VARIABLES:
        os.environ.setdefault(name, str(threads))
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=int(os.environ["OMP_NUM_THREADS"]))  # libraries some plugin may have loaded already


_share_the_cores()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Group the tests that share a module- or cross-module fixture so pytest-xdist runs them in one worker.

    With ``--dist loadgroup`` each group runs in one worker; the other tests are dealt one by one to whichever
    worker is free. A module whose tests share a module fixture (a trained workspace, a server) keeps sharing it.
    """
    for item in items:
        if item.get_closest_marker("xdist_group") is not None or not isinstance(item, pytest.Function):
            continue
        shared = [_SHARED_ACROSS_MODULES[name] for name in item.fixturenames if name in _SHARED_ACROSS_MODULES]
        definitions = item._fixtureinfo.name2fixturedefs.values()
        if shared:
            item.add_marker(pytest.mark.xdist_group(shared[0]))
        elif any(definition.scope in ("module", "package", "class") for d in definitions for definition in d):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))


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
    """A workspace holding the packaged Adult model, trained once per run (version 1, champion).

    Under pytest-xdist the first worker that needs it trains it into a folder all workers share (in the parent of
    the workers' base temporary folders, named after the run) while holding a lock; the others wait for the lock and
    copy it: training takes a core for a minute or two, a copy a fraction of a second. Tests must not change it;
    copy it (``copy_workspace``) to modify the registry.
    """
    from keel.io.files import locked
    from tests.workspaces import copy_workspace_to

    folder = tmp_path_factory.mktemp("adult") / "workspace"
    if "PYTEST_XDIST_WORKER" not in os.environ:  # one process: the base folder's parent outlives the run
        _train_adult(folder)
        return folder
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID", "")  # the parent is kept across runs under --basetemp
    shared = tmp_path_factory.getbasetemp().parent / f"adult-model-{run}"
    with locked(shared.with_suffix(".lock")):
        if not (shared / "trained").exists():
            _train_adult(shared / "workspace")
            (shared / "trained").touch()
    return copy_workspace_to(shared / "workspace", folder)


def _train_adult(folder: Path) -> None:
    """Train the packaged Adult config into ``folder``, whatever the test's environment says."""
    from keel.application.train import train
    from keel.config import load_config

    saved = {name: os.environ.pop(name, None) for name in _SCRUBBED}
    try:
        train(load_config(overrides=[f"registry.workspace={folder}"]))
    finally:
        for name, value in saved.items():
            if value is not None:
                os.environ[name] = value


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
