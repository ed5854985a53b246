"""The prediction log writer on real files: rows as logged, rotation, dropping when full, and hard kills."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from keel.errors import DataError
from keel.io.prediction_log import COLUMNS, features_frame, parse_duration, read_log
from keel.serving.prediction_log import PredictionLog

RECORD = {"age": 39, "workclass": "State-gov", "hours-per-week": 40.5, "note": None}
RESULT = {"label": ">50K", "probabilities": {"<=50K": 0.25, ">50K": 0.75}, "warnings": []}


def _wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_rows_hold_request_model_inputs_and_prediction(tmp_path: Path) -> None:
    folder = tmp_path / "log"
    with PredictionLog(folder) as writer:
        warned = {**RESULT, "warnings": [{"field": "workclass", "problem": "unseen"}]}
        writer.log_records("req-1", "adult-income", 3, [RECORD, {**RECORD, "age": 50}], [RESULT, warned])
        writer.log_records("req-1", "adult-income", 7, [RECORD], [RESULT], role="shadow")
        writer.log_columns(
            "req-2",
            "adult-income",
            3,
            {"age": [20, 30], "workclass": ["Private", "Never-seen"]},
            {"label": ["<=50K", ">50K"], "probabilities": {"<=50K": [0.9, 0.4], ">50K": [0.1, 0.6]}},
            [{"record": 1, "field": "workclass", "problem": "unseen"}],
            2,
            role="canary",
        )
    frame = pd.read_parquet(folder)  # the whole folder is one table
    assert list(frame.columns) == list(COLUMNS)
    assert len(frame) == 5
    primary = frame[(frame.request_id == "req-1") & ~frame.shadow].sort_values("record")
    assert primary.record.tolist() == [0, 1]
    assert primary.version.tolist() == [3, 3]
    assert json.loads(primary.features.iloc[1]) == {**RECORD, "age": 50}
    assert json.loads(primary.probabilities.iloc[0]) == {"<=50K": 0.25, ">50K": 0.75}
    assert json.loads(primary.warnings.iloc[1]) == [{"field": "workclass", "problem": "unseen"}]
    shadow = frame[frame.shadow]
    assert shadow.version.tolist() == [7]
    assert shadow.role.tolist() == ["shadow"]
    columnar = frame[frame.request_id == "req-2"].sort_values("record")
    assert columnar.role.tolist() == ["canary", "canary"]
    assert columnar.label.tolist() == ["<=50K", ">50K"]
    assert json.loads(columnar.features.iloc[1]) == {"age": 30, "workclass": "Never-seen"}
    assert json.loads(columnar.warnings.iloc[0]) == []
    assert json.loads(columnar.warnings.iloc[1]) == [{"field": "workclass", "problem": "unseen"}]
    assert str(frame.timestamp.dt.tz) == "UTC"
    # The file names carry the process id: several workers never share a file.
    assert all(f"-{os.getpid()}-" in path.name for path in folder.iterdir())
    assert features_frame(frame).loc[columnar.index, "workclass"].tolist() == ["Private", "Never-seen"]


def test_regression_values_and_a_float_column_read_together(tmp_path: Path) -> None:
    with PredictionLog(tmp_path) as writer:
        writer.log_records("r", "bikes", 1, [{"temp": 0.3}], [{"value": 12.5, "warnings": []}])
    frame = pd.read_parquet(tmp_path)
    assert frame.value.tolist() == [12.5]
    assert frame.label.isna().all()


def test_files_rotate_by_size(tmp_path: Path) -> None:
    with PredictionLog(tmp_path, rotate_bytes=1, flush_seconds=0.05) as writer:
        for i in range(3):
            writer.log_records(f"r{i}", "m", 1, [RECORD], [RESULT])
            _wait_for(lambda i=i: len(writer.files) == i + 1)
    assert len(list(tmp_path.glob("part-*.parquet"))) == 3
    assert sorted(pd.read_parquet(tmp_path).request_id) == ["r0", "r1", "r2"]


def test_files_rotate_by_age_without_a_stop(tmp_path: Path) -> None:
    writer = PredictionLog(tmp_path, rotate_seconds=0.3, flush_seconds=0.05)
    writer.start()
    try:
        writer.log_records("r", "m", 1, [RECORD], [RESULT])
        time.sleep(0.1)
        # Written but not complete yet: nothing visible to readers.
        assert not list(tmp_path.glob("part-*.parquet"))
        _wait_for(lambda: len(list(tmp_path.glob("part-*.parquet"))) == 1, timeout=5)
        assert pd.read_parquet(tmp_path).request_id.tolist() == ["r"]
    finally:
        writer.close()
    assert len(list(tmp_path.glob("part-*.parquet"))) == 1  # closing with nothing new writes no empty file
    assert not list(tmp_path.glob(".*"))


def test_a_full_queue_drops_and_counts_records_never_blocks(tmp_path: Path) -> None:
    counted: list[int] = []
    writer = PredictionLog(tmp_path, max_pending=5, on_drop=counted.append)  # not started: nothing drains
    assert writer.log_records("a", "m", 1, [RECORD] * 3, [RESULT] * 3)
    started = time.perf_counter()
    assert not writer.log_records("b", "m", 1, [RECORD] * 3, [RESULT] * 3)
    assert time.perf_counter() - started < 0.05
    assert writer.dropped == 3
    assert counted == [3]
    writer.close()  # what was accepted is still written
    assert pd.read_parquet(tmp_path).request_id.tolist() == ["a", "a", "a"]
    assert not writer.log_records("late", "m", 1, [RECORD], [RESULT])  # after close: dropped, counted
    assert counted == [3, 1]


def test_a_hard_kill_leaves_only_complete_files(tmp_path: Path) -> None:
    folder = tmp_path / "log"
    script = textwrap.dedent(
        f"""
        import itertools, sys, time
        from pathlib import Path
        from keel.serving.prediction_log import PredictionLog

        writer = PredictionLog(Path({str(folder)!r}), rotate_seconds=0.3, flush_seconds=0.05)
        writer.start()
        record = {RECORD!r}
        result = {RESULT!r}
        for i in itertools.count():
            writer.log_records(f"r{{i}}", "m", 1, [record] * 20, [result] * 20)
            if i == 0:
                print("started", flush=True)
            time.sleep(0.002)
        """
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "started"
        _wait_for(lambda: len(list(folder.glob("part-*.parquet"))) >= 2, timeout=20)
        time.sleep(0.15)  # mid-interval: the current file is half-written
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    complete = list(folder.glob("part-*.parquet"))
    frame = pd.read_parquet(folder)  # every visible file is complete and readable
    assert len(frame) > 0
    assert len(frame) % 20 == 0
    assert frame.groupby("request_id").size().eq(20).all()  # no request is cut in half
    left = list(folder.glob(".part-*"))
    assert all(path.name.endswith(".parquet.tmp") for path in left)
    # The next writer on this host removes what the killed process left half-written, and nothing else.
    PredictionLog(folder).close()
    assert not list(folder.glob(".part-*"))
    assert sorted(folder.glob("part-*.parquet")) == sorted(complete)


def test_reading_the_log_back(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no prediction log files"):
        read_log(tmp_path)
    with PredictionLog(tmp_path) as writer:
        writer.log_records("r", "m", 1, [RECORD], [RESULT])
    assert read_log(tmp_path).request_id.tolist() == ["r"]
    assert len(read_log(tmp_path, since=parse_duration("1h"))) == 1
    later = pd.Timestamp.now(tz="UTC") + pd.Timedelta(hours=2)
    with pytest.raises(DataError, match="no record was logged since"):
        read_log(tmp_path, since=parse_duration("1h"), now=later.to_pydatetime())
    assert parse_duration("24h").total_seconds() == 86400
    with pytest.raises(DataError, match="30m, 24h"):
        parse_duration("yesterday")
