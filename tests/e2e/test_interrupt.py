"""Ctrl-C during `keel train`'s registration, as a terminal sends it (to the whole process group)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from keel.io.registry import Registry

pytestmark = pytest.mark.slow


def test_ctrl_c_while_registering_ends_the_run_killed_and_leaves_no_version_or_process(workspace: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "keel", "train", "model.params.n_estimators=40", "~model.early_stopping_rounds"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, like a job in a terminal
    )
    assert process.stderr is not None
    for line in process.stderr:
        if "✓ Writing artifacts" in line:
            break
    # The sidecar (MLflow, in the same process group) gets the signal too; it ignores it and lets keel end the run.
    os.killpg(process.pid, signal.SIGINT)
    rest = process.stderr.read()
    assert process.wait(timeout=120) == 130, rest
    assert "Traceback" not in rest
    assert "interrupted" in rest
    with pytest.raises(ProcessLookupError):
        os.killpg(process.pid, 0)  # nothing of the job is left running
    registry = Registry.open(workspace)
    runs = registry.client.search_runs(
        [e.experiment_id for e in registry.client.search_experiments()], filter_string="tags.`keel.job` = 'train'"
    )
    assert [run.info.status for run in runs] == ["KILLED"]
    names = registry.model_names()
    versions = registry.versions(names[0]) if names else []
    assert not [info for info in versions if info.complete]
    assert all("champion" not in info.aliases for info in versions)


def test_a_refused_configuration_ends_the_early_started_sidecar_and_creates_no_store(workspace: Path) -> None:
    """`keel train` starts MLflow's sidecar before reading its configuration; a refused one leaves nothing behind."""
    process = subprocess.Popen(
        [sys.executable, "-m", "keel", "train", "model.params.n_estimatorz=40"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    _, errors = process.communicate(timeout=120)
    assert process.returncode == 2, errors
    assert "n_estimatorz" in errors
    assert "Traceback" not in errors
    with pytest.raises(ProcessLookupError):
        os.killpg(process.pid, 0)  # the sidecar ended with the command
    assert not (workspace / "mlflow.db").exists()
