"""Batch prediction on Dask: score the partitions of a Parquet dataset in parallel, one model per worker.

The model version's files travel to every worker once, inside a worker plugin; each worker writes them to a private
folder, verifies every sha256 against the manifest recorded in the registry and loads the model once. Each task
then reads one input part file in batches, scores each with :func:`keel.application.predict.score_chunk` (the same
function in-process prediction uses, so both engines give the same rows) and writes its own part file, so no data
ever travels back to the client and memory stays bounded by the batch size. Each part's first row position comes
from the Parquet footers (read on the client), so the ``row`` column numbers records across parts as in-process
scoring does.

This module imports ``distributed``; import it only after :func:`keel.io.cluster.require_extra` said Dask is there.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distributed import WorkerPlugin, get_worker

from keel.application.inputs import InputFormat, recorded_format
from keel.application.models import ModelHandle
from keel.application.predict import (
    DEFAULT_CHUNK_ROWS,
    OutputColumns,
    PredictResult,
    score_chunk,
    unseen_categories,
)
from keel.errors import DataError
from keel.io import artifacts
from keel.io.cluster import dask_client
from keel.io.files import temporary_folder_for
from keel.io.tables import AtomicTableWriter, detect_format, parquet_parts

if TYPE_CHECKING:
    from keel.domain.model import FittedModel


class ModelPlugin(WorkerPlugin):
    """Carries a model version to each worker and loads it there once, verified.

    Args:
        directory: The model version's local directory (on the client).
        manifest_sha256: The manifest's sha256 recorded in the registry.
    """

    def __init__(self, directory: Path, manifest_sha256: str | None) -> None:
        self.files = {
            str(path.relative_to(directory)): path.read_bytes() for path in directory.rglob("*") if path.is_file()
        }
        self.manifest_sha256 = manifest_sha256
        self.name = plugin_name(manifest_sha256 or "unverified")
        self.model: FittedModel | None = None
        self._folder: str | None = None

    def setup(self, worker: Any) -> None:
        """Write the files to a private folder, verify every sha256 and load the model."""
        self._folder = tempfile.mkdtemp(prefix="keel-model-")
        folder = Path(self._folder)
        for name, content in self.files.items():
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        self.model = artifacts.load_model(folder, manifest_sha256=self.manifest_sha256).model
        self.files = {}  # the loaded model is all the worker needs from now on

    def teardown(self, worker: Any) -> None:
        """Remove the private folder."""
        if self._folder:
            shutil.rmtree(self._folder, ignore_errors=True)


def plugin_name(manifest_sha256: str) -> str:
    """A worker plugin name for one run with a model version (runs sharing a cluster never unload each other's)."""
    return f"keel-model-{manifest_sha256[:16]}-{uuid.uuid4().hex[:8]}"


@dataclass
class _PartSummary:
    rows: int = 0
    predicted: int = 0
    invalid: int = 0
    unseen: dict[str, int] = field(default_factory=dict)


def _score_part(
    path: str,
    index: int,
    start: int,
    *,
    plugin: str,
    output: str,
    errors: str,
    chunk_rows: int,
    label: str,
    fmt: InputFormat,
    columns: OutputColumns,
) -> _PartSummary:
    """Score one input part file on a worker, batch by batch, and write its part files (runs on the worker)."""
    import pyarrow.parquet as pq

    loader: Any = get_worker().plugins[plugin]
    model = loader.model
    summary = _PartSummary()
    name = f"part-{index:05d}.parquet"
    try:
        handle = pq.ParquetFile(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read it as Parquet: {str(exc).splitlines()[0]}") from None
    with AtomicTableWriter(Path(output) / name) as scored_out, AtomicTableWriter(Path(errors) / name) as errors_out:
        for batch in handle.iter_batches(batch_size=chunk_rows):
            chunk = fmt.apply_recode(batch.to_pandas())
            scored, invalid = score_chunk(model, chunk, label=label, start=start + summary.rows, output=columns)
            summary.rows += len(chunk)
            for column, count in unseen_categories(model, chunk).items():
                summary.unseen[column] = summary.unseen.get(column, 0) + count
            if len(scored):
                scored_out.write(scored)
            if len(invalid):
                errors_out.write(invalid)
        summary.predicted = scored_out.rows
        summary.invalid = errors_out.rows
    return summary


def default_errors_dir(output: Path) -> Path:
    """``predictions/`` → ``predictions.errors/``."""
    return output.with_name(f"{output.name}.errors")


def predict_dask(
    handle: ModelHandle,
    input_path: Path,
    output_path: Path,
    *,
    errors_path: Path | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    scheduler: str | None = None,
    workers: int | None = None,
    fmt: InputFormat | None = None,
    output_columns: OutputColumns | None = None,
) -> PredictResult:
    """Score a Parquet dataset on a Dask cluster into a partitioned Parquet dataset.

    Args:
        handle: The verified model version.
        input_path: A Parquet file, a folder of part files, or a glob.
        output_path: Folder for the predictions (``part-NNNNN.parquet``, one per input part file, in order).
        errors_path: Folder for invalid rows with their reason (default: ``OUTPUT.errors``); created only when
            some rows are invalid.
        chunk_rows: Rows scored at a time within a partition.
        scheduler: Address of a running Dask scheduler; ``None`` starts a ``LocalCluster`` on loopback.
        workers: Workers of the local cluster (default: one per core).
        fmt: How to read the input (default: the version's recorded format; only its ``recode`` applies to Parquet).
        output_columns: Which input columns to carry and the row column's name.

    Returns:
        Counts and the output folders. Workers write the part files themselves, so with a remote scheduler
        ``output_path`` must be on storage every worker can reach.

    Raises:
        DataError: The input is missing, not Parquet, or lacks feature columns.
    """
    import pyarrow.parquet as pq
    from dask.delayed import delayed

    errors_path = errors_path or default_errors_dir(output_path)
    if input_path.resolve() == output_path.resolve():
        raise DataError(f"{output_path}: the output would overwrite the input; choose another --output")
    if output_path.suffix in (".csv", ".parquet", ".pq"):
        raise DataError(f"{output_path}: with --engine dask the output is a folder of Parquet parts; drop the suffix")
    if input_path.is_file() and detect_format(input_path) != "parquet":
        raise DataError(f"{input_path}: --engine dask reads Parquet (a file, a folder of parts or a glob)")
    files = [str(p) for p in parquet_parts(input_path)]
    for path in (output_path, errors_path):
        if path.exists() and not path.is_dir():
            raise DataError(f"{path}: exists and is not a folder; choose another path")
    result = PredictResult(model=handle.label)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    staging = temporary_folder_for(output_path)  # renamed into place: the user's folder mode, not mkdtemp's 0700
    try:
        # Each part's first row position, from the footers only; the workers read the parts with pyarrow's own
        # conversion, as in-process scoring does, so both give the same rows and dtypes.
        starts, total = [], 0
        for file in files:
            starts.append(total)
            try:
                total += pq.ParquetFile(file).metadata.num_rows
            except (ValueError, OSError) as exc:
                raise DataError(f"{file}: cannot read it as Parquet: {str(exc).splitlines()[0]}") from None
        plugin = ModelPlugin(handle.loaded.directory, handle.info.manifest_sha256)
        with dask_client(scheduler, workers=workers) as client, _registered(client, plugin):
            tasks = [
                delayed(_score_part)(
                    file,
                    index,
                    start,
                    plugin=plugin.name,
                    output=str(staging / "output"),
                    errors=str(staging / "errors"),
                    chunk_rows=chunk_rows,
                    label=str(input_path),
                    fmt=fmt or recorded_format(handle.loaded.directory),
                    columns=output_columns or OutputColumns(),
                )
                for index, (file, start) in enumerate(zip(files, starts, strict=True))
            ]
            summaries: list[_PartSummary] = client.gather(client.compute(tasks))
        for summary in summaries:
            result.rows += summary.rows
            result.predicted += summary.predicted
            result.invalid += summary.invalid
            for column, count in summary.unseen.items():
                result.unseen[column] = result.unseen.get(column, 0) + count
        if result.rows == 0:
            raise DataError(f"{input_path}: the dataset has no rows")
        _move_into_place(staging / "output", output_path)
        if result.invalid:
            _move_into_place(staging / "errors", errors_path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    result.output = output_path
    result.errors = errors_path if result.invalid else None
    return result


@contextlib.contextmanager
def _registered(client: Any, plugin: ModelPlugin) -> Iterator[None]:
    """Load the model on every worker for the block (a worker that fails verification fails the call)."""
    try:
        client.register_plugin(plugin, name=plugin.name)
        yield
    finally:
        with contextlib.suppress(Exception):
            client.unregister_worker_plugin(plugin.name)


def _move_into_place(folder: Path, target: Path) -> None:
    """Replace ``target`` (a folder from an earlier run, if any) with ``folder`` in two renames."""
    folder.mkdir(parents=True, exist_ok=True)
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(target, old)
    os.replace(folder, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
