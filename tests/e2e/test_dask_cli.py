"""`keel predict --engine dask` as a user runs it: a LocalCluster of 2 workers on loopback, started and stopped."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import pandas as pd
import pytest

from tests.e2e.test_cli import keel
from tests.processes import stop

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
    done = keel(
        keel_command, "predict", "-i", glob, "-o", str(tmp_path / "out"), "--engine", "dask", "--workers=2", *common,
        timeout=500,
    )  # fmt: skip
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


def test_train_on_dask_from_parquet_parts_from_the_command_line(
    keel_command: list[str], workspace: Path, adult_rows: pd.DataFrame, tmp_path: Path
) -> None:
    rows = adult_rows.head(8_000)
    (tmp_path / "train").mkdir()
    for index in range(4):
        rows.iloc[index * 2_000 : (index + 1) * 2_000].to_parquet(tmp_path / "train" / f"{index}.parquet", index=False)
    common = ["--json", "engine=dask", "dask_workers=2", "model.params.n_estimators=60", "split.strategy=random"]
    done = keel(keel_command, "train", *common, f"data.train.path={tmp_path / 'train' / '*.parquet'}")
    result = json.loads(done.stdout)
    assert result["version"] == 1
    assert sum(result["rows"].values()) == 8_000
    assert result["rows"]["test"] == pytest.approx(1_600, abs=150)  # split on the workers, not the official test file
    assert result["metrics"]["accuracy"] > 0.8

    bad = rows.assign(hours_per_week=rows["hours_per_week"].astype(str))
    bad.loc[[7, 12], "hours_per_week"] = "forty"
    for index in range(4):
        bad.iloc[index * 2_000 : (index + 1) * 2_000].to_parquet(tmp_path / "train" / f"{index}.parquet", index=False)
    wrong = keel(keel_command, "train", *common, f"data.train.path={tmp_path / 'train'}", check=False)
    assert wrong.returncode not in (0, 1), wrong.stderr
    assert "hours_per_week" in wrong.stderr
    assert "'forty'" in wrong.stderr
    assert "partition 1" in wrong.stderr
    assert "Traceback" not in wrong.stderr


def test_predict_and_train_on_a_cluster_started_as_the_readme_says(
    keel_command: list[str], adult_workspace: Path, workspace: Path, adult_rows: pd.DataFrame, tmp_path: Path
) -> None:
    """`dask scheduler` and `dask worker` processes (other machines in the README, loopback here), then keel on them."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    with (tmp_path / "cluster.log").open("w") as log, _running(
        [*_dask("scheduler"), "--host", "127.0.0.1", "--port", str(port), "--dashboard-address", "127.0.0.1:0"], log
    ), _running(
        [*_dask("worker"), address, "--nworkers", "2", "--nthreads", "1", "--host", "127.0.0.1",
         "--dashboard-address", "127.0.0.1:0", "--local-directory", str(tmp_path / "dask-worker")],
        log,
    ):  # fmt: skip
        _wait_for_workers(address, 2)
        rows = adult_rows.head(6_000).reset_index(drop=True)
        (tmp_path / "train").mkdir()
        (tmp_path / "in").mkdir()
        for index in range(3):
            part = rows.iloc[index * 2_000 : (index + 1) * 2_000]
            part.to_parquet(tmp_path / "train" / f"{index}.parquet", index=False)
            part.assign(row_id=part.index).to_parquet(tmp_path / "in" / f"{index}.parquet", index=False)

        on_cluster = ["--engine", "dask", "--scheduler", address]
        common = ["-i", str(tmp_path / "in"), "--workspace", str(adult_workspace), "--json"]
        result = json.loads(keel(keel_command, "predict", *common, "-o", str(tmp_path / "out"), *on_cluster).stdout)
        assert (result["rows"], result["predicted"]) == (6_000, 6_000)
        keel(keel_command, "predict", *common, "-o", str(tmp_path / "here.parquet"))
        scored = pd.read_parquet(tmp_path / "out").sort_values("row_id").reset_index(drop=True)
        pd.testing.assert_frame_equal(scored, pd.read_parquet(tmp_path / "here.parquet"), check_dtype=False)

        trained = keel(
            keel_command, "train", "--json", "engine=dask", f"scheduler={address}", "split.strategy=random",
            f"data.train.path={tmp_path / 'train'}", "model.params.n_estimators=40",
        )  # fmt: skip
        assert json.loads(trained.stdout)["version"] == 1


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _dask(command: str) -> list[str]:
    """The `dask` command line (it comes with the dask extra), next to this interpreter."""
    found = shutil.which("dask", path=str(Path(sys.executable).parent))
    assert found, "the dask command comes with the dask extra (uv sync --extra dask)"
    return [found, command]


@contextmanager
def _running(command: list[str], log: IO[str]) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        yield process
    finally:
        stop(process)


def _wait_for_workers(address: str, count: int, timeout: float = 120) -> None:
    from distributed import Client

    deadline = time.monotonic() + timeout
    while True:
        try:
            with Client(address, timeout=5) as client:
                client.wait_for_workers(count, timeout=max(1.0, deadline - time.monotonic()))
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
