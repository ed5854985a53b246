"""The service's request and response types, built from a model's feature schema.

A record is a ``TypedDict`` keyed by the training columns' own names (so any column name works, and validation
returns plain dicts the predictor reads directly): numbers are strict finite numbers, categories are strings
(the categories seen in training are listed in the field's description and examples, not enforced: an unseen
category is scored with a warning), features that had missing values in training are optional, id columns are
passed through, and the sample-weight column (``data.weight``) is accepted and ignored. Unknown fields are refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Annotated, Any, Literal, NotRequired

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictInt,
    StrictStr,
    StringConstraints,
    Tag,
    TypeAdapter,
)
from typing_extensions import TypedDict

from keel.domain.schema import ColumnSchema, FeatureSchema

# pydantic needs typing_extensions' TypedDict before Python 3.12; built at run time from the schema, so typed loosely.
_typed_dict: Any = TypedDict

SHOWN_CATEGORIES = 50
"""Categories listed in a field's description (the rest are summarised)."""
MAX_VALUE_CHARS = 1_000
"""Longest category, date or id string accepted (longer is refused with 422: it cannot be a category seen in
training, and it would be echoed back in a warning)."""
MAX_TEXT_CHARS = 100_000
"""Longest free-text value accepted."""

_Short = Annotated[StrictStr, StringConstraints(max_length=MAX_VALUE_CHARS)]

WEIGHT_DESCRIPTION = "The sample weight the model was trained with (data.weight): accepted and ignored"


@dataclass(frozen=True)
class RequestTypes:
    """Validators and OpenAPI schema for one model version's requests.

    Attributes:
        adapter: Validates a parsed JSON body (one record or ``{"records": [...]}``) into plain dicts.
        json_schema: The body's JSON schema, with references under ``#/components/schemas/``.
        record_title: The record type's name in the OpenAPI document.
        fast_batch: Accepts a batch body column by column without pydantic (see :class:`BatchAcceptor`).
    """

    adapter: TypeAdapter[Any]
    json_schema: dict[str, Any]
    record_title: str
    fast_batch: BatchAcceptor


def _title(model_name: str) -> str:
    words = "".join(ch if ch.isalnum() else " " for ch in model_name).split()
    return "".join(word[:1].upper() + word[1:] for word in words) or "Model"


def _field_type(column: ColumnSchema) -> Any:
    if column.type == "numeric":
        description = "A number"
        if column.min is not None and column.max is not None:
            description += f" (training range {column.min:g} to {column.max:g})"
        return Annotated[float, Field(strict=True, allow_inf_nan=False, description=description)]
    if column.type == "boolean":
        return Annotated[bool, Field(description="true or false")]
    if column.type == "categorical":
        categories = column.categories or []
        shown = ", ".join(categories[:SHOWN_CATEGORIES])
        more = f" and {len(categories) - SHOWN_CATEGORIES} more" if len(categories) > SHOWN_CATEGORIES else ""
        description = (
            f"A category; seen in training: {shown}{more}. Another value is scored as missing, with a warning."
            if categories
            else "A category."
        )
        integral = bool(categories) and all(c.lstrip("-").isdigit() for c in categories)
        base: Any = _Short | StrictInt if integral else _Short
        return Annotated[base, Field(description=description, examples=categories[:5] or None)]
    if column.type == "datetime":
        return Annotated[str, Field(strict=True, max_length=MAX_VALUE_CHARS, description="A date or time (ISO 8601)")]
    return Annotated[str, Field(strict=True, max_length=MAX_TEXT_CHARS, description="Free text")]


