"""The first hour with keel: files readable by others, whole values when piped, a sensible default model."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from keel.cli import app
from keel.io.registry import Registry
from keel.io.tables import AtomicTableWriter, write_text_atomically


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_written_files_follow_the_umask(tmp_path: Path, umask_022: None) -> None:
    write_text_atomically(tmp_path / "page.html", "<p>hi</p>")
    with AtomicTableWriter(tmp_path / "rows.csv") as writer:
        writer.write(pd.DataFrame({"a": [1]}))
    assert _mode(tmp_path / "page.html") == 0o644
    assert _mode(tmp_path / "rows.csv") == 0o644
    os.umask(0o077)
    write_text_atomically(tmp_path / "private.html", "secret")
    assert _mode(tmp_path / "private.html") == 0o600


def test_predictions_and_drift_pages_are_readable_by_others(
    copy_workspace: Path, adult_rows: pd.DataFrame, tmp_path: Path, umask_022: None
) -> None:
    adult_rows.head(200).to_csv(tmp_path / "rows.csv", index=False)
    runner = CliRunner()
    predicted = runner.invoke(app, ["predict", "-i", str(tmp_path / "rows.csv"), "-o", str(tmp_path / "out.csv")])
    assert predicted.exit_code == 0, predicted.output
    monitored = runner.invoke(
        app, ["monitor", "--data", str(tmp_path / "rows.csv"), "--output", str(tmp_path / "drift.html")]
    )
    assert monitored.exit_code in (0, 1), monitored.output
    for name in ("out.csv", "drift.html", "drift.json"):
        assert _mode(tmp_path / name) == 0o644, name


def test_without_a_model_the_only_registered_one_is_used(
    copy_workspace: Path, adult_rows: pd.DataFrame, tmp_path: Path
) -> None:
    adult_rows.head(20).to_csv(tmp_path / "rows.csv", index=False)
    result = CliRunner().invoke(
        app, ["predict", "-i", str(tmp_path / "rows.csv"), "-o", str(tmp_path / "o.csv"), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["model"] == "adult-income:1"


def test_with_several_models_the_error_lists_them(
    copy_workspace: Path, adult_rows: pd.DataFrame, tmp_path: Path
) -> None:
    Registry.open(copy_workspace).client.create_registered_model("churn-scores")
    adult_rows.head(20).to_csv(tmp_path / "rows.csv", index=False)
    result = CliRunner().invoke(app, ["predict", "-i", str(tmp_path / "rows.csv"), "-o", str(tmp_path / "o.csv")])
    assert result.exit_code != 0
    assert "adult-income" in result.stderr
    assert "churn-scores" in result.stderr
    assert "--model" in result.stderr
    assert not (tmp_path / "o.csv").exists()


def test_models_list_piped_prints_whole_values(copy_workspace: Path) -> None:
    result = CliRunner().invoke(app, ["models", "list"])  # not a terminal, like `keel models list | grep`
    assert result.exit_code == 0, result.output
    assert "…" not in result.stdout
    line = next(line for line in result.stdout.splitlines() if "adult-income" in line)
    assert len(line) > 80  # wider than the 80 columns rich assumes without a terminal, yet nothing was cut
    for value in ("adult-income", "champion", "complete", "lightgbm", "roc_auc 0.9"):
        assert value in line
