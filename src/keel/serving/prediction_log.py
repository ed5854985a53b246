"""The service's prediction log writer: scored records to Parquet part files, off the request path.

A request only hands its records and results to :meth:`PredictionLog.log_records` (or ``log_columns``): a lock, a
list append, no copy and no I/O. A background thread turns them into rows and writes them (format in
:mod:`keel.io.prediction_log`). Memory is bounded: when the writer has ``max_pending`` records waiting, further
records are dropped and counted (``on_drop``), and the request is answered as usual.

Each process writes its own sequence of files, named ``part-<opened at>-<host>-<pid>-<sequence>.parquet``, so
several workers (or machines on a shared volume) never write to the same file. A file is written under a hidden
temporary name (``.part-….parquet.tmp``, which Parquet readers skip) and renamed when it reaches ``rotate_bytes`` or
``rotate_seconds``, or when the service stops: a reader never sees half a file, and a process killed outright loses
at most the rows of its current file (one rotation interval).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from keel.io.prediction_log import PART_PREFIX, PART_SUFFIX, TEMP_PREFIX, TEMP_SUFFIX, arrow_schema
from keel.io.staging import process_alive

log = logging.getLogger(__name__)

DEFAULT_ROTATE_BYTES = 64 * 1024 * 1024
DEFAULT_ROTATE_SECONDS = 60.0
DEFAULT_MAX_PENDING = 100_000
ROW_GROUP_ROWS = 20_000
"""Rows buffered before they are written to the open file as one Parquet row group."""


@dataclass(frozen=True, slots=True)
class _Entry:
    """One request's scored records, as the request path handed them over (converted to rows by the writer)."""

    request_id: str
    at: float
    model: str
    version: int
    role: str
    count: int
    records: Sequence[Mapping[str, Any]] | None = None
    results: Sequence[Mapping[str, Any]] | None = None
    columns: Mapping[str, Sequence[Any]] | None = None
    predictions: Mapping[str, Any] | None = None
    warnings: Sequence[Mapping[str, Any]] | None = None


