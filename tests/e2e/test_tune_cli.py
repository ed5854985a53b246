"""`keel tune` for a few trials, then `keel train` with the config it wrote, as a user runs them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.e2e.test_cli import keel

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_tune_then_train_the_written_config(keel_command: list[str], workspace: Path, tmp_path: Path) -> None:
    small = ["model.params.n_estimators=40", "model.params.n_jobs=1", "model.early_stopping_rounds=10"]
    tuned = tmp_path / "tuned.yaml"
    done = keel(
        keel_command, "tune", *small, "--trials", "3", "--study", "e2e", "--output", str(tuned), "--json", timeout=500
    )
    summary = json.loads(done.stdout)
    assert summary["study"] == "e2e"
    assert summary["trials"] == {"COMPLETE": 3}
    assert summary["config"] == str(tuned)
    assert (workspace / "optuna.db").is_file()
    assert "keel train" in tuned.read_text().splitlines()[1]

    done = subprocess.run(
        [*keel_command, "train", str(tuned), "--json"], capture_output=True, text=True, timeout=500, check=False
    )
    assert done.returncode == 0, done.stderr
    trained = json.loads(done.stdout)
    assert trained["version"] == 1
    assert trained["champion"]
    assert trained["metrics"]["roc_auc"] > 0.85

    shown = subprocess.run(
        [*keel_command, "models", "show", "adult-income:1"], capture_output=True, text=True, timeout=120, check=True
    )
    manifest = json.loads(shown.stdout)["manifest"]
    assert manifest["config_sources"] == [str(tuned)]
    stored = Path(json.loads(shown.stdout)["source"].removeprefix("file://")) / "config.yaml"
    params = yaml.safe_load(stored.read_text())["model"]["params"]
    assert {name: params[name] for name in summary["best_params"]} == summary["best_params"]


def test_tune_refuses_the_bike_config_with_its_leaky_columns_put_back(
    keel_command: list[str], workspace: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEL_DATA_DIR", str(shared_data))
    repo = Path(__file__).resolve().parents[2]
    done = keel(
        keel_command, "tune", "configs/bikes.yaml", "data.ignore=[]", "split.valid_size=0.1", "--trials", "2",
        cwd=repo, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "target leakage" in done.stderr
    assert "data.ignore: [casual, registered]" in done.stderr
    assert "Running" not in done.stderr
