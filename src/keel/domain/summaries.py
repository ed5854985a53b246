"""Statistics of training rows computed piece by piece and merged, for a table that is never held in one place.

``engine: dask`` on a partitioned table infers column roles and types from a bounded sample of training rows, then
summarises every partition of the training rows on the workers (:func:`summarize_rows`), merges the small summaries
(:func:`merge_summaries`) and completes the schema with them (:func:`complete_schema`). The statistics are computed
with the same pandas operations :func:`keel.domain.schema.infer_schema` uses, so the completed schema states the
same categories, counts, ranges and missing rates as inferring it from all the training rows at once.

The tree feature pipeline only learns each categorical column's set of values (an ``OrdinalEncoder`` sorts them);
:func:`encoder_fit_frame` builds a small frame holding each value once, on which fitting the pipeline gives the same
fitted pipeline as fitting it on every training row.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from keel.domain.schema import (
    FeatureSchema,
    TargetSchema,
    classification_target,
    keep_categories,
    non_numeric_target_message,
)
from keel.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

EXAMPLES_KEPT = 5
"""Unreadable target values kept as examples for the error message."""


@dataclass
class ColumnSummary:
    """One column of some training rows.

    Attributes:
        missing: Missing values as read.
        finite: Finite numbers (numeric features).
        total: Their sum.
        low: Their smallest value.
        high: Their largest value.
        counts: Values as text → count, in the order first seen (categorical features).
        codes: The coerced values the feature pipeline encodes (categorical features).
        present: Values left after coercion to the column's type (features).
    """

    missing: int = 0
    finite: int = 0
    total: float = 0.0
    low: float = math.inf
    high: float = -math.inf
    counts: dict[str, int] = field(default_factory=dict)
    codes: set[str] = field(default_factory=set)
    present: int = 0


@dataclass
class TrainingSummary:
    """Training rows summarised: row count, every non-target column, and the target.

    Attributes:
        rows: Rows summarised.
        columns: Column name → its summary.
        classes: Class label → count (classification).
        target: The target's numbers (regression): count, sum, range and unreadable values in ``target.missing``.
        target_examples: Up to :data:`EXAMPLES_KEPT` unreadable target values (regression).
    """

    rows: int = 0
    columns: dict[str, ColumnSummary] = field(default_factory=dict)
    classes: dict[Any, int] = field(default_factory=dict)
    target: ColumnSummary = field(default_factory=ColumnSummary)
    target_examples: list[str] = field(default_factory=list)


def summarize_rows(frame: pd.DataFrame, coerced: pd.DataFrame, schema: FeatureSchema) -> TrainingSummary:
    """Summarise some training rows.

    Args:
        frame: The rows as read (raw columns, labelled).
        coerced: Their feature columns coerced to the schema's types (:func:`keel.domain.validation.coerce_features`).
        schema: The schema the columns' roles and types come from.

    Returns:
        The summary, to merge with the other partitions' ones.
    """
    import pandas as pd

    summary = TrainingSummary(rows=len(frame))
    for column in schema.columns:
        series = frame[column.name]
        stats = ColumnSummary(missing=int(series.isna().sum()))
        if column.role == "feature":
            stats.present = int(coerced[column.name].notna().sum())
            if column.type == "numeric":
                _add_numbers(stats, pd.to_numeric(series, errors="coerce"))
            elif column.type == "categorical":
                counts = series.dropna().astype(str).value_counts(sort=False)
                stats.counts = {str(k): int(v) for k, v in counts.items()}
                stats.codes = {str(v) for v in coerced[column.name].dropna().unique()}
        summary.columns[column.name] = stats
    values = frame[schema.target.name].dropna()
    if schema.target.task == "regression":
        numbers = pd.to_numeric(values, errors="coerce")
        summary.target.missing = int(numbers.isna().sum())
        summary.target_examples = values[numbers.isna()].astype(str).unique()[:EXAMPLES_KEPT].tolist()
        _add_numbers(summary.target, numbers, finite_only=False)
    else:
        summary.classes = {k: int(v) for k, v in values.value_counts(sort=False).items()}
    return summary


def _add_numbers(stats: ColumnSummary, numbers: pd.Series, *, finite_only: bool = True) -> None:
    """Count, sum and range of the numbers (a feature's finite ones; all of a target's, as the schema states them)."""
    finite = numbers[numbers.notna() & ~numbers.isin([math.inf, -math.inf])] if finite_only else numbers.dropna()
    if finite.empty:
        return
    stats.finite = len(finite)
    stats.total = float(finite.sum())
    stats.low, stats.high = float(finite.min()), float(finite.max())


def merge_summaries(summaries: Sequence[TrainingSummary]) -> TrainingSummary:
    """One summary of all the rows the given summaries (in table order) cover."""
    merged = TrainingSummary()
    for summary in summaries:
        merged.rows += summary.rows
        for name, stats in summary.columns.items():
            _merge_column(merged.columns.setdefault(name, ColumnSummary()), stats)
        for label, count in summary.classes.items():
            merged.classes[label] = merged.classes.get(label, 0) + count
        _merge_column(merged.target, summary.target)
        for example in summary.target_examples:
            if example not in merged.target_examples and len(merged.target_examples) < EXAMPLES_KEPT:
                merged.target_examples.append(example)
    return merged


def _merge_column(into: ColumnSummary, stats: ColumnSummary) -> None:
    into.missing += stats.missing
    into.present += stats.present
    into.finite += stats.finite
    into.total += stats.total
    into.low, into.high = min(into.low, stats.low), max(into.high, stats.high)
    for value, count in stats.counts.items():
        into.counts[value] = into.counts.get(value, 0) + count
    into.codes |= stats.codes


def complete_schema(schema: FeatureSchema, summary: TrainingSummary) -> FeatureSchema:
    """The schema inferred from a sample, with the statistics of all the training rows.

    Roles, types and the example row stay the sample's; row count, missing rates, categories and their counts,
    ranges, means and the target's classes or range come from ``summary``.

    Raises:
        DataError: The target has a single class, or a regression target holds values that are not numbers.
    """
    import pandas as pd

    columns = []
    for column in schema.columns:
        stats = summary.columns[column.name]
        column = column.model_copy(update={"missing_rate": stats.missing / summary.rows if summary.rows else 0.0})
        if column.role == "feature" and column.type == "numeric":
            found = stats.finite > 0
            column.min, column.max = (stats.low, stats.high) if found else (None, None)
            column.mean = stats.total / stats.finite if found else None
        elif column.role == "feature" and column.type == "categorical":
            keep_categories(column, pd.Series(stats.counts, dtype="int64").sort_values(ascending=False, kind="stable"))
        columns.append(column)
    name, task = schema.target.name, schema.target.task
    if task == "regression":
        numbers = summary.target
        if numbers.missing:
            raise DataError(non_numeric_target_message(name, numbers.missing, summary.target_examples))
        target = TargetSchema(
            name=name, task=task, min=numbers.low, max=numbers.high, mean=numbers.total / max(numbers.finite, 1)
        )
    else:
        target = classification_target(name, task, pd.Series(summary.classes, dtype="int64").sort_index())
    return FeatureSchema(columns=columns, target=target, rows=summary.rows, example=schema.example)


def all_missing_features(schema: FeatureSchema, summary: TrainingSummary) -> list[str]:
    """Feature columns without a single value after coercion."""
    return [name for name in schema.feature_names if summary.columns[name].present == 0]


def encoder_fit_frame(sample: pd.DataFrame, schema: FeatureSchema, summary: TrainingSummary) -> pd.DataFrame:
    """A small frame of coerced features on which the tree feature pipeline fits as on all the training rows.

    Each categorical column holds every value seen in training once (plus a missing value when training rows miss
    some); the other columns repeat the sample's first row, since passing numbers through, taking dates apart and
    computing derived columns learn nothing from the values.

    Args:
        sample: Coerced feature columns of at least one training row.
        schema: The completed schema.
        summary: The merged summary of all the training rows.

    Returns:
        Coerced feature columns in the schema's order.
    """
    import numpy as np
    import pandas as pd

    if sample.empty:
        raise DataError("no training rows were sampled to fit the feature pipeline on")
    values: dict[str, list[Any]] = {}
    for column in schema.features:
        if column.type != "categorical":
            continue
        stats = summary.columns[column.name]
        values[column.name] = sorted(stats.codes) + ([np.nan] if stats.present < summary.rows else [])
    length = max([1, *(len(v) for v in values.values())])
    frame = sample.iloc[[0] * length].reset_index(drop=True)
    for name, column_values in values.items():
        padded = column_values + [column_values[0]] * (length - len(column_values)) if column_values else []
        frame[name] = pd.Series(padded or [np.nan] * length, dtype=object)
    return frame
