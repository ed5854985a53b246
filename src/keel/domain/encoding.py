"""A fitted tree-model feature pipeline compiled into per-column encodings.

:func:`keel.domain.features.build_feature_plan` gives tree models an ``OrdinalEncoder`` for categories (unknown
and missing → NaN) and numbers passed through. Compiled once, that pipeline needs neither scikit-learn nor a
DataFrame per call: the service writes a request's values into a float64 matrix with one dict lookup per category
(:class:`keel.serving.predictor.Predictor`), and :func:`encode_frame` encodes a whole DataFrame column by column
with a pandas index lookup (:meth:`keel.domain.model.FittedModel.transform`, so batch scoring and evaluation
use it). Both give the fitted pipeline's matrix exactly; pipelines it does not understand are not compiled.

A compiled encoding is plain data (:func:`encoding_to_data`, :func:`encoding_from_data`): a model version stores it
as JSON, so loading a LightGBM model needs neither scikit-learn nor skops.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from keel.domain.schema import FeatureSchema


@dataclass(frozen=True)
class EncodedColumn:
    """How one output column of the preprocessor is computed.

    Attributes:
        name: The input feature it reads.
        codes: Category → code for an encoded categorical; ``None`` for a number passed through.
        categories: The categories in code order (``categories[k]`` has code ``k``), for encoding a column at a
            time; ``None`` for a number, or when the codes are not positions in one list of strings.
    """

    name: str
    codes: dict[Any, float] | None
    categories: list[str] | None


def compile_plan(preprocessor: Any, schema: FeatureSchema) -> list[EncodedColumn] | None:
    """Compile the fitted preprocessor into per-column lookups, or ``None`` when it cannot be compiled.

    Only what :func:`keel.domain.features.build_feature_plan` builds for tree models is compiled: an
    ``OrdinalEncoder`` (unknown and missing categories → NaN) and numeric passthrough columns.
    """
    transformers = getattr(preprocessor, "transformers_", None)
    slices = getattr(preprocessor, "output_indices_", None)
    if transformers is None or slices is None:
        return None
    from sklearn.preprocessing import FunctionTransformer, OrdinalEncoder

    width = sum(s.stop - s.start for s in slices.values())
    plan: list[EncodedColumn | None] = [None] * width
    for name, transformer, columns in transformers:
        if isinstance(transformer, str) and transformer == "drop":
            continue
        names = [columns] if isinstance(columns, str) else list(columns)
        if not all(isinstance(c, str) for c in names):
            return None
        where = slices[name]
        if where.stop - where.start == 0:
            continue
        if where.stop - where.start != len(names):
            return None
        if isinstance(transformer, OrdinalEncoder):
            if not _plain_ordinal(transformer):
                return None
            for offset, (column, categories) in enumerate(zip(names, transformer.categories_, strict=True)):
                plan[where.start + offset] = _categorical(column, list(categories))
        elif transformer == "passthrough" or (
            isinstance(transformer, FunctionTransformer) and transformer.func is None and transformer.validate is False
        ):
            for offset, column in enumerate(names):
                plan[where.start + offset] = EncodedColumn(column, None, None)
        else:
            return None
    if any(column is None for column in plan):
        return None
    numeric = {c.name for c in schema.features if c.type in ("numeric", "boolean")}
    categorical = {c.name for c in schema.features if c.type == "categorical"}
    for column in plan:
        assert column is not None  # noqa: S101 - checked just above; narrows the type
        if column.codes is None and column.name not in numeric:
            return None
        if column.codes is not None and column.name not in categorical:
            return None
    return [column for column in plan if column is not None]


def _plain_ordinal(encoder: Any) -> bool:
    """Whether an ``OrdinalEncoder`` maps unknown and missing values to NaN and keeps every category."""
    return (
        encoder.handle_unknown == "use_encoded_value"
        and _is_nan(encoder.unknown_value)
        and _is_nan(encoder.encoded_missing_value)
        and getattr(encoder, "infrequent_categories_", None) is None
        and getattr(encoder, "_infrequent_enabled", False) is False
    )


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _codes(categories: list[Any]) -> dict[Any, float]:
    """Category → code, as the fitted encoder assigns them; missing values (None, NaN) are not keys.

    Categories that spell an integer (``"7"``) are also keyed by the integer, as the batch path turns an integer
    column into text before encoding.
    """
    codes: dict[Any, float] = {}
    for index, category in enumerate(categories):
        if category is None or (isinstance(category, float) and math.isnan(category)):
            continue
        codes[category] = float(index)
        if isinstance(category, str) and category.lstrip("-").isdigit() and str(int(category)) == category:
            codes[int(category)] = float(index)
    return codes


def _categorical(name: str, categories: list[Any]) -> EncodedColumn:
    known = [c for c in categories if not (c is None or (isinstance(c, float) and math.isnan(c)))]
    # The missing category, when the encoder has one, sorts last; the others then have their positions as codes.
    positional = known == categories[: len(known)] and all(isinstance(c, str) for c in known)
    return EncodedColumn(name, _codes(categories), known if positional else None)


ENCODING_FORMAT = "keel-encoding/1"


def encoding_to_data(plan: list[EncodedColumn], categories: dict[str, list[Any]]) -> dict[str, Any] | None:
    """The compiled encoding as JSON-ready data, or ``None`` when a category is not a string or a number.

    Args:
        plan: From :func:`compile_plan`.
        categories: Per encoded column, the fitted encoder's categories in code order (a missing category, when the
            encoder learnt one, as ``None``).
    """
    columns: list[dict[str, Any]] = []
    for column in plan:
        if column.codes is None:
            columns.append({"name": column.name, "kind": "number"})
            continue
        values: list[Any] = []
        for category in categories[column.name]:
            value = category.item() if hasattr(category, "item") else category
            if value is None or (isinstance(value, float) and math.isnan(value)):
                values.append(None)
            elif isinstance(value, str) or (
                isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
            ):
                values.append(value)
            else:
                return None
        columns.append({"name": column.name, "kind": "category", "categories": values})
    return {"format": ENCODING_FORMAT, "columns": columns}


def encoding_from_data(data: Any) -> list[EncodedColumn]:
    """The compiled encoding stored by :func:`encoding_to_data`.

    Raises:
        ValueError: ``data`` is not such a document (the message says what is wrong).
    """
    if not isinstance(data, dict) or data.get("format") != ENCODING_FORMAT or not isinstance(data.get("columns"), list):
        raise ValueError(f"not a compiled encoding (expected format {ENCODING_FORMAT} with a list of columns)")
    plan = []
    for index, entry in enumerate(data["columns"]):
        name = entry.get("name") if isinstance(entry, dict) else None
        kind = entry.get("kind") if isinstance(entry, dict) else None
        if not isinstance(name, str) or kind not in ("number", "category"):
            raise ValueError(f"column {index}: expected a name and a kind (number or category)")
        if kind == "number":
            plan.append(EncodedColumn(name, None, None))
            continue
        categories = entry.get("categories")
        if not isinstance(categories, list) or not all(
            c is None or isinstance(c, str) or (isinstance(c, int | float) and not isinstance(c, bool))
            for c in categories
        ):
            raise ValueError(f"column {index} ({name!r}): categories must be a list of strings, numbers or null")
        plan.append(_categorical(name, categories))
    return plan


def categories_in_code_order(column: EncodedColumn) -> list[Any]:
    """An encoded column's categories in code order (``None`` where the encoder's missing category was)."""
    by_code: dict[int, Any] = {}
    for category, code in (column.codes or {}).items():
        if int(code) not in by_code or isinstance(category, str):  # "7" rather than the integer key added for it
            by_code[int(code)] = category
    return [by_code.get(k) for k in range(max(by_code, default=-1) + 1)]


def fitted_categories(preprocessor: Any) -> dict[str, list[Any]]:
    """Per column of a fitted ``ColumnTransformer``'s ordinal encoders, its categories in code order."""
    from sklearn.preprocessing import OrdinalEncoder

    found: dict[str, list[Any]] = {}
    for _, transformer, columns in getattr(preprocessor, "transformers_", []):
        if isinstance(transformer, OrdinalEncoder):
            names = [columns] if isinstance(columns, str) else list(columns)
            for column, categories in zip(names, transformer.categories_, strict=True):
                found[column] = list(categories)
    return found


