"""Batch prediction: score a file in chunks, carry non-feature columns through, set invalid rows aside."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keel.application.inputs import InputFormat, recorded_format
from keel.application.models import ModelHandle
from keel.domain.model import FittedModel
from keel.domain.validation import coerce_features
from keel.errors import DataError
from keel.io.tables import AtomicTableWriter

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_CHUNK_ROWS = 50_000
PREDICTION_COLUMN = "prediction"
PROBABILITY_PREFIX = "probability_"
ERROR_COLUMN = "error"
ROW_COLUMN = "row"
KEEP_CHOICES = ("ids", "all", "none")


@dataclass(frozen=True)
class OutputColumns:
    """Which input columns a prediction carries, beside the row position and the predictions.

    Attributes:
        keep: ``all`` (every column that is not a feature, the default), ``ids`` (the configured id columns only)
            or ``none``.
        row_column: Name of the column holding each record's 0-based position in the input (across chunks and
            Parquet parts), in the predictions and in the errors file alike; ``None`` for none (the MLflow pyfunc
            answers only the prediction columns).
    """

    keep: str = "all"
    row_column: str | None = ROW_COLUMN

    def __post_init__(self) -> None:
        if self.keep not in KEEP_CHOICES:
            raise DataError(f"--keep {self.keep!r}: choose one of {', '.join(KEEP_CHOICES)}")
        if self.row_column is not None and not self.row_column.strip():
            raise DataError("--row-column: give a column name")


@dataclass
class PredictResult:
    """What a batch prediction did.

    Attributes:
        model: ``name:version`` used.
        rows: Rows read.
        predicted: Rows scored and written to the output.
        invalid: Rows set aside in the errors file.
        output: The predictions file.
        errors: The errors file (``None`` when every row was valid).
        unseen: Feature → rows with a category never seen in training (scored anyway).
    """

    model: str
    rows: int = 0
    predicted: int = 0
    invalid: int = 0
    output: Path | None = None
    errors: Path | None = None
    unseen: dict[str, int] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        """The command's exit status: 1 when rows were invalid and none could be scored."""
        return 1 if self.invalid and self.predicted == 0 else 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "model": self.model,
            "rows": self.rows,
            "predicted": self.predicted,
            "invalid": self.invalid,
            "output": str(self.output) if self.output else None,
            "errors": str(self.errors) if self.errors else None,
            "unseen_categories": self.unseen,
        }


def default_errors_path(output: Path) -> Path:
    """``predictions.csv`` → ``predictions.errors.csv``."""
    return output.with_name(f"{output.stem}.errors{output.suffix}")


def prediction_columns(model: FittedModel) -> list[str]:
    """Names of the columns a prediction adds."""
    if model.task == "regression":
        return [PREDICTION_COLUMN]
    return [PREDICTION_COLUMN] + [f"{PROBABILITY_PREFIX}{label}" for label in model.classes]


@dataclass
class PreparedChunk:
    """A chunk read, validated and encoded, waiting for the model.

    Attributes:
        rows: Rows in the chunk.
        kept: The non-feature columns of its valid rows (the predictions are added to it).
        matrix: The valid rows' model input (``None`` when no row is valid).
        invalid: The invalid rows with an ``error`` column.
        unseen: Feature → rows holding a category never seen in training.
    """

    rows: int
    kept: pd.DataFrame
    matrix: Any
    invalid: pd.DataFrame
    unseen: dict[str, int]


def carried_columns(model: FittedModel, columns: list[str], output: OutputColumns) -> list[str]:
    """The input columns a prediction carries, in input order."""
    if output.keep == "none":
        return []
    if output.keep == "ids":
        ids = set(model.schema.id_names)
        return [c for c in columns if c in ids]
    features = set(model.schema.feature_names)
    return [c for c in columns if c not in features]


def prepare_chunk(
    model: FittedModel,
    chunk: pd.DataFrame,
    *,
    label: str,
    start: int = 0,
    output: OutputColumns | None = None,
) -> PreparedChunk:
    """Validate and encode one chunk (everything before the model).

    Args:
        model: The fitted model.
        chunk: Rows holding at least the feature columns.
        label: How to name the input in errors.
        start: Position in the whole input of the chunk's first row (the ``row`` column counts from it).
        output: Which columns to carry (default: every non-feature column, and ``row``).

    Raises:
        DataError: A feature column is missing, or the row or a prediction column would overwrite an input column.
    """
    import numpy as np

    output = output or OutputColumns()
    if output.row_column is not None and output.row_column in chunk.columns:
        raise DataError(
            f"{label}: the input already has a column {output.row_column!r}, the name keel gives each record's "
            "position; pass --row-column with another name"
        )
    coerced = coerce_features(chunk, model.schema, label=label)
    valid = coerced.valid
    carried = carried_columns(model, list(chunk.columns), output)
    clash = [c for c in prediction_columns(model) if c in carried or c == output.row_column]
    if clash:
        raise DataError(f"{label}: input column(s) {', '.join(clash)} would be overwritten by predictions; rename them")
    positions = np.arange(start, start + len(chunk), dtype=np.int64)
    kept = chunk.loc[valid, carried].reset_index(drop=True)
    rows = coerced.frame.loc[valid].reset_index(drop=True)
    invalid = chunk.loc[~valid].copy().reset_index(drop=True)
    if output.row_column is not None:
        kept.insert(0, output.row_column, positions[np.asarray(valid)])
        invalid.insert(0, output.row_column, positions[~np.asarray(valid)])
    invalid[ERROR_COLUMN] = coerced.errors[~valid]
    matrix = model.transform(rows) if len(rows) else None
    return PreparedChunk(len(chunk), kept, matrix, invalid, unseen_categories(model, chunk))


