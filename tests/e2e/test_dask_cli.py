"""`keel predict --engine dask` as a user runs it: a LocalCluster of 2 workers on loopback, started and stopped."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_predict_on_dask_from_the_command_line(
    keel_command: list[str], adult_workspace: Path, adult_rows: pd.DataFrame, tmp_path: Path
) -> None:
    rows = adult_rows.head(3_000).reset_index(drop=True)
    rows.insert(0, "row_id", range(len(rows)))
    (tmp_path / "in").mkdir()
    rows.iloc[:1_500].to_parquet(tmp_path / "in" / "a.parquet", index=False)
    rows.iloc[1_500:].to_parquet(tmp_path / "in" / "b.parquet", index=False)
    common = ["--workspace", str(adult_workspace), "--json"]
    glob = str(tmp_path / "in" / "*.parquet")
    done = subprocess.run(
        [*keel_command, "predict", "-i", glob, "-o", str(tmp_path / "out"), "--engine", "dask", "--workers=2", *common],
        capture_output=True,
        text=True,
        timeout=500,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["rows"], result["predicted"], result["invalid"]) == (3_000, 3_000, 0)
    assert result["errors"] is None
    scored = pd.read_parquet(tmp_path / "out")
    assert scored["row_id"].tolist() == list(range(3_000))
    assert {"prediction", "probability_>50K", "income"} <= set(scored.columns)

    wrong = subprocess.run(
        [*keel_command, "predict", "-i", glob, "-o", str(tmp_path / "o2"), "--scheduler", "tcp://127.0.0.1:1", *common],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert wrong.returncode != 0
    assert "--engine dask" in wrong.stderr