def encode_frame(plan: list[EncodedColumn], frame: pd.DataFrame) -> np.ndarray:
    """The fitted pipeline's matrix for a frame of coerced feature columns, a column at a time.

    Args:
        plan: From :func:`compile_plan`.
        frame: Coerced feature columns (:func:`keel.domain.validation.coerce_features`): numbers as floats,
            categories as text with NaN where missing.
    """
    import numpy as np
    import pandas as pd

    matrix = np.empty((len(frame), len(plan)), dtype=np.float64)
    for j, column in enumerate(plan):
        values = frame[column.name]
        if column.codes is None:
            matrix[:, j] = values.to_numpy(dtype=np.float64, na_value=np.nan)
        elif column.categories is not None:
            codes = pd.Index(column.categories).get_indexer(pd.Index(values))
            matrix[:, j] = np.where(codes < 0, np.nan, codes)  # unknown and missing categories are not found: -1
        else:
            matrix[:, j] = values.map(column.codes).to_numpy(dtype=np.float64, na_value=np.nan)
    return matrix


def transform_frame(preprocessor: Any, encoding: list[EncodedColumn] | None, frame: pd.DataFrame) -> Any:
    """The fitted pipeline's output for coerced feature columns: the compiled ``encoding`` when there is one."""
    return encode_frame(encoding, frame) if encoding is not None else preprocessor.transform(frame)
