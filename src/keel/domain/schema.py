"""The feature schema: which columns a model uses, their types, and what the training data looked like.

The schema is derived from the training split, stored with every model version, and used everywhere a table meets a
model: preparing frames for training and prediction, validating rows, typing the service's request model and
measuring drift.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict

from keel.config import ColumnType, DataConfig
from keel.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

Role = Literal["feature", "target", "id", "ignored", "weight"]
Task = Literal["binary", "multiclass", "regression"]
Scalar = str | int | float | bool

MAX_CATEGORIES_KEPT = 1000
"""Categories beyond this many (least frequent first) are not listed in the schema."""
TEXT_MIN_MEAN_LENGTH = 40
"""A string column whose values average at least this many characters and have spaces is inferred as text."""
NUMERIC_SHARE = 0.95
"""A string column where at least this share of values parse as numbers is inferred as numeric."""
MAX_CLASSES_FOR_INTEGER_TARGET = 30
"""An integer target with at most this many distinct values is a classification target."""


class ColumnSchema(BaseModel):
    """One column as the training data showed it.

    Attributes:
        name: Column name.
        role: ``feature``, ``target``, ``id``, ``ignored`` or ``weight`` (``data.weight``: weighs rows, accepted and
            ignored when predicting).
        type: ``numeric``, ``categorical``, ``boolean``, ``text`` or ``datetime``.
        inferred: Whether the type was inferred rather than declared.
        missing_rate: Share of missing values in the training split.
        categories: Categories seen, most frequent first (categorical columns).
        category_counts: How often each listed category was seen.
        min: Smallest value (numeric columns).
        max: Largest value (numeric columns).
        mean: Mean value (numeric columns).
        note: Why the role or type was chosen when it was not declared.
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    role: Role
    type: ColumnType
    inferred: bool = False
    missing_rate: float = 0.0
    categories: list[str] | None = None
    category_counts: list[int] | None = None
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    note: str = ""