def build_request_types(schema: FeatureSchema, *, model_name: str, max_records: int) -> RequestTypes:
    """Build the request validators and OpenAPI schema for a feature schema.

    Args:
        schema: The model version's feature schema.
        model_name: Registered model name (names the OpenAPI types).
        max_records: Most records one request may hold.
    """
    title = _title(model_name)
    fields: dict[str, Any] = {}
    for column in schema.features:
        kind = _field_type(column)
        fields[column.name] = NotRequired[kind | None] if column.missing_rate > 0 else kind
    for name in schema.id_names:
        fields[name] = NotRequired[
            Annotated[_Short | StrictInt | None, Field(description="An id, returned with the prediction")]
        ]
    if schema.weight_name is not None:
        fields[schema.weight_name] = NotRequired[Annotated[float | None, Field(description=WEIGHT_DESCRIPTION)]]
    record = _typed_dict(f"{title}Record", fields)
    example = {k: v for k, v in schema.example.items() if k in fields}
    record.__pydantic_config__ = ConfigDict(
        extra="forbid", title=f"{title}Record", json_schema_extra={"examples": [example]} if example else None
    )
    batch = _typed_dict(
        f"{title}Batch",
        {
            "records": Annotated[
                list[record],  # type: ignore[valid-type]
                Field(min_length=1, max_length=max_records, description=f"1 to {max_records:,} records"),
            ]
        },
    )
    batch.__pydantic_config__ = ConfigDict(
        extra="forbid", title=f"{title}Batch", json_schema_extra={"examples": [{"records": [example]}]}
    )
    table = _columns_type(schema, title, example, max_records)
    body = Annotated[
        Annotated[record, Tag("record")]  # type: ignore[valid-type]
        | Annotated[batch, Tag("batch")]  # type: ignore[valid-type]
        | Annotated[table, Tag("columns")],  # type: ignore[valid-type]
        Discriminator(_kind),
    ]
    adapter: TypeAdapter[Any] = TypeAdapter(body)
    json_schema = adapter.json_schema(ref_template="#/components/schemas/{model}")
    return RequestTypes(
        adapter=adapter,
        json_schema=json_schema,
        record_title=f"{title}Record",
        fast_batch=BatchAcceptor(schema, max_records=max_records),
    )


class _Absent:
    """Marks a field a record does not have (``None`` is a value a record may send)."""


_ABSENT = _Absent()


@dataclass(frozen=True)
class _FieldRule:
    """What :class:`BatchAcceptor` lets through for one field without asking pydantic."""

    name: str
    types: frozenset[type]
    max_chars: int


class BatchAcceptor:
    """Accepts a ``{"records": [...]}`` body by looking at each field's column once, or says "ask pydantic".

    pydantic validates a record at a time; for a batch of a thousand records that is most of a request's cost.
    This looks at a batch column by column with C-level loops (``map(type, ...)``, ``list.count``) and accepts it
    only when every value is of a type the record model takes as it is: numbers that are ``int`` or ``float``,
    categories that are short strings (or integers for integer-like categories), ``true``/``false`` for booleans,
    ``null`` only where the training data had missing values, and no unknown field. Anything else (including what
    pydantic would accept after conversion, such as ``1`` for a boolean) gets ``None`` back, and the caller runs
    pydantic, which gives the exact answer and error messages. So it never accepts a batch pydantic refuses; it
    may send an acceptable one the slow way.

    The one difference in what comes out: an integer sent for a numeric field stays an integer here where pydantic
    returns a float. The predictor's matrix is the same either way; the service uses pydantic when it echoes values
    back (``?explain=true``).

    Only for bodies parsed by a parser that refuses ``NaN``, ``Infinity`` and out-of-range numbers (orjson), as the
    service's fast path does: a non-finite float is not looked for here.

    Args:
        schema: The model version's feature schema.
        max_records: Most records one request may hold.
    """

    def __init__(self, schema: FeatureSchema, *, max_records: int) -> None:
        self.max_records = max_records
        ids = frozenset({str, int, type(None), _Absent})
        self.rules = [_rule(column) for column in schema.features] + [
            _FieldRule(name, ids, MAX_VALUE_CHARS) for name in schema.id_names
        ]
        if schema.weight_name is not None:  # accepted (and ignored) like an optional number
            self.rules.append(_FieldRule(schema.weight_name, frozenset({int, float, type(None), _Absent}), 0))
        self.names = [rule.name for rule in self.rules]
        self._every_field = itemgetter(*self.names) if len(self.names) > 1 else None

    def __call__(self, body: Any) -> tuple[list[dict[str, Any]], dict[str, Sequence[Any]]] | None:
        """The records and their columns (field → values, ``None`` where missing), or ``None``: ask pydantic.

        Args:
            body: A parsed JSON body.
        """
        if type(body) is not dict or len(body) != 1 or type(records := body.get("records")) is not list:
            return None
        count = len(records)
        if not 1 <= count <= self.max_records or set(map(type, records)) != {dict}:
            return None
        if self._every_field is not None:
            try:  # the common case, every record sending every field: one C-level pass over the records
                rows = list(map(self._every_field, records))
            except KeyError:
                pass
            else:
                if sum(map(len, records)) != count * len(self.rules):
                    return None  # some record has a field that is not in the schema
                columns: dict[str, Sequence[Any]] = dict(zip(self.names, zip(*rows, strict=True), strict=True))
                return (records, columns) if all(map(_passes, self.rules, columns.values())) else None
        sent = sum(map(len, records))
        columns = {}
        for rule in self.rules:
            values = [record.get(rule.name, _ABSENT) for record in records]
            absent = values.count(_ABSENT)
            sent -= count - absent
            if not _passes(rule, values):  # also refuses absence where the field is required
                return None
            columns[rule.name] = [None if v is _ABSENT else v for v in values] if absent else values
        if sent:  # some record has a field that is not in the schema
            return None
        return records, columns


