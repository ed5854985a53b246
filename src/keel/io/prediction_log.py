"""The prediction log's format on disk, and reading it back.

The service (:mod:`keel.serving.prediction_log`) appends every scored record to Parquet part files in one folder;
``pandas.read_parquet(folder)`` reads them as one table. Every part file has the same columns and types whatever the
model, so files written by different versions, workers and days always read together:

=================  ==========================  ==========================================================
column             type                        holds
=================  ==========================  ==========================================================
``request_id``     string                      the request's id (``X-Request-ID``, or the one generated)
``record``         int32                       the record's index in its request
``timestamp``      timestamp (µs, UTC)         when the request was scored
``model``          string                      registered model name
``version``        int32                       version number
``role``           string                      ``primary``, ``canary`` or ``shadow``
``shadow``         bool                        scored off the response path (the answer was not sent)
``features``       string                      the record's fields as received (a JSON object)
``label``          string                      predicted class (classification)
``probabilities``  string                      class → probability (a JSON object; classification)
``value``          float64                     predicted value (regression)
``warnings``       string                      values outside the training data (a JSON list)
=================  ==========================  ==========================================================

Files being written have a name starting with ``.`` (Parquet readers skip them) and are renamed when complete, so
a reader never sees half a file.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keel.errors import DataError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

PART_PREFIX = "part-"
PART_SUFFIX = ".parquet"
TEMP_PREFIX = "."
TEMP_SUFFIX = ".tmp"
COLUMNS = (
    "request_id",
    "record",
    "timestamp",
    "model",
    "version",
    "role",
    "shadow",
    "features",
    "label",
    "probabilities",
    "value",
    "warnings",
)
ROLES = ("primary", "canary", "shadow")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def arrow_schema() -> pa.Schema:
    """The Arrow schema every part file has."""
    import pyarrow as pa

    return pa.schema(
        [
            ("request_id", pa.string()),
            ("record", pa.int32()),
            ("timestamp", pa.timestamp("us", tz="UTC")),
            ("model", pa.string()),
            ("version", pa.int32()),
            ("role", pa.string()),
            ("shadow", pa.bool_()),
            ("features", pa.string()),
            ("label", pa.string()),
            ("probabilities", pa.string()),
            ("value", pa.float64()),
            ("warnings", pa.string()),
        ]
    )


def parse_duration(text: str) -> timedelta:
    """``30m``, ``24h``, ``7d``, ``2w`` or ``90s`` as a time span.

    Raises:
        DataError: The text is not a number followed by one of s, m, h, d, w.
    """
    match = _DURATION.match(text)
    if not match:
        raise DataError(f"--since {text!r}: write a number and a unit, e.g. 30m, 24h, 7d (units: s, m, h, d, w)")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


def part_files(directory: Path) -> list[Path]:
    """The complete part files in ``directory``, oldest name first (files being written are not listed).

    Raises:
        DataError: ``directory`` is not a folder or holds no complete part file.
    """
    if not directory.is_dir():
        raise DataError(f"--log {directory}: not a folder; pass the folder given to `keel serve --log-dir`")
    parts = sorted(p for p in directory.glob(f"{PART_PREFIX}*{PART_SUFFIX}") if p.is_file())
    if not parts:
        raise DataError(
            f"--log {directory}: no prediction log files ({PART_PREFIX}*{PART_SUFFIX}); a part file appears when the "
            "service rotates it (by size or age) or stops"
        )
    return parts


def read_log(directory: Path, *, since: timedelta | None = None, now: datetime | None = None) -> pd.DataFrame:
    """Every logged row in ``directory`` (optionally only those of the last ``since``), in timestamp order.

    Raises:
        DataError: The folder holds no part file, a part file cannot be read, or nothing is recent enough.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = arrow_schema()
    tables = []
    for path in part_files(directory):
        try:
            tables.append(pq.read_table(path, schema=schema))
        except (OSError, pa.ArrowException) as error:
            raise DataError(
                f"{path}: not a readable prediction log file ({error}); move it out of {directory}"
            ) from None
    frame: pd.DataFrame = pa.concat_tables(tables).to_pandas()
    if since is not None:
        cutoff = (now or datetime.now(UTC)) - since
        frame = frame.loc[frame["timestamp"] >= cutoff]
        if frame.empty:
            raise DataError(f"--log {directory}: no record was logged since {cutoff.isoformat(timespec='seconds')}")
    return frame.sort_values(["timestamp", "request_id", "record"], kind="stable").reset_index(drop=True)


def features_frame(log: pd.DataFrame) -> pd.DataFrame:
    """The logged records' fields as columns (one row per log row, same index)."""
    import pandas as pd

    records = [json.loads(text) if isinstance(text, str) else {} for text in log["features"]]
    return pd.DataFrame.from_records(records, index=log.index)


def probabilities_matrix(log: pd.DataFrame, class_keys: list[str]) -> Any:
    """The logged class probabilities as a matrix whose columns follow ``class_keys`` (``str`` of each class).

    Raises:
        DataError: A row has no probabilities for one of the classes (it was logged by a different model).
    """
    import numpy as np

    matrix = np.empty((len(log), len(class_keys)), dtype=np.float64)
    for i, text in enumerate(log["probabilities"]):
        document = json.loads(text) if isinstance(text, str) else {}
        try:
            matrix[i] = [document[key] for key in class_keys]
        except KeyError:
            raise DataError(
                f"a logged row of {log['model'].iloc[i]}:{log['version'].iloc[i]} has no probability for every class "
                f"({', '.join(class_keys)}); it was not scored by this model"
            ) from None
    return matrix
