"""Reading a user's file the way the version's training data was read.

A version's stored configuration records how its training source was parsed (header and names, delimiter,
``na_values``, ``strip_whitespace``, ``skip_rows``, ``default_na``) and which values were recoded. ``keel predict``,
``evaluate``, ``monitor``, ``explain`` and Dask scoring read their input with those options, so a file in the
training file's own format (no header, ``?`` for missing, labels spelled ``>50K.``) is understood. Options given for
one run (``--csv KEY=VALUE``) win over the recorded ones. A version stored without a configuration reads CSV files
with the defaults (header row, comma separated), as before.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from keel.config import CsvOptions
from keel.errors import ConfigError
from keel.io import artifacts
from keel.io.tables import csv_with_header_if_present, iter_table, names_for_fields, read_table

if TYPE_CHECKING:
    import pandas as pd

Scalar = str | int | float | bool


@dataclass(frozen=True)
class InputFormat:
    """How to read and recode a file scored by a version.

    Attributes:
        csv: CSV parsing options (recorded with the version, then the run's overrides).
        recode: Value replacements per column, as applied to the training data.
        header_given: Whether ``header`` was set for this run (then the file is not checked for a header row).
        optional: Columns of the training file a scored file may leave out (the target and the weight): a headerless
            file without them is read with the names of the columns it has.
    """

    csv: CsvOptions = field(default_factory=CsvOptions)
    recode: Mapping[str, Mapping[str, Scalar]] = field(default_factory=dict)
    header_given: bool = False
    optional: tuple[str, ...] = ()

    def options_for(self, path: Path) -> CsvOptions:
        """The CSV options for one file (a header row is recognised unless ``header`` was given for this run).

        Raises:
            DataError: A headerless file's first record does not fit the column names (see
                :func:`keel.io.tables.names_for_fields`).
        """
        options = self.csv if self.header_given else csv_with_header_if_present(path, self.csv)
        return names_for_fields(path, options, self.optional)

    def read(self, path: Path) -> pd.DataFrame:
        """The whole file, read and recoded."""
        return self.apply_recode(read_table(path, csv=self.options_for(path)))

    def chunks(self, path: Path, *, chunk_rows: int) -> Iterator[pd.DataFrame]:
        """The file in chunks, each read and recoded."""
        for chunk in iter_table(path, chunk_rows=chunk_rows, csv=self.options_for(path)):
            yield self.apply_recode(chunk)

    def apply_recode(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The training data's value replacements, on the columns this table has (a scoring file has no target)."""
        present = {column: mapping for column, mapping in self.recode.items() if column in frame.columns}
        if not present:
            return frame
        frame = frame.copy()
        for column, mapping in present.items():
            frame[column] = frame[column].replace(dict(mapping))
        return frame


def recorded_format(directory: Path) -> InputFormat:
    """The input format a version recorded (its training source's CSV options and ``data.recode``).

    A version without a stored configuration, or whose training source is not described by one, gets the defaults.
    """
    import yaml

    path = directory / artifacts.CONFIG_FILE
    if not path.is_file():
        return InputFormat()
    stored = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    data = stored.get("data") if isinstance(stored, dict) else None
    if not isinstance(data, dict):
        return InputFormat()
    train = data.get("train") if isinstance(data.get("train"), dict) else {}
    csv_section = train.get("csv") if isinstance(train, dict) else None
    try:
        csv = CsvOptions.model_validate(csv_section or {})
    except ValidationError:
        csv = CsvOptions()  # written by another keel version: read with the defaults rather than refuse to score
    recode = data.get("recode")
    if not isinstance(recode, dict):
        recode = {}
    optional = tuple(str(data[key]) for key in ("target", "weight") if isinstance(data.get(key), str))
    return InputFormat(
        csv=csv, recode={str(k): dict(v) for k, v in recode.items() if isinstance(v, dict)}, optional=optional
    )


def parse_csv_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``["header=false", "names=a,b,c", "na_values=?"]`` → CSV option values.

    Raises:
        ConfigError: An item is not ``KEY=VALUE`` or names no CSV option.
    """
    fields = CsvOptions.model_fields
    result: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--csv {item!r}: write KEY=VALUE, e.g. --csv header=false --csv na_values=?")
        if key not in fields:
            raise ConfigError(f"--csv {item!r}: no CSV option {key!r}; the options are {', '.join(fields)}")
        if key in ("names", "na_values"):
            result[key] = [part.strip() for part in value.split(",")] if value else []
        else:
            result[key] = value
    return result


def input_format(directory: Path, overrides: Sequence[str] = ()) -> InputFormat:
    """The recorded format of a version with this run's ``--csv KEY=VALUE`` overrides on top (they win).

    Raises:
        ConfigError: An override is malformed or the result is not a valid set of CSV options.
    """
    recorded = recorded_format(directory)
    changes = parse_csv_overrides(overrides)
    if not changes:
        return recorded
    merged = {**recorded.csv.model_dump(), **changes}
    if changes.get("header") in ("true", "True", "1", "yes") and "names" not in changes:
        merged["names"] = None  # the file's own header names its columns
    try:
        csv = CsvOptions.model_validate(merged)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'csv'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"--csv: {problems}") from None
    return InputFormat(csv=csv, recode=recorded.recode, header_given="header" in changes, optional=recorded.optional)