def finish_chunk(model: FittedModel, prepared: PreparedChunk) -> pd.DataFrame:
    """Score a prepared chunk: its kept columns followed by the prediction columns."""
    import pandas as pd

    kept = prepared.kept
    added = prediction_columns(model)
    if prepared.matrix is None:
        for column in added:
            kept[column] = pd.Series(dtype="float64")
    elif model.task == "regression":
        kept[PREDICTION_COLUMN] = model.value_from_matrix(prepared.matrix)
    else:
        proba = model.proba_from_matrix(prepared.matrix)
        kept[PREDICTION_COLUMN] = model.predict_labels(proba)
        for i, column in enumerate(added[1:]):
            kept[column] = proba[:, i]
    return kept


def score_chunk(
    model: FittedModel,
    chunk: pd.DataFrame,
    *,
    label: str,
    start: int = 0,
    output: OutputColumns | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score one chunk.

    Args:
        model: The fitted model.
        chunk: Rows holding at least the feature columns.
        label: How to name the input in errors.
        start: Position in the whole input of the chunk's first row.
        output: Which columns to carry.

    Returns:
        The scored valid rows (``row``, the carried columns, then predictions) and the invalid rows (``row``, all
        input columns, then ``error``).
    """
    prepared = prepare_chunk(model, chunk, label=label, start=start, output=output)
    return finish_chunk(model, prepared), prepared.invalid


def prepared_chunks(
    model: FittedModel,
    input_path: Path,
    *,
    chunk_rows: int,
    label: str,
    fmt: InputFormat | None = None,
    output: OutputColumns | None = None,
) -> Iterator[PreparedChunk]:
    """The input's chunks, each read, validated and encoded one chunk ahead in a background thread.

    The model scores one chunk while the next is read and encoded: Parquet decoding, pandas and LightGBM release the
    GIL for most of their work, so with a single-threaded booster the second core is no longer idle. At most two
    prepared chunks exist at a time, so memory stays bounded by the chunk size.
    """
    chunks = (fmt or InputFormat()).chunks(input_path, chunk_rows=chunk_rows)  # predict_file passes the recorded one
    start = 0

    def following() -> PreparedChunk | None:
        nonlocal start  # only the single reader thread touches it
        chunk = next(chunks, None)
        if chunk is None:
            return None
        prepared = prepare_chunk(model, chunk, label=label, start=start, output=output)
        start += len(chunk)
        return prepared

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="keel-read") as reader:
        pending = reader.submit(following)
        while (prepared := pending.result()) is not None:
            pending = reader.submit(following)
            yield prepared


def unseen_categories(model: FittedModel, chunk: pd.DataFrame) -> dict[str, int]:
    """Rows per categorical feature holding a category never seen in training."""
    result = {}
    for column in model.schema.features:
        if column.type != "categorical" or not column.categories or column.name not in chunk.columns:
            continue
        values = chunk[column.name].dropna().astype(str)
        count = int((~values.isin(column.categories)).sum())
        if count:
            result[column.name] = count
    return result


def predict_file(
    handle: ModelHandle,
    input_path: Path,
    output_path: Path,
    *,
    errors_path: Path | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    fmt: InputFormat | None = None,
    output_columns: OutputColumns | None = None,
) -> PredictResult:
    """Score a CSV/Parquet file (or a folder of Parquet parts) chunk by chunk.

    The output and the errors file are written to temporary files and renamed when complete; the errors file
    exists only when some rows were invalid. Every row of both carries its position in the input (``row``), so
    together they hold each input record exactly once.

    Args:
        handle: The verified version.
        input_path: The file to score.
        output_path: The predictions file (.csv or .parquet).
        errors_path: The file for invalid rows (default: beside the output).
        chunk_rows: Rows read and scored at a time.
        fmt: How to read the input (default: as the version's training source was read).
        output_columns: Which input columns to carry and the row column's name.

    Raises:
        DataError: The input is missing, unreadable or lacks feature columns.
    """
    model = handle.loaded.model
    fmt = fmt or recorded_format(handle.loaded.directory)
    errors_path = errors_path or default_errors_path(output_path)
    result = PredictResult(model=handle.label)
    if input_path.resolve() == output_path.resolve():
        raise DataError(f"{output_path}: the output would overwrite the input; choose another --output")
    label = str(input_path)
    with AtomicTableWriter(output_path) as output, AtomicTableWriter(errors_path) as errors:
        for prepared in prepared_chunks(
            model, input_path, chunk_rows=chunk_rows, label=label, fmt=fmt, output=output_columns
        ):
            scored = finish_chunk(model, prepared)
            result.rows += prepared.rows
            for name, count in prepared.unseen.items():
                result.unseen[name] = result.unseen.get(name, 0) + count
            if len(scored) or not output.written:
                output.write(scored)
            if len(prepared.invalid):
                errors.write(prepared.invalid)
        result.predicted = output.rows
        result.invalid = errors.rows
    if result.rows == 0:
        raise DataError(f"{input_path}: the file has no rows")
    result.output = output_path
    result.errors = errors_path if result.invalid else None
    return result
