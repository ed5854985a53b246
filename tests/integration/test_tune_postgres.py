"""Several processes working on one Optuna study in a real PostgreSQL server, as the README's machines would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import ProjectFactory, synthetic
from tests.postgres import running_postgres, server_binaries

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

_SMALL = {"estimator": "lightgbm", "params": {"n_estimators": 30, "num_leaves": 7, "n_jobs": 1}}


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    if server_binaries() is None:
        if os.environ.get("CI"):
            pytest.fail("CI needs PostgreSQL's server binaries for the shared-storage tests (apt install postgresql)")
        pytest.skip("PostgreSQL's server binaries are not installed")
    with running_postgres() as url:
        yield url


def test_two_processes_share_one_study_without_proposing_the_same_trials(
    postgres_url: str, make_project: ProjectFactory, tmp_path: Path
) -> None:
    import optuna

    config = make_project(
        synthetic("binary", rows=600),
        "shared-study",
        split={"test_size": 0.25, "valid_size": 0.25, "seed": 1},
        model=_SMALL,
    )
    env = {**os.environ, "KEEL_TUNE_STORAGE": postgres_url}
    commands = [
        [sys.executable, "-m", "keel", "tune", str(config), "--trials", "4", "--study", "shared",
         "--output", str(tmp_path / f"tuned-{i}.yaml")]
        for i in range(2)
    ]  # fmt: skip
    processes = [subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for c in commands]
    outputs = [process.communicate(timeout=500)[0].decode() for process in processes]
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output
        assert "this process's own" in output  # a named storage: each process samples with its own seed
    study = optuna.load_study(study_name="shared", storage=postgres_url)
    finished = [t for t in study.trials if t.state.is_finished()]
    assert len(finished) == 8
    proposals = [tuple(sorted(t.params.items())) for t in finished]
    assert len(set(proposals)) == len(proposals), "two processes proposed the same parameters"
    # Both wrote a config for `keel train` holding the study's best parameters.
    import yaml

    for i in range(2):
        written = yaml.safe_load((tmp_path / f"tuned-{i}.yaml").read_text())
        assert set(written["model"]["params"]) >= set(study.best_params)


def test_an_unreachable_or_driverless_storage_is_a_clear_error(make_project: ProjectFactory) -> None:
    import socket

    from keel.application.tune import tune
    from keel.config import load_config
    from keel.errors import ConfigError, KeelError

    config = make_project(
        synthetic("binary", rows=200), "nowhere", split={"test_size": 0.25, "valid_size": 0.25, "seed": 1}, model=_SMALL
    )
    loaded = load_config([config])
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(KeelError, match=r"postgresql://keel:\*\*\*@127\.0\.0\.1:\d+/optuna: cannot open it") as caught:
        tune(loaded, trials=1, storage=f"postgresql://keel:secret@127.0.0.1:{port}/optuna")
    assert "secret" not in str(caught.value)
    with pytest.raises(ConfigError, match="the database driver for 'mysql' is not installed"):
        tune(loaded, trials=1, storage="mysql://keel@127.0.0.1/optuna")
