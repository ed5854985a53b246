"""The service's request and response types, built from a model's feature schema.

A record is a ``TypedDict`` keyed by the training columns' own names (so any column name works, and validation
returns plain dicts the predictor reads directly): numbers are strict finite numbers, categories are strings
(the categories seen in training are listed in the field's description and examples, not enforced: an unseen
category is scored with a warning), features that had missing values in training are optional, id columns are
passed through. Unknown fields are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class RequestTypes:
    """Validators and OpenAPI schema for one model version's requests.

    Attributes:
        adapter: Validates a parsed JSON body (one record or ``{"records": [...]}``) into plain dicts.
        json_schema: The body's JSON schema, with references under ``#/components/schemas/``.
        record_title: The record type's name in the OpenAPI document.
    """

    adapter: TypeAdapter[Any]
    json_schema: dict[str, Any]
    record_title: str


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
    body = Annotated[
        Annotated[record, Tag("record")] | Annotated[batch, Tag("batch")],  # type: ignore[valid-type]
        Discriminator(_kind),
    ]
    adapter: TypeAdapter[Any] = TypeAdapter(body)
    json_schema = adapter.json_schema(ref_template="#/components/schemas/{model}")
    return RequestTypes(adapter=adapter, json_schema=json_schema, record_title=f"{title}Record")


def _kind(value: Any) -> str:
    """``batch`` for ``{"records": [...]}``, else ``record``."""
    return "batch" if isinstance(value, dict) and isinstance(value.get("records"), list) else "record"


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
