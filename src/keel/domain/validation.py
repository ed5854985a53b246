"""Validating tables against a feature schema and bringing columns to the types the model was trained on.

The same coercion runs at training and at prediction time, so a model never sees a column typed differently from
how it learned it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from keel.domain.schema import FeatureSchema
from keel.errors import DataError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


@dataclass
class Coerced:
    """Feature columns coerced to their schema types.

    Attributes:
        frame: The feature columns (in schema order), typed: numeric and boolean as float64, categorical as object
            with NaN for missing, text as object with "" for missing, datetime as datetime64.
        errors: Per row, why it is invalid (an empty string when it is valid).
    """

    frame: pd.DataFrame
    errors: np.ndarray

    @property
    def valid(self) -> np.ndarray:
        """Boolean mask of valid rows."""
        mask: np.ndarray = self.errors == ""
        return mask


def check_columns(frame: pd.DataFrame, schema: FeatureSchema, *, label: str) -> None:
    """Check that every feature column is present.

    Raises:
        DataError: Naming the missing columns and the columns the file has.
    """
    missing = [name for name in schema.feature_names if name not in frame.columns]
    if missing:
        have = ", ".join(map(str, frame.columns[:30]))
        raise DataError(f"{label}: missing feature column(s) {', '.join(missing)}; the file has: {have}")


def coerce_features(frame: pd.DataFrame, schema: FeatureSchema, *, label: str = "input") -> Coerced:
    """Bring the feature columns to their schema types and find invalid rows.

    A value that cannot be read as its column's type (text in a numeric column, infinity) makes its row invalid;
    a missing value does not (models handle missing values). Unseen categories are allowed.

    Args:
        frame: A table holding at least the feature columns.
        schema: The model's feature schema.
        label: How to name the table in errors.

    Returns:
        The coerced feature columns and per-row error reasons.

    Raises:
        DataError: A feature column is missing.
    """
    import numpy as np
    import pandas as pd

    check_columns(frame, schema, label=label)
    errors = np.full(len(frame), "", dtype=object)
    columns: dict[str, pd.Series] = {}
    for column in schema.features:
        raw = frame[column.name]
        if column.type in ("numeric", "boolean"):
            values, bad = _to_float(raw, boolean=column.type == "boolean")
            _note(errors, bad, f"{column.name}: not a {'boolean' if column.type == 'boolean' else 'number'}")
            columns[column.name] = values
        elif column.type == "datetime":
            parsed = pd.to_datetime(raw, errors="coerce", format="mixed")
            bad = (parsed.isna() & raw.notna()).to_numpy()
            _note(errors, bad, f"{column.name}: not a date")
            columns[column.name] = parsed.reset_index(drop=True)
        else:
            columns[column.name] = _to_text(raw, text=column.type == "text")
    # Every column was reset to positions 0..n-1, so a chunk from the middle of a file lines up with its rows.
    coerced = pd.DataFrame(columns, index=pd.RangeIndex(len(frame)))
    return Coerced(frame=coerced, errors=errors)


def _to_float(raw: pd.Series, *, boolean: bool) -> tuple[pd.Series, np.ndarray]:
    import numpy as np
    import pandas as pd

    if boolean and not pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        mapping = {"true": 1.0, "false": 0.0, "1": 1.0, "0": 0.0, "yes": 1.0, "no": 0.0}
        text = raw.astype("string").str.strip().str.lower()
        values = text.map(mapping).astype("float64")
    elif pd.api.types.is_bool_dtype(raw) or pd.api.types.is_numeric_dtype(raw):
        values = raw.astype("float64")
    else:
        values = pd.to_numeric(raw.astype("string").str.strip(), errors="coerce").astype("float64")
    values = values.reset_index(drop=True)
    present = raw.notna().to_numpy()
    array = values.to_numpy()
    bad = present & (np.isnan(array) | np.isinf(array))
    return values.where(~np.isinf(array), np.nan), bad


def _to_text(raw: pd.Series, *, text: bool) -> pd.Series:
    import numpy as np
    import pandas as pd

    if pd.api.types.is_float_dtype(raw):
        # A categorical column read as floats (codes such as 1.0) is keyed by its integer spelling, as in training.
        as_text = raw.map(lambda v: str(int(v)) if float(v).is_integer() else str(v), na_action="ignore")
    else:
        as_text = raw.astype("string")
    # Plain Python strings (object dtype), what scikit-learn's encoders and the compiled encoding read: from pandas'
    # Arrow-backed ``str`` dtype each of them converted every column again (40 % of fitting Adult's pipeline). Each
    # distinct value is one string object that every row holding it shares: 8 bytes a row, less than Arrow's copy.
    codes, uniques = pd.factorize(as_text)
    table = np.empty(len(uniques) + 1, dtype=object)
    table[:-1] = np.asarray(uniques, dtype=object)
    # Missing categories are NaN (what scikit-learn's encoders and imputers treat as missing); missing text is "".
    table[-1] = "" if text else np.nan  # code -1
    return pd.Series(table[codes], name=raw.name, dtype=object)


def _note(errors: np.ndarray, bad: np.ndarray, reason: str) -> None:
    for index in bad.nonzero()[0]:
        errors[index] = f"{errors[index]}; {reason}" if errors[index] else reason


def raise_for_invalid_training_rows(
    frame: pd.DataFrame, coerced: Coerced, schema: FeatureSchema, *, label: str
) -> None:
    """Refuse training data with unreadable values, naming the columns, the row count and examples.

    Raises:
        DataError: Some rows hold values that cannot be read as their column's type.
    """
    message = invalid_rows_message(frame, coerced, schema, label=label)
    if message is not None:
        raise DataError(message + "\nFix the data, or declare the column's type in `data.types` (e.g. categorical).")


def invalid_rows_message(frame: pd.DataFrame, coerced: Coerced, schema: FeatureSchema, *, label: str) -> str | None:
    """What is unreadable in one table (rows, then per column the count and examples); ``None`` when nothing is."""
    import numpy as np

    invalid = ~coerced.valid
    if not invalid.any():
        return None
    problems = []
    for column in schema.features:
        if column.type not in ("numeric", "boolean", "datetime"):
            continue
        raw = frame[column.name].reset_index(drop=True)
        coerced_column = coerced.frame[column.name]
        bad = raw.notna().to_numpy() & coerced_column.isna().to_numpy()
        if column.type != "datetime":
            bad |= np.isinf(_safe_float(raw))
        if bad.any():
            examples = ", ".join(repr(v) for v in raw[bad].astype(str).unique()[:5])
            problems.append(
                f"column {column.name!r} ({column.type}): {int(bad.sum()):,} row(s) cannot be read, e.g. {examples}"
            )
    return f"{label}: {int(invalid.sum()):,} row(s) hold values of the wrong type:\n  " + "\n  ".join(problems)


def _safe_float(raw: pd.Series) -> np.ndarray:
    import pandas as pd

    values = pd.to_numeric(raw.astype("string").str.strip(), errors="coerce") if raw.dtype == object else raw
    try:
        return values.astype("float64").to_numpy()
    except (TypeError, ValueError):
        import numpy as np

        return np.zeros(len(raw))


def check_not_all_missing(coerced: Coerced, schema: FeatureSchema, *, label: str) -> None:
    """Refuse a feature column with no values at all.

    Raises:
        DataError: Naming the empty columns.
    """
    raise_for_all_missing([name for name in schema.feature_names if coerced.frame[name].isna().all()], label=label)


def raise_for_all_missing(empty: list[str], *, label: str) -> None:
    """Refuse the feature columns named in ``empty``, which have no values at all.

    Raises:
        DataError: ``empty`` is not empty.
    """
    if empty:
        raise DataError(
            f"{label}: feature column(s) {', '.join(empty)} have no values at all; add them to `data.ignore` or fix "
            "the data"
        )


def is_finite_number(value: object) -> bool:
    """Whether ``value`` is a real, finite number (not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