class PredictionLog:
    """Appends scored records to Parquet part files in ``directory`` from a background thread.

    Args:
        directory: The folder (created if missing).
        rotate_bytes: A file is completed once it holds about this many bytes.
        rotate_seconds: A file is completed this long after its first row (the most a hard kill can lose).
        max_pending: Most records waiting for the writer; more are dropped and counted.
        on_drop: Called with the number of records dropped (e.g. a Prometheus counter's ``inc``).
        flush_seconds: Longest time rows wait in memory before they are written to the open file.

    Raises:
        OSError: The folder cannot be created or written.
    """

    def __init__(
        self,
        directory: Path,
        *,
        rotate_bytes: int = DEFAULT_ROTATE_BYTES,
        rotate_seconds: float = DEFAULT_ROTATE_SECONDS,
        max_pending: int = DEFAULT_MAX_PENDING,
        on_drop: Callable[[int], Any] | None = None,
        flush_seconds: float = 1.0,
    ) -> None:
        self.directory = directory
        self.rotate_bytes = rotate_bytes
        self.rotate_seconds = rotate_seconds
        self.max_pending = max_pending
        self.flush_seconds = min(flush_seconds, rotate_seconds)
        self.on_drop = on_drop
        self.dropped = 0
        self.written = 0
        self.files: list[Path] = []
        self._pending: list[_Entry] = []
        self._pending_records = 0
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._closing = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._host = _safe(socket.gethostname()) or "host"
        self._sequence = 0
        self._writer: Any = None
        self._file: Any = None
        self._temp: Path | None = None
        self._final: Path | None = None
        self._opened = 0.0
        directory.mkdir(parents=True, exist_ok=True)
        self._remove_stale_temporaries()

    # -- the request path ------------------------------------------------------------------------------------

    def log_records(
        self,
        request_id: str,
        model: str,
        version: int,
        records: Sequence[Mapping[str, Any]],
        results: Sequence[Mapping[str, Any]],
        *,
        role: str = "primary",
    ) -> bool:
        """Queue one request's records and their per-record results (never blocks; ``False`` when dropped)."""
        entry = _Entry(request_id, time.time(), model, version, role, len(records), records=records, results=results)
        return self._offer(entry)

    def log_columns(
        self,
        request_id: str,
        model: str,
        version: int,
        columns: Mapping[str, Sequence[Any]],
        predictions: Mapping[str, Any],
        warnings: Sequence[Mapping[str, Any]],
        count: int,
        *,
        role: str = "primary",
    ) -> bool:
        """Queue a columnar request (fields → values) and its columnar predictions (never blocks)."""
        entry = _Entry(
            request_id,
            time.time(),
            model,
            version,
            role,
            count,
            columns=columns,
            predictions=predictions,
            warnings=warnings,
        )
        return self._offer(entry)

    def _offer(self, entry: _Entry) -> bool:
        with self._lock:
            if self._closing or self._pending_records + entry.count > self.max_pending:
                self.dropped += entry.count
                dropped = True
            else:
                self._pending.append(entry)
                self._pending_records += entry.count
                dropped = False
                if self._pending_records >= ROW_GROUP_ROWS > self._pending_records - entry.count:
                    self._wake.notify()  # a full row group is waiting; otherwise the writer wakes on its own
        if dropped and self.on_drop is not None:
            self.on_drop(entry.count)
        return not dropped

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="keel-prediction-log", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, complete the open file and stop the thread (records arriving later are dropped)."""
        with self._lock:
            self._closing = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        else:
            self._drain_and_write(final=True)

    def __enter__(self) -> PredictionLog:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- the writer thread -----------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._closing and self._pending_records < ROW_GROUP_ROWS:
                    self._wake.wait(self._time_to_next_deadline())
                closing = self._closing
            try:
                self._drain_and_write(final=closing)
            except Exception:  # a full disk or a bug must not stop the service; the rows are counted as dropped
                log.exception("the prediction log could not write to %s; records are being dropped", self.directory)
                self._abandon_file()
            if closing:
                return

    def _time_to_next_deadline(self) -> float:
        if self._writer is None:
            return self.flush_seconds
        return max(0.01, min(self.flush_seconds, self._opened + self.rotate_seconds - time.monotonic()))

    def _drain_and_write(self, *, final: bool) -> None:
        rows: list[dict[str, Any]] = []
        while True:
            with self._lock:
                entries, self._pending = self._pending, []
                self._pending_records = 0
            if not entries:
                break
            for entry in entries:
                rows.extend(_rows(entry))
            if len(rows) >= ROW_GROUP_ROWS:
                self._write(rows)
                rows = []
            if not final:
                break
        if rows:
            self._write(rows)
        if self._writer is not None and (
            final or time.monotonic() - self._opened >= self.rotate_seconds or self._file.tell() >= self.rotate_bytes
        ):
            self._complete_file()

    def _write(self, rows: list[dict[str, Any]]) -> None:
        import pyarrow as pa

        table = pa.Table.from_pylist(rows, schema=arrow_schema())
        if self._writer is None:
            self._open_file()
        try:
            self._writer.write_table(table)
        except Exception:
            self._count_dropped(len(rows))
            raise
        self.written += len(rows)

    def _open_file(self) -> None:
        import pyarrow.parquet as pq

        self._sequence += 1
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        name = f"{PART_PREFIX}{stamp}-{self._host}-{os.getpid()}-{self._sequence:06d}{PART_SUFFIX}"
        self._final = self.directory / name
        self._temp = self.directory / f"{TEMP_PREFIX}{name}{TEMP_SUFFIX}"
        self._file = open(self._temp, "wb")  # noqa: SIM115 - closed in _complete_file / _abandon_file
        self._writer = pq.ParquetWriter(self._file, arrow_schema(), compression="zstd")
        self._opened = time.monotonic()

    def _complete_file(self) -> None:
        assert self._temp is not None  # noqa: S101 - set with the writer
        assert self._final is not None  # noqa: S101
        self._writer.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self._temp, self._final)
        self.files.append(self._final)
        log.info("prediction log: wrote %s", self._final)
        self._writer = self._file = self._temp = self._final = None

    def _abandon_file(self) -> None:
        """Give up the open file (after a write error): it is removed, never renamed into place."""
        with contextlib.suppress(Exception):
            if self._file is not None:
                self._file.close()
        if self._temp is not None:
            with contextlib.suppress(OSError):
                self._temp.unlink()
        self._writer = self._file = self._temp = self._final = None

    def _count_dropped(self, count: int) -> None:
        with self._lock:
            self.dropped += count
        if self.on_drop is not None:
            self.on_drop(count)

    def _remove_stale_temporaries(self) -> None:
        """Remove files left half-written by a process of this host that no longer runs (killed outright)."""
        for path in self.directory.glob(f"{TEMP_PREFIX}{PART_PREFIX}*-{self._host}-*{PART_SUFFIX}{TEMP_SUFFIX}"):
            pid_text = path.name.removesuffix(PART_SUFFIX + TEMP_SUFFIX).rsplit("-", 2)[-2]
            if pid_text.isdigit() and not process_alive(int(pid_text)):
                with contextlib.suppress(OSError):
                    path.unlink()


def _rows(entry: _Entry) -> list[dict[str, Any]]:
    """The log rows of one request's entry."""
    base = {
        "request_id": entry.request_id,
        "timestamp": datetime.fromtimestamp(entry.at, UTC),
        "model": entry.model,
        "version": entry.version,
        "role": entry.role,
        "shadow": entry.role == "shadow",
    }
    rows = []
    if entry.records is not None and entry.results is not None:
        for i, (record, result) in enumerate(zip(entry.records, entry.results, strict=True)):
            rows.append({**base, "record": i, "features": _json(record), **_prediction(result)})
        return rows
    columns = entry.columns or {}
    predictions = entry.predictions or {}
    warned: dict[int, list[dict[str, Any]]] = {}
    for warning in entry.warnings or []:
        warned.setdefault(int(warning["record"]), []).append({k: v for k, v in warning.items() if k != "record"})
    labels = predictions.get("label")
    values = predictions.get("value")
    probabilities = predictions.get("probabilities") or {}
    for i in range(entry.count):
        record = {name: column[i] for name, column in columns.items()}
        row = {**base, "record": i, "features": _json(record), "warnings": _json(warned.get(i, []))}
        if labels is not None:
            row["label"] = str(labels[i])
            row["probabilities"] = _json({key: column[i] for key, column in probabilities.items()})
        if values is not None:
            row["value"] = float(values[i])
        rows.append(row)
    return rows


def _prediction(result: Mapping[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"warnings": _json(result.get("warnings") or [])}
    if "label" in result:
        row["label"] = str(result["label"])
        row["probabilities"] = _json(result.get("probabilities") or {})
    if "value" in result:
        row["value"] = float(result["value"])
    return row


def _json(value: Any) -> str:
    return orjson.dumps(value, default=str, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS).decode()


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text)[:40]
