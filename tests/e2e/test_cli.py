"""The CLI as a user runs it: real subprocesses, real files, the embedded registry."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest


def keel(
    command: list[str], *args: str, cwd: Path | None = None, check: bool = True, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*command, *args], capture_output=True, text=True, cwd=cwd, env=os.environ.copy(), timeout=timeout
    )
    if check and result.returncode != 0:
        raise AssertionError(f"keel {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.mark.slow
def test_the_main_job_again_registers_a_second_version_and_keeps_the_champion(
    keel_command: list[str], copy_workspace: Path
) -> None:
    # Version 1 is the session's Adult model: `keel train`'s packaged config, trained once for the whole run.
    [stored] = list(copy_workspace.rglob("metrics.json"))
    first = json.loads(stored.read_text())["test"]
    second = json.loads(keel(keel_command, "train", "--json").stdout)
    assert second["version"] == 2
    assert second["champion"] is False
    assert second["metrics"] == first["metrics"], "the same data, config and seed give the same model"
    assert second["metrics"]["accuracy"] >= 0.87
    assert second["metrics"]["roc_auc"] >= 0.925
    assert second["baseline"]["accuracy"] == pytest.approx(0.7638, abs=1e-3)  # majority class on adult.test
    assert second["test_rows"] == 16281
    assert set(second["slices"]) == {"sex", "race"}
    assert "margin" in second["promotion"]["reason"]
    # The plots are drawn by processes of the command's own (on two cores or more): the new version has every one.
    folders = sorted({path.parent for path in copy_workspace.rglob("plots/*.png")}, key=lambda p: p.stat().st_mtime)
    assert len(folders) == 2
    drawn = {path.name: path.read_bytes() for path in folders[1].glob("*.png")}
    assert set(drawn) == {
        "confusion_matrix.png", "roc.png", "calibration.png", "feature_importance.png", "contributions.png"
    }  # fmt: skip
    assert all(image.startswith(b"\x89PNG") and len(image) > 5_000 for image in drawn.values())
    report = (folders[1].parent / "report.html").read_text()
    assert all(base64.b64encode(image).decode() in report for image in drawn.values())  # embedded, once drawn
    listed = json.loads(keel(keel_command, "models", "list", "--json").stdout)
    assert [(v["version"], v["aliases"], v["status"]) for v in listed] == [
        (2, [], "complete"),
        (1, ["champion"], "complete"),
    ]


@pytest.mark.slow
def test_train_shows_progress_metrics_and_the_decision(
    keel_command: list[str], workspace: Path, tmp_path: Path
) -> None:
    result = keel(
        keel_command,
        "train",
        "configs/adult.yaml",
        "model.params.n_estimators=60",
        "split.seed=7",
        cwd=Path(__file__).resolve().parents[2],
    )
    assert "Training lightgbm" in result.stderr
    assert "workclass: feature, categorical" in result.stderr
    assert "roc_auc" in result.stdout
    assert "baseline" in result.stdout
    assert "Registered adult-income version 1" in result.stdout
    assert "champion" in result.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["model.params.n_estimators=ten"], "model.params.n_estimators"),
        (["splitt.seed=3"], "did you mean 'split'"),
        (["no-such-file.yaml"], "config file not found"),
        (["model.estimator=xgboost"], "model.estimator"),
    ],
)
def test_config_mistakes_exit_2_with_one_clear_message(
    keel_command: list[str], workspace: Path, args: list[str], expected: str
) -> None:
    result = keel(keel_command, "train", *args, check=False)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert not (workspace / "mlflow.db").exists()


def test_help_lists_the_commands(keel_command: list[str]) -> None:
    result = keel(keel_command, "--help")
    for command in ("train", "predict", "evaluate", "models", "config"):
        assert command in result.stdout


def test_config_show_and_schema(keel_command: list[str]) -> None:
    shown = keel(keel_command, "config", "show", "split.seed=9").stdout
    assert "seed: 9" in shown
    assert "name: adult-income" in shown
    schema = json.loads(keel(keel_command, "config", "schema").stdout)
    assert "project" in schema["properties"]


def test_config_show_refuses_a_misspelled_parameter_and_train_refuses_it_before_loading(
    keel_command: list[str], workspace: Path
) -> None:
    shown = keel(keel_command, "config", "show", "model.params.learning_rat=0.1", check=False)
    assert shown.returncode == 2
    assert "did you mean 'learning_rate'" in shown.stderr
    trained = keel(keel_command, "train", "model.params.learning_rat=0.1", check=False)
    assert trained.returncode == 2
    assert "did you mean 'learning_rate'" in trained.stderr
    assert "Loading data" not in trained.stderr


def test_predict_evaluate_and_models_commands(
    keel_command: list[str], copy_workspace: Path, adult_rows: pd.DataFrame, tmp_path: Path
) -> None:
    source = tmp_path / "people.csv"
    rows = adult_rows.head(500).copy()
    rows["age"] = rows["age"].astype(object)
    rows.loc[3, "age"] = "unknown"
    rows.to_csv(source, index=False)
    output = tmp_path / "scored.csv"
    result = keel(
        keel_command, "predict", "--model", "adult-income@champion", "--input", str(source), "--output", str(output)
    )
    assert "scored 499 of 500 rows" in result.stdout
    assert "invalid row(s)" in result.stdout
    assert len(pd.read_csv(output)) == 499
    assert pd.read_csv(tmp_path / "scored.errors.csv")["error"].tolist() == ["age: not a number"]

    evaluated = json.loads(keel(keel_command, "evaluate", "-m", "adult-income:1", "-d", str(source), "--json").stdout)
    assert evaluated["dropped"] == {"unreadable values": 1}
    assert evaluated["rows"] == 499
    assert evaluated["metrics"]["accuracy"] > 0.8

    shown = json.loads(keel(keel_command, "models", "show", "adult-income@champion").stdout)
    assert shown["verified"] is True
    assert shown["manifest"]["estimator"] == "lightgbm"

    missing = keel(keel_command, "models", "show", "adult-income:9", check=False)
    assert missing.returncode == 2
    assert "no version 9" in missing.stderr

    promoted = keel(keel_command, "models", "promote", "adult-income", "1", "--reason", "audit")
    assert "champion" in promoted.stdout


def test_a_tampered_model_is_refused_by_predict(
    keel_command: list[str], copy_workspace: Path, adult_rows: pd.DataFrame, tmp_path: Path
) -> None:
    [booster] = list(copy_workspace.rglob("model.lgb.txt"))
    booster.write_text(booster.read_text().replace("learning_rate", "learning_rate "))
    source = tmp_path / "in.csv"
    adult_rows.head(5).to_csv(source, index=False)
    result = keel(keel_command, "predict", "-i", str(source), "-o", str(tmp_path / "out.csv"), check=False)
    assert result.returncode == 3
    assert "model.lgb.txt" in result.stderr
    assert not (tmp_path / "out.csv").exists()