def _passes(rule: _FieldRule, values: Sequence[Any]) -> bool:
    """Whether every value of one field is of a type its rule lets through (and short enough)."""
    types = set(map(type, values))
    if not types <= rule.types:
        return False
    if str in types and rule.max_chars:
        texts = values if len(types) == 1 else [v for v in values if type(v) is str]
        return max(map(len, texts)) <= rule.max_chars
    return True


def _rule(column: ColumnSchema) -> _FieldRule:
    """The types a feature's values may have to pass :class:`BatchAcceptor` (mirrors :func:`_field_type`)."""
    optional = column.missing_rate > 0
    chars = 0
    if column.type == "numeric":
        types: set[type] = {int, float}
    elif column.type == "boolean":
        types = {bool}
    elif column.type == "categorical":
        categories = column.categories or []
        integral = bool(categories) and all(c.lstrip("-").isdigit() for c in categories)
        types = {str, int} if integral else {str}
        chars = MAX_VALUE_CHARS
    else:
        types = {str}
        chars = MAX_VALUE_CHARS if column.type == "datetime" else MAX_TEXT_CHARS
    if optional:
        types |= {type(None), _Absent}
    return _FieldRule(column.name, frozenset(types), chars)


def _columns_type(schema: FeatureSchema, title: str, example: dict[str, Any], max_records: int) -> Any:
    """``{"columns": {field: [values]}}``: the same fields as a record, one list per field, one value per record."""
    limits = Field(min_length=1, max_length=max_records, description=f"1 to {max_records:,} values, one per record")
    fields: dict[str, Any] = {}
    for column in schema.features:
        kind = _field_type(column)
        if column.missing_rate > 0:
            fields[column.name] = NotRequired[Annotated[list[kind | None], limits]]  # type: ignore[valid-type]
        else:
            fields[column.name] = Annotated[list[kind], limits]  # type: ignore[valid-type]
    for name in schema.id_names:
        fields[name] = NotRequired[Annotated[list[_Short | StrictInt | None], limits]]
    if schema.weight_name is not None:
        fields[schema.weight_name] = NotRequired[Annotated[list[float | None], limits]]
    columns = _typed_dict(f"{title}Columns", fields)
    columns.__pydantic_config__ = ConfigDict(extra="forbid", title=f"{title}Columns")
    table = _typed_dict(
        f"{title}Table",
        {
            "columns": Annotated[
                columns,
                Field(
                    description="One list per field, all of the same length (a field left out is missing in every "
                    "record, where the model allows it); the answer comes back in columns too"
                ),
            ]
        },
    )
    shown: dict[str, Any] = {name: [value] for name, value in example.items()}
    table.__pydantic_config__ = ConfigDict(
        extra="forbid", title=f"{title}Table", json_schema_extra={"examples": [{"columns": shown}]}
    )
    return table


