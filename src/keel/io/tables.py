"""Reading and writing tables: CSV (optionally compressed), Parquet (a file or a folder of parts) and Feather.

Whole tables are read for training; prediction reads in chunks so memory does not grow with the file, and writes
its outputs to temporary files that are renamed into place only when complete.
"""

from __future__ import annotations

import contextlib
import glob
import os
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from keel.config import CsvOptions
from keel.errors import DataError
from keel.io.files import temporary_file_for

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

Format = Literal["csv", "parquet", "feather"]
_CSV_SUFFIXES = (".csv", ".data", ".test", ".txt", ".tsv")
_COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst", ".zip")


def detect_format(path: Path, declared: str = "auto") -> Format:
    """Decide a file's format from ``declared`` or, when ``auto``, from its name.

    Raises:
        DataError: The format cannot be told from the name.
    """
    if declared != "auto":
        return declared  # type: ignore[return-value]  # validated by the config's Literal
    if path.is_dir() or any(ch in str(path) for ch in "*?["):
        return "parquet"
    name = path.name.lower()
    for suffix in _COMPRESSIONS:
        name = name.removesuffix(suffix)
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".feather", ".arrow", ".ipc")):
        return "feather"
    if name.endswith(_CSV_SUFFIXES):
        return "csv"
    raise DataError(f"{path}: cannot tell the file format from its name; set `format` to csv, parquet or feather")


def read_table(path: Path, *, fmt: str = "auto", csv: CsvOptions | None = None) -> pd.DataFrame:
    """Read a whole table.

    Args:
        path: File, folder of Parquet parts, or glob.
        fmt: ``auto``, ``csv``, ``parquet`` or ``feather``.
        csv: CSV options (defaults: header row, comma separated).

    Returns:
        The table with its columns as read.

    Raises:
        DataError: The file is missing, empty or cannot be parsed.
    """
    import pandas as pd

    kind = detect_format(path, fmt)
    try:
        if kind == "csv":
            frame: pd.DataFrame = pd.read_csv(path, **_csv_kwargs(csv or CsvOptions()))
            return frame
        if kind == "parquet":
            return pd.concat(list(_parquet_batches(path, None)), ignore_index=True)
        return pd.read_feather(path)
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty") from None
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: cannot read it as {kind}: {str(exc).splitlines()[0]}") from None


def iter_table(
    path: Path, *, chunk_rows: int, fmt: str = "auto", csv: CsvOptions | None = None
) -> Iterator[pd.DataFrame]:
    """Yield a table in chunks of at most ``chunk_rows`` rows.

    Raises:
        DataError: The file is missing or cannot be parsed.
    """
    import pandas as pd

    kind = detect_format(path, fmt)
    try:
        if kind == "csv":
            with pd.read_csv(path, chunksize=chunk_rows, **_csv_kwargs(csv or CsvOptions())) as reader:
                yield from reader
        elif kind == "parquet":
            yield from _parquet_batches(path, chunk_rows)
        else:
            table = pd.read_feather(path)
            for start in range(0, len(table), chunk_rows):
                yield table.iloc[start : start + chunk_rows].reset_index(drop=True)
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty") from None
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: cannot read it as {kind}: {str(exc).splitlines()[0]}") from None


def parquet_parts(path: Path) -> list[Path]:
    """The Parquet files behind a file, a folder of part files, or a glob pattern.

    Raises:
        DataError: Nothing matches.
    """
    text = str(path)
    if any(ch in text for ch in "*?["):
        parts = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
    elif path.is_dir():
        parts = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in (".parquet", ".pq"))
    elif path.is_file():
        parts = [path]
    else:
        raise DataError(f"{path}: file not found")
    if not parts:
        raise DataError(f"{path}: no Parquet files found (expected *.parquet part files)")
    return parts


def parquet_row_count(files: list[Path]) -> int:
    """Rows of Parquet files, from their footers (nothing else is read).

    Raises:
        DataError: A file is not readable Parquet.
    """
    import pyarrow.parquet as pq

    rows = 0
    for path in files:
        try:
            rows += pq.ParquetFile(path).metadata.num_rows
        except (OSError, ValueError) as exc:
            raise DataError(
                f"{path}: not a readable Parquet file ({str(exc).strip().splitlines()[0]}); replace or remove it"
            ) from None
    return rows


def _parquet_batches(path: Path, chunk_rows: int | None) -> Iterator[pd.DataFrame]:
    import pyarrow.parquet as pq

    for part in parquet_parts(path):
        handle = pq.ParquetFile(part)
        if chunk_rows is None:
            yield handle.read().to_pandas()
            continue
        for batch in handle.iter_batches(batch_size=chunk_rows):
            yield batch.to_pandas()


def csv_with_header_if_present(path: Path, options: CsvOptions) -> CsvOptions:
    """``options`` for a headerless format, unless the file's first line holds only known column names.

    A version trained on a headerless file records ``header: false`` and its ``names``; a file scored later may be
    in that format or carry a header row (written by pandas, a spreadsheet or an earlier ``keel predict``). A first
    line of distinct fields, at least half of them among ``names`` (extra id columns allowed), is a header, never a
    record, so it is read as one.

    Raises:
        DataError: The file cannot be read.
    """
    if options.header or not options.names or detect_format(path) != "csv":
        return options
    fields = _first_record(path, options)
    if not fields:
        return options
    known = sum(field in options.names for field in fields)
    if len(set(fields)) == len(fields) and known and 2 * known >= len(fields):
        return options.model_copy(update={"header": True, "names": None})
    return options


