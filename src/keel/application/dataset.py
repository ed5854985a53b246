"""Loading the configured dataset: resolve sources, read tables, recode values, drop unlabelled rows (counted)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from keel.config import DataConfig, LoadedConfig, SourceConfig
from keel.domain.recipes import apply_recipe
from keel.domain.schema import apply_recode, missing_column_message
from keel.errors import DataError
from keel.io.sources import ResolvedSource, fingerprint, resolve_source
from keel.io.tables import read_table

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class LoadedData:
    """The configured tables, read and recoded.

    Attributes:
        train: The table to learn from (split into train/valid/test unless ``test`` is set).
        test: The explicit test table, if configured.
        fingerprint: sha256 of every input file, keyed by file name.
        sources: Where each table came from.
        dropped: Reason → number of rows dropped (never silently).
        recipe_tables: Extra tables the dataset recipe produced, stored with the model version.
        notes: What loading did that the user should see (e.g. the recipe's summary).
    """

    train: pd.DataFrame
    test: pd.DataFrame | None
    fingerprint: dict[str, str]
    sources: dict[str, ResolvedSource]
    dropped: dict[str, int] = field(default_factory=dict)
    recipe_tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def read_source(source: SourceConfig, loaded: LoadedConfig) -> tuple[pd.DataFrame, ResolvedSource]:
    """Resolve and read one configured table (a source with ``years`` is read year by year and stacked)."""
    if source.years is not None:
        return _read_yearly(source, loaded)
    resolved = resolve_source(source, data_dir=loaded.config.data.data_dir, base_dir=loaded.base_dir)
    frame = read_table(resolved.path, fmt=source.format, csv=source.csv)
    if frame.empty:
        raise DataError(f"{resolved.label}: the table has no rows")
    return frame, resolved


def _read_yearly(source: SourceConfig, loaded: LoadedConfig) -> tuple[pd.DataFrame, ResolvedSource]:
    import pandas as pd

    frames, paths = [], []
    for _, single in source.per_year():
        frame, resolved = read_source(single, loaded)
        frames.append(frame)
        paths.append(resolved.path)
    first, last = source.years or (0, 0)
    label = f"{source.path or source.url} ({first}–{last})"
    return pd.concat(frames, ignore_index=True), YearlySource(paths[0], label, "yearly", tuple(paths))


@dataclass(frozen=True)
class YearlySource(ResolvedSource):
    """A source of one file per year, resolved: ``paths`` holds every year's file."""

    paths: tuple[Path, ...] = ()


def source_paths(sources: dict[str, ResolvedSource]) -> list[Path]:
    """Every file or folder behind the given sources (a yearly source stands for several)."""
    return [p for s in sources.values() for p in (s.paths if isinstance(s, YearlySource) else (s.path,))]


def labelled_rows(frame: pd.DataFrame, data: DataConfig, *, label: str) -> tuple[pd.DataFrame, int]:
    """Apply ``data.recode`` and drop the rows without a label.

    Args:
        frame: A table as read.
        data: The data section of the configuration.
        label: How to name the table in errors.

    Returns:
        The labelled rows (index reset when rows were dropped) and how many rows were dropped.

    Raises:
        DataError: The target column, or a recoded column, is not in the table.
    """
    frame = apply_recode(frame, data.recode, label=label)
    if data.target not in frame.columns:
        raise DataError(f"{label}: " + missing_column_message(data.target, "data.target", list(frame.columns)))
    unlabelled = frame[data.target].isna()
    if unlabelled.any():
        frame = frame.loc[~unlabelled].reset_index(drop=True)
    return frame, int(unlabelled.sum())


def load_data(loaded: LoadedConfig) -> LoadedData:
    """Read the training (and test) tables of a configuration.

    Rows whose target is missing cannot be learned from or scored against; they are dropped and counted in
    ``dropped``.

    Raises:
        DataError: A file is missing or unreadable, or the target column is absent.
    """
    data = loaded.config.data
    train, train_source = read_source(data.train, loaded)
    sources = {"train": train_source}
    test = None
    if data.test is not None:
        test, sources["test"] = read_source(data.test, loaded)
    dropped: dict[str, int] = {}
    tables = {"train": train, "test": test}
    recipe_tables: dict[str, pd.DataFrame] = {}
    notes: list[str] = []
    if data.recipe is not None:
        raw = {part: frame for part, frame in tables.items() if frame is not None}
        result = apply_recipe(data.recipe, raw, data.recipe_params)
        tables = {"train": result.train, "test": result.test if result.test is not None else test}
        recipe_tables, notes = result.artifacts, result.notes
    for part, frame in list(tables.items()):
        if frame is None:
            continue
        frame, unlabelled = labelled_rows(frame, data, label=sources[part].label)
        if unlabelled:
            dropped[f"{part}: missing target"] = unlabelled
        tables[part] = frame
    train_table = tables["train"]
    if train_table is None:  # read_source always returns a table; checked so the type is narrowed
        raise DataError(f"{sources['train'].label}: no training table was read")
    return LoadedData(
        train=train_table,
        test=tables["test"],
        fingerprint=fingerprint(source_paths(sources)),
        sources=sources,
        dropped=dropped,
        recipe_tables=recipe_tables,
        notes=notes,
    )