class TargetSchema(BaseModel):
    """The target column.

    Attributes:
        name: Column name.
        task: ``binary``, ``multiclass`` or ``regression``.
        classes: Class labels in the order probabilities are reported (classification).
        class_counts: Training rows per class.
        min: Smallest value (regression).
        max: Largest value (regression).
        mean: Mean value (regression).
        weighted_shares: With ``data.weight``: each class's share of the training rows' total weight (the weighted
            naive baseline predicts these).
        weighted_mean: With ``data.weight``: the weighted mean of the target (regression).
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    task: Task
    classes: list[Scalar] | None = None
    class_counts: list[int] | None = None
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    weighted_shares: list[float] | None = None
    weighted_mean: float | None = None


class FeatureSchema(BaseModel):
    """Everything a model version knows about its input columns.

    Attributes:
        columns: Every column of the training table with its role and type.
        target: The target.
        rows: Training rows the statistics were computed on.
        example: One real training row (features and ids), used as the service's example request.
    """

    model_config = ConfigDict(extra="forbid")

    columns: list[ColumnSchema]
    target: TargetSchema
    rows: int
    example: dict[str, Any] = {}

    @property
    def features(self) -> list[ColumnSchema]:
        """Feature columns, in training order."""
        return [c for c in self.columns if c.role == "feature"]

    @property
    def feature_names(self) -> list[str]:
        """Names of the feature columns, in training order."""
        return [c.name for c in self.columns if c.role == "feature"]

    @property
    def weight_name(self) -> str | None:
        """The sample-weight column (``data.weight``), if the version was trained with one."""
        return next((c.name for c in self.columns if c.role == "weight"), None)

    @property
    def id_names(self) -> list[str]:
        """Names of id columns (carried through predictions)."""
        return [c.name for c in self.columns if c.role == "id"]

    def column(self, name: str) -> ColumnSchema:
        """The column called ``name``.

        Raises:
            KeyError: There is no such column.
        """
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)


def apply_recode(frame: pd.DataFrame, recode: Mapping[str, Mapping[str, Scalar]], *, label: str) -> pd.DataFrame:
    """Replace values per column as configured (e.g. the Adult test file's ``>50K.`` labels).

    Raises:
        DataError: A recoded column is not in the table.
    """
    if not recode:
        return frame
    frame = frame.copy()
    for column, mapping in recode.items():
        if column not in frame.columns:
            raise DataError(f"{label}: `data.recode` names column {column!r}, which is not in the table")
        frame[column] = frame[column].replace(dict(mapping))
    return frame


def infer_task(target: pd.Series, declared: str = "auto") -> Task:
    """Decide the task from the target's values unless ``declared``.

    Strings and booleans are classification; integers with few distinct values are classification; other numbers
    are regression.
    """
    import pandas as pd

    if declared != "auto":
        return declared  # type: ignore[return-value]
    values = target.dropna()
    distinct = values.nunique()
    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        return "binary" if distinct <= 2 else "multiclass"
    integral = bool(((values % 1) == 0).all())
    if integral and distinct <= MAX_CLASSES_FOR_INTEGER_TARGET:
        return "binary" if distinct <= 2 else "multiclass"
    return "regression"


def infer_schema(frame: pd.DataFrame, data: DataConfig, *, task: Task | None = None) -> FeatureSchema:
    """Derive the feature schema from the training table.

    Args:
        frame: The training split (raw columns as read, after recoding).
        data: The data section of the configuration (target, roles, declared types).
        task: The task, when already decided; otherwise inferred from the target.

    Returns:
        The schema, with statistics computed on ``frame``.

    Raises:
        DataError: A declared column is missing, or the table cannot be learned from.
    """
    columns = list(frame.columns)
    weight = [(data.weight, "data.weight")] if data.weight is not None else []
    for name, where in [(data.target, "data.target"), *weight] + [
        (c, f"data.{key}") for key in ("features", "id_columns", "ignore", "types") for c in getattr(data, key)
    ]:
        if name not in frame.columns:
            raise DataError(missing_column_message(name, where, columns))
    if frame.empty:
        raise DataError("the training table has no rows")
    target = frame[data.target]
    if target.isna().all():
        raise DataError(f"target column {data.target!r} has no values")
    resolved_task = task or infer_task(target, data.task)
    schema_columns = []
    for name in columns:
        role, note = _role_of(name, data)
        if role == "target":
            continue
        series = frame[name]
        declared = data.types.get(name)
        column_type, type_note = (declared, "") if declared else _infer_type(series)
        if role == "feature" and not data.features and declared is None and _looks_like_identifier(series, column_type):
            role, note = "ignored", "every value is different (looks like an identifier); list it in data.features"
        schema_columns.append(
            _describe(series, name, role, column_type, inferred=declared is None, note=note or type_note)
        )
    described = _describe_target(target, resolved_task)
    if data.weight is not None:
        _describe_weighted_target(described, target, frame[data.weight])
    schema = FeatureSchema(
        columns=schema_columns,
        target=described,
        rows=len(frame),
        example=_example_row(frame, schema_columns),
    )
    if not schema.features:
        raise DataError("no feature columns are left after removing the target, ids and ignored columns")
    return schema


def missing_column_message(name: str, where: str, columns: Sequence[str]) -> str:
    """A message that a column named by config key ``where`` is missing, suggesting close column names."""
    import difflib

    close = difflib.get_close_matches(name, [str(c) for c in columns], n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    shown = ", ".join(str(c) for c in columns[:30]) + (" …" if len(columns) > 30 else "")
    return f"column {name!r} named in `{where}` is not in the data{hint} The data's columns: {shown}"


def _role_of(name: str, data: DataConfig) -> tuple[Role, str]:
    if name == data.target:
        return "target", ""
    if name == data.weight:
        return "weight", ""
    if name in data.id_columns:
        return "id", ""
    if name in data.ignore:
        return "ignored", ""
    if data.features and name not in data.features:
        return "ignored", "not listed in data.features"
    return "feature", ""


def _infer_type(series: pd.Series) -> tuple[ColumnType, str]:
    import pandas as pd

    values = series.dropna()
    if pd.api.types.is_bool_dtype(series):
        return "boolean", "boolean values"
    if pd.api.types.is_numeric_dtype(series):
        return "numeric", "numbers"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime", "dates"
    if values.empty:
        return "categorical", "no values to infer from"
    text = values.astype(str)
    lowered = set(text.str.lower().unique()[:5])
    if lowered and lowered <= {"true", "false"}:
        return "boolean", "true/false values"
    if _numeric_share(text) >= NUMERIC_SHARE:
        return "numeric", "text that parses as numbers"
    if _looks_like_dates(text):
        return "datetime", "text that parses as dates"
    if text.str.len().mean() >= TEXT_MIN_MEAN_LENGTH and text.str.contains(" ").mean() > 0.5:
        return "text", "long free text"
    return "categorical", "text labels"


def _numeric_share(text: pd.Series) -> float:
    """The share of the values that parse as numbers; each distinct spelling is parsed once, weighed by its rows."""
    import pandas as pd

    spellings = text.value_counts(sort=False)
    parsed = pd.to_numeric(pd.Series(spellings.index.to_numpy(dtype=object)), errors="coerce")
    return float(spellings.to_numpy()[parsed.notna().to_numpy()].sum() / len(text))


def _looks_like_dates(text: pd.Series) -> bool:
    import warnings

    import pandas as pd

    sample = text.head(200)
    if not sample.str.contains(r"\d{4}-\d{1,2}-\d{1,2}|\d{1,2}/\d{1,2}/\d{2,4}", regex=True).mean() >= NUMERIC_SHARE:
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
    return bool(parsed.notna().mean() >= NUMERIC_SHARE)


def _looks_like_identifier(series: pd.Series, column_type: ColumnType) -> bool:
    """Every value different: short labels, or integers forming a running number (``1, 2, 3, …``)."""
    import numpy as np

    values = series.dropna()
    if len(values) < 50 or values.nunique() != len(values):
        return False
    if column_type == "categorical":
        return bool(values.astype(str).str.len().mean() < TEXT_MIN_MEAN_LENGTH)
    if column_type == "numeric":
        import pandas as pd

        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
        if not np.isfinite(numbers).all() or not np.all(numbers % 1 == 0):
            return False
        ordered = np.sort(numbers)
        return bool(ordered[-1] - ordered[0] == len(ordered) - 1)
    return False


def _describe(
    series: pd.Series, name: str, role: Role, column_type: ColumnType, *, inferred: bool, note: str
) -> ColumnSchema:
    import pandas as pd

    column = ColumnSchema(
        name=name, role=role, type=column_type, inferred=inferred, missing_rate=float(series.isna().mean()), note=note
    )
    if role != "feature":
        return column
    if column_type == "numeric":
        numbers = pd.to_numeric(series, errors="coerce")
        finite = numbers[numbers.notna() & ~numbers.isin([math.inf, -math.inf])]
        if not finite.empty:
            column.min, column.max, column.mean = float(finite.min()), float(finite.max()), float(finite.mean())
    elif column_type == "categorical":
        keep_categories(column, series.dropna().astype(str).value_counts())
    return column


def keep_categories(column: ColumnSchema, counts: pd.Series) -> None:
    """Record a categorical column's categories from their counts (most frequent first, ties in order seen)."""
    counts = counts.head(MAX_CATEGORIES_KEPT)
    column.categories = [str(c) for c in counts.index]
    column.category_counts = [int(n) for n in counts.to_numpy()]


def _describe_target(target: pd.Series, task: Task) -> TargetSchema:
    import pandas as pd

    name = str(target.name)
    values = target.dropna()
    if task == "regression":
        numbers = pd.to_numeric(values, errors="coerce")
        if numbers.isna().any():
            bad = values[numbers.isna()].astype(str).unique()[:5].tolist()
            raise DataError(non_numeric_target_message(name, int(numbers.isna().sum()), bad))
        return TargetSchema(
            name=name, task=task, min=float(numbers.min()), max=float(numbers.max()), mean=float(numbers.mean())
        )
    return classification_target(name, task, values.value_counts().sort_index())


def _describe_weighted_target(target: TargetSchema, values: pd.Series, weights: pd.Series) -> None:
    """Add the weighted class shares (or mean) to ``target``, from the rows whose weight is a usable number.

    Rows with an unusable weight are left out here; the data checks refuse them before anything is fitted.
    """
    import numpy as np
    import pandas as pd

    numbers = pd.to_numeric(weights, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    usable = np.isfinite(numbers) & (numbers >= 0) & values.notna().to_numpy()
    total = float(numbers[usable].sum())
    if total <= 0:
        return
    if target.task == "regression":
        target_values = pd.to_numeric(values[usable], errors="coerce").to_numpy(dtype=np.float64)
        target.weighted_mean = float(np.sum(target_values * numbers[usable]) / total)
        return
    labels = values[usable].map(to_scalar).to_numpy(dtype=object)
    target.weighted_shares = [float(numbers[usable][labels == label].sum() / total) for label in (target.classes or [])]


def non_numeric_target_message(name: str, count: int, examples: list[str]) -> str:
    """Why a regression target whose values are not all numbers cannot be learned."""
    return (
        f"target {name!r} is a regression target but {count:,} values are not numbers (for example {examples}); "
        "fix them or set data.task to a classification task"
    )


def classification_target(name: str, task: Task, counts: pd.Series) -> TargetSchema:
    """The target of a classification task from its class counts (sorted by label).

    Raises:
        DataError: There is only one class.
    """
    if len(counts) < 2:
        only = counts.index[0] if len(counts) else None
        raise DataError(
            f"target {name!r} has only one class ({only!r}) in the training data; a classifier needs at least two"
        )
    classes = [to_scalar(c) for c in counts.index]
    return TargetSchema(name=name, task=task, classes=classes, class_counts=[int(n) for n in counts.to_numpy()])


def _example_row(frame: pd.DataFrame, columns: Sequence[ColumnSchema]) -> dict[str, Any]:
    wanted = [c.name for c in columns if c.role in ("feature", "id")]
    complete = frame[wanted].dropna()
    row = (complete if not complete.empty else frame[wanted]).iloc[0]
    return {name: to_scalar(row[name]) for name in wanted}


def to_scalar(value: Any) -> Any:
    """A JSON-friendly Python scalar for a pandas/numpy value (``None`` for missing)."""
    import pandas as pd

    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, (pd.Timestamp,)):
        return value.isoformat()
    return value