def names_for_fields(path: Path, options: CsvOptions, optional: Collection[str] = ()) -> CsvOptions:
    """``options`` whose ``names`` fit the fields of a headerless file's first record.

    A file scored by a version trained on a headerless file usually lacks the trailing target (and weight) column
    its training file had: the names are then cut to the fields present, so no empty target column is invented.
    Any other difference would put values under the wrong names, so it is refused.

    Args:
        path: The file to read.
        options: Its CSV options (``names`` as recorded or given for this run).
        optional: Columns a scoring file may leave out (the target, the weight).

    Raises:
        DataError: The first record has more fields than there are names, or fewer and the missing names are not
            all optional trailing columns.
    """
    if options.header or not options.names or detect_format(path) != "csv":
        return options
    fields = _first_record(path, options)
    names = list(options.names)
    if not fields or len(fields) == len(names):
        return options
    if len(fields) < len(names) and all(name in optional for name in names[len(fields) :]):
        return options.model_copy(update={"names": names[: len(fields)]})
    raise DataError(
        f"{path}: its first record has {len(fields)} fields, but files without a header row are read as the "
        f"{len(names)} columns of the training file ({', '.join(names)}); add a header row naming the columns, or "
        "name them for this run with --csv names=a,b,c"
    )


def _first_record(path: Path, options: CsvOptions) -> list[str] | None:
    """The first line of a csv file (after ``skip_rows``) as stripped text fields; ``None`` when it is empty.

    Raises:
        DataError: The file cannot be read.
    """
    import pandas as pd

    try:
        first = pd.read_csv(
            path,
            header=None,
            nrows=1,
            skiprows=options.skip_rows,
            sep=options.delimiter,
            dtype=str,
            keep_default_na=False,
            skipinitialspace=True,
        )
    except pd.errors.EmptyDataError:
        return None
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: cannot read it as csv: {str(exc).splitlines()[0]}") from None
    if first.empty:
        return None
    return [str(value).strip() for value in first.iloc[0].tolist()]


def _csv_kwargs(options: CsvOptions) -> dict[str, Any]:
    # Missing means an empty cell or a configured token; pandas' own list ("NA", "n/a", "NULL", "-nan", ...) only
    # with `default_na`, so a real value spelled like one of them is never silently dropped.
    na_values = list(options.na_values) if options.default_na else ["", *options.na_values]
    kwargs: dict[str, Any] = {
        "sep": options.delimiter,
        "skiprows": options.skip_rows,
        "skipinitialspace": options.strip_whitespace,
        "na_values": na_values or None,
        "keep_default_na": options.default_na,
        "low_memory": False,
    }
    if not options.header:
        kwargs["header"] = None
        kwargs["names"] = options.names
    elif options.names:
        kwargs["header"] = 0
        kwargs["names"] = options.names
    return kwargs


class AtomicTableWriter:
    """Write a table chunk by chunk to a temporary file and rename it into place on success.

    Used as a context manager: if the block raises, the temporary file is removed and ``path`` is untouched.
    CSV and Parquet are supported (decided from the file name).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.format: Format = detect_format(path)
        if self.format == "feather":
            raise DataError(f"{path}: write predictions as .csv or .parquet")
        self.rows = 0
        self._temporary: Path | None = None
        self._parquet: Any = None
        self._schema: pa.Schema | None = None
        self._csv_handle: Any = None

    def __enter__(self) -> AtomicTableWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, self._temporary = temporary_file_for(self.path)
        os.close(handle)
        return self

    def write(self, frame: pd.DataFrame) -> None:
        """Append a chunk (all chunks must have the same columns)."""
        if self._temporary is None:
            raise RuntimeError("use AtomicTableWriter as a context manager")
        if self.format == "csv":
            if self._csv_handle is None:
                self._csv_handle = self._temporary.open("w", encoding="utf-8", newline="")
                frame.to_csv(self._csv_handle, index=False)
            else:
                frame.to_csv(self._csv_handle, index=False, header=False)
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self._parquet is None:
                self._schema = table.schema
                self._parquet = pq.ParquetWriter(self._temporary, self._schema)
            else:
                table = table.cast(self._schema)
            self._parquet.write_table(table)
        self.rows += len(frame)

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        if self._temporary is None:  # __enter__ never ran
            return
        with contextlib.suppress(Exception):
            if self._csv_handle is not None:
                self._csv_handle.close()
            if self._parquet is not None:
                self._parquet.close()
        if exc_type is not None:
            self._temporary.unlink(missing_ok=True)
            return
        if self._csv_handle is None and self._parquet is None:
            self._temporary.unlink(missing_ok=True)
            return
        os.replace(self._temporary, self.path)

    @property
    def written(self) -> bool:
        """Whether anything was written (an empty writer leaves no file)."""
        return self.rows > 0


def write_text_atomically(path: Path, text: str) -> None:
    """Write a text file so that ``path`` is either absent, unchanged or complete (with the umask's mode)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = temporary_file_for(path)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(name, path)
    except BaseException:
        name.unlink(missing_ok=True)
        raise
