"""``keel predict``: a registered version scores a file, in this process or on a Dask cluster.

The two engines are :func:`keel.application.predict.predict_file` (chunks in this process) and
:func:`keel.application.dask_predict.predict_dask` (one task per Parquet file); this module picks one, after loading
and verifying the version once.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from keel.application.inputs import input_format
from keel.application.models import load_from
from keel.application.predict import DEFAULT_CHUNK_ROWS, ROW_COLUMN, OutputColumns, PredictResult, predict_file
from keel.errors import KeelError


def predict_version(
    workspace: Path | None,
    reference: str | None,
    input_path: Path,
    output_path: Path,
    *,
    errors_path: Path | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    keep: str = "all",
    row_column: str = ROW_COLUMN,
    csv: Sequence[str] = (),
    engine: str = "local",
    scheduler: str | None = None,
    workers: int | None = None,
) -> PredictResult:
    """Score ``input_path`` with a version of ``workspace``'s registry into ``output_path``.

    Args:
        workspace: The workspace (``None``: ``KEEL_WORKSPACE`` or ``.keel``).
        reference: ``NAME``, ``NAME@ALIAS``, ``NAME:VERSION``; ``None``: the only registered model's champion.
        input_path: CSV or Parquet file, or a folder of Parquet parts.
        output_path: Predictions file (``local``) or folder of parts (``dask``).
        errors_path: Where invalid rows go (default: beside the output).
        chunk_rows: Rows scored at a time.
        keep: Input columns carried to the output: ``all``, ``ids`` or ``none``.
        row_column: Name of the column holding each record's input position.
        csv: ``KEY=VALUE`` CSV options winning over those recorded from the training source.
        engine: ``local`` or ``dask``.
        scheduler: With ``dask``: a running scheduler's address (``None`` starts a LocalCluster).
        workers: With ``dask``: workers of that LocalCluster.

    Raises:
        KeelError: ``scheduler`` or ``workers`` given without ``engine="dask"``.
        ConfigError: ``dask`` is asked for and its extra is not installed.
        DataError: A bad ``keep`` or ``row_column``, or an unreadable input.
        RegistryError: The version is not found.
    """
    if engine != "dask" and (scheduler or workers):
        raise KeelError("--scheduler and --workers apply only with --engine dask")
    columns = OutputColumns(keep=keep, row_column=row_column)
    handle = load_from(workspace, reference)
    fmt = input_format(handle.loaded.directory, csv)
    if engine != "dask":
        return predict_file(
            handle,
            input_path,
            output_path,
            errors_path=errors_path,
            chunk_rows=chunk_rows,
            fmt=fmt,
            output_columns=columns,
        )
    from keel.io.cluster import require_extra

    require_extra("dask")
    from keel.application.dask_predict import predict_dask

    return predict_dask(
        handle,
        input_path,
        output_path,
        errors_path=errors_path,
        chunk_rows=chunk_rows,
        scheduler=scheduler,
        workers=workers,
        fmt=fmt,
        output_columns=columns,
    )