def _kind(value: Any) -> str:
    """``batch`` for ``{"records": [...]}``, ``columns`` for ``{"columns": {...}}``, else ``record``."""
    if isinstance(value, dict):
        if isinstance(value.get("records"), list):
            return "batch"
        if isinstance(value.get("columns"), dict):
            return "columns"
    return "record"


class FieldWarning(BaseModel):
    """A value outside what the model saw in training; the prediction was still made."""

    field: str = Field(description="The request field")
    problem: str = Field(description="What was unusual about its value")


class Contribution(BaseModel):
    """One feature's contribution to a prediction (LightGBM's SHAP value)."""

    feature: str
    value: Any = Field(description="The value sent for the feature")
    contribution: float = Field(description="Contribution to the raw score (log-odds for classifiers)")


class Explanation(BaseModel):
    """The largest feature contributions of one prediction."""

    base_value: float = Field(description="The model's expected raw score")
    unit: str
    contributions: list[Contribution]


class Prediction(BaseModel):
    """The prediction for one record."""

    label: Any = Field(default=None, description="The most probable class (classification)")
    probabilities: dict[str, float] | None = Field(default=None, description="Probability per class")
    value: float | None = Field(default=None, description="The predicted value (regression)")
    warnings: list[FieldWarning] = Field(default_factory=list)
    ids: dict[str, Any] | None = Field(default=None, description="The record's id fields, passed through")
    explanation: Explanation | None = Field(default=None, description="With ?explain=true (LightGBM models)")


class SinglePrediction(Prediction):
    """The response to one record."""

    model: str
    version: int
    request_id: str


class BatchPrediction(BaseModel):
    """The response to ``{"records": [...]}``: one prediction per record, in order."""

    model: str
    version: int
    request_id: str
    predictions: list[Prediction]


class ColumnPredictions(BaseModel):
    """Predictions in columns: one value per record, in the order sent."""

    label: list[Any] | None = Field(default=None, description="The most probable class of each record")
    probabilities: dict[str, list[float]] | None = Field(
        default=None, description="Class → the probability of that class for each record"
    )
    value: list[float] | None = Field(default=None, description="The predicted value of each record (regression)")
    ids: dict[str, list[Any]] | None = Field(default=None, description="Id column → the values sent")
    explanations: list[Explanation] | None = Field(
        default=None, description="With ?explain=true (LightGBM models): one per record"
    )


class RecordWarning(FieldWarning):
    """A value outside what the model saw in training, in a columnar request."""

    record: int | None = Field(
        description="Index of the record (0 is the first value of every column); null for the whole request"
    )


class ColumnsPrediction(BaseModel):
    """The response to ``{"columns": {...}}``."""

    model: str
    version: int
    request_id: str
    predictions: ColumnPredictions
    warnings: list[RecordWarning] = Field(default_factory=list)


class ProblemDetail(BaseModel):
    """One thing wrong with a request."""

    field: str = Field(description="Path of the field, e.g. records[3].age (empty for the whole body)")
    problem: str
    type: str
    candidates: list[str] | None = Field(
        default=None, description="Known names meant, closest first (unknown or ambiguous names, recipe services)"
    )


class ErrorResponse(BaseModel):
    """Every error response."""

    error: str
    detail: list[ProblemDetail] = Field(default_factory=list)
    request_id: str | None = None


class ReloadResponse(BaseModel):
    """What ``POST /v1/admin/reload`` did."""

    status: Literal["unchanged", "swapped", "refused"]
    version: int
    previous: int | None = None
    reason: str = ""
