"""Serving a model whose recipe declares a serving hook (see :mod:`keel.domain.recipes.serving`).

For such a version ``POST /v1/predict`` takes the hook's own request (the tennis hook: two player names and the
match), one as a JSON object or several as ``{"records": [...]}`` like the generic API. The hook turns each request
into model rows from the state the recipe stored with the version; the rows are scored by the same compiled
:class:`~keel.serving.predictor.Predictor` as any other model, and the hook turns their predictions into the
answer. The stored tables are read from bytes whose sha256 is checked against the verified manifest, so what is
served is exactly what training wrote.

Models without a hook are untouched: they keep the generic request model and fast path.
"""

from __future__ import annotations

import hashlib
import io
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import ConfigDict, Discriminator, Field, Tag, TypeAdapter
from typing_extensions import TypedDict

from keel.domain.recipes.serving import InvalidRequestError, RecipeService, ServiceLookupError, serving_hook
from keel.errors import IntegrityError

if TYPE_CHECKING:
    from pathlib import Path

    from keel.domain.schema import FeatureSchema
    from keel.serving.predictor import Predictor
    from keel.serving.versions import ModelVersion

RECIPE_FOLDER = "recipe/"
CONFIG_FILE = "config.yaml"
_typed_dict: Any = TypedDict


class RecipeRequestError(Exception):
    """A hook request the client must change (unknown or ambiguous name 404/409, unscorable request 422).

    Args:
        status: HTTP status.
        error: One sentence saying what was wrong and what to do.
        detail: One entry per problem: ``field``, ``problem``, ``type`` and, for names, ``candidates``.
    """

    def __init__(self, status: int, error: str, detail: list[dict[str, Any]]) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.detail = detail


@dataclass(frozen=True)
class Answer:
    """What a hook request produced.

    Attributes:
        batch: Whether the body was ``{"records": [...]}``.
        answers: One answer per request, in order.
        rows: Every model row scored (for drift monitoring).
        predictions: The predictor's output for ``rows`` (for metrics and monitoring).
    """

    batch: bool
    answers: list[dict[str, Any]]
    rows: list[dict[str, Any]]
    predictions: list[dict[str, Any]]


@dataclass(frozen=True)
class RecipeEndpoint:
    """A version's serving hook with its request validators and OpenAPI schemas.

    Attributes:
        recipe: The recipe's name.
        service: The hook's service for this version.
        adapter: Validates one request or ``{"records": [...]}``.
        json_schema: The request body's schema (references under ``#/components/schemas/``).
        response_schema: One answer's schema.
        fields: The request's field names (for "did you mean" on an unknown field).
        categorical: Feature columns encoded as categories (rows are written as the training table holds them).
        numeric: Feature columns read as numbers.
    """

    recipe: str
    service: RecipeService
    adapter: TypeAdapter[Any]
    json_schema: dict[str, Any]
    response_schema: dict[str, Any]
    fields: list[str]
    categorical: frozenset[str]
    numeric: frozenset[str]

    @property
    def example(self) -> dict[str, Any]:
        """A real request for ``/docs``."""
        return dict(self.service.example)

    def document(self, operation: dict[str, Any], schemas: dict[str, Any]) -> None:
        """Describe the hook's request, answer and 404/409 errors in the OpenAPI ``POST /v1/predict`` operation.

        Args:
            operation: The operation object (changed in place).
            schemas: ``components.schemas`` (the request's and answer's types are added).
        """
        body = dict(self.json_schema)
        schemas.update(body.pop("$defs", {}))
        answer = dict(self.response_schema)
        schemas.update(answer.pop("$defs", {}))
        example = self.example
        operation["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {
                    "schema": body,
                    "examples": {
                        "one request": {"summary": f"One request ({self.recipe} recipe)", "value": example},
                        "a batch": {"summary": "Several requests", "value": {"records": [example, example]}},
                    },
                }
            },
        }
        operation["summary"] = f'Predict one request ({self.recipe}), or many as {{"records": [...]}}'
        responses = operation.setdefault("responses", {})
        responses["200"] = {
            "description": "One answer, or {model, version, request_id, predictions: [...]} for a batch",
            "content": {"application/json": {"schema": answer}},
        }
        error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}}
        responses["404"] = {"description": "A name is not known; detail lists the closest known names", **error}
        responses["409"] = {"description": "A name matches several entries; detail lists them", **error}

    def validate(self, data: Any) -> tuple[bool, list[Any]]:
        """The validated requests of a parsed body and whether it was a batch.

        Raises:
            pydantic.ValidationError: A field is missing, unknown or invalid.
        """
        payload = self.adapter.validate_python(data)
        if isinstance(payload, dict) and "records" in payload:
            return True, list(payload["records"])
        return False, [payload]

    def answer(
        self, requests: list[Any], batch: bool, predictor: Predictor, *, explain: bool = False, top: int = 5
    ) -> Answer:
        """Resolve, score and answer validated requests.

        Raises:
            RecipeRequestError: A name is unknown (404) or ambiguous (409), or a request cannot be scored (422).
        """
        rows: list[dict[str, Any]] = []
        counts: list[int] = []
        problems: list[tuple[int, dict[str, Any]]] = []
        for index, request in enumerate(requests):
            where = f"records[{index}]." if batch else ""
            try:
                built = self.service.rows(request)
            except ServiceLookupError as error:
                problems.append(
                    (
                        error.status,
                        {
                            "field": f"{where}{error.field}",
                            "problem": str(error),
                            "type": f"{error.kind}_{error.field}",
                            "candidates": error.candidates,
                        },
                    )
                )
                continue
            except InvalidRequestError as error:
                field = f"{where}{error.field}" if error.field else where.rstrip(".")
                problems.append((422, {"field": field, "problem": str(error), "type": "value_error"}))
                continue
            rows.extend(self._as_record(row) for row in built)
            counts.append(len(built))
        if problems:
            raise _request_error(problems)
        predictions = predictor.predict(rows, explain=explain, top=top)
        answers = []
        start = 0
        for request, count in zip(requests, counts, strict=True):
            answers.append(self.service.respond(request, predictions[start : start + count]))
            start += count
        return Answer(batch=batch, answers=answers, rows=rows, predictions=predictions)

    def _as_record(self, row: dict[str, Any]) -> dict[str, Any]:
        """A recipe row as the predictor reads a record: categories spelled as training spelled them, NaN missing.

        The training table went through :func:`keel.domain.validation.coerce_features`, which keys a category held
        as a float by its integer spelling (``3.0`` → ``"3"``); numbers are floats and NaN is missing.
        """
        record: dict[str, Any] = {}
        for name, value in row.items():
            missing = value is None or (isinstance(value, float) and math.isnan(value))
            if missing:
                record[name] = None
            elif name in self.categorical and not isinstance(value, str):
                number = float(value) if isinstance(value, int | float) else math.nan
                record[name] = str(int(number)) if number.is_integer() else str(value)
            elif name in self.numeric:
                record[name] = float(value)
            else:
                record[name] = value
        return record


def _request_error(problems: list[tuple[int, dict[str, Any]]]) -> RecipeRequestError:
    statuses = {status for status, _ in problems}
    # One status for the whole request: an invalid request first, then an unknown name, then an ambiguous one.
    status = 422 if 422 in statuses else 404 if 404 in statuses else 409
    detail = [problem for _, problem in problems]
    first = next(problem for code, problem in problems if code == status)
    more = f" ({len(problems) - 1} more problem(s) in detail)" if len(problems) > 1 else ""
    return RecipeRequestError(status, f"{first['problem']}{more}", detail)


def load_recipe_endpoint(version: ModelVersion, *, max_records: int) -> RecipeEndpoint | None:
    """The serving hook of a version's recipe, or ``None`` when it has none (the generic API serves it).

    Args:
        version: A verified, loaded version (its files on disk).
        max_records: Most requests in one ``{"records": [...]}`` body.

    Raises:
        IntegrityError: A stored recipe table or the config does not match the manifest.
        KeelError: The hook cannot be imported or refuses the stored tables.
    """
    import pandas as pd
    import yaml

    directory = version.directory
    files = version.manifest.get("files") or {}
    if directory is None or CONFIG_FILE not in files:
        return None
    config = yaml.safe_load(_verified_bytes(directory, files, CONFIG_FILE)) or {}
    recipe = (config.get("data") or {}).get("recipe") if isinstance(config, dict) else None
    factory = serving_hook(recipe)
    if factory is None:
        return None
    tables = {
        name.removeprefix(RECIPE_FOLDER).removesuffix(".parquet"): pd.read_parquet(
            io.BytesIO(_verified_bytes(directory, files, name))
        )
        for name in sorted(files)
        if name.startswith(RECIPE_FOLDER) and name.endswith(".parquet")
    }
    schema = version.model.schema
    service = factory(tables, schema)
    return _endpoint(str(recipe), service, schema, max_records=max_records)


def _verified_bytes(directory: Path, files: dict[str, str], name: str) -> bytes:
    """A file's bytes, checked against the manifest's sha256 (read once, so what is checked is what is used)."""
    data = (directory / name).read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != files.get(name):
        raise IntegrityError(
            f"{directory / name}: sha256 {actual} does not match the manifest's {files.get(name)}; "
            "the file was changed or corrupted after training"
        )
    return data


def _endpoint(recipe: str, service: RecipeService, schema: FeatureSchema, *, max_records: int) -> RecipeEndpoint:
    request = service.request_type
    title = str(request.model_config.get("title") or request.__name__)
    batch = _typed_dict(
        f"{title}Batch",
        {
            "records": Annotated[
                list[request],  # type: ignore[valid-type]
                Field(min_length=1, max_length=max_records, description=f"1 to {max_records:,} requests"),
            ]
        },
    )
    batch.__pydantic_config__ = ConfigDict(
        extra="forbid", title=f"{title}Batch", json_schema_extra={"examples": [{"records": [service.example]}]}
    )
    body = Annotated[
        Annotated[request, Tag("record")] | Annotated[batch, Tag("batch")],  # type: ignore[valid-type]
        Discriminator(_kind),
    ]
    adapter: TypeAdapter[Any] = TypeAdapter(body)
    reference = "#/components/schemas/{model}"
    features = schema.features
    return RecipeEndpoint(
        recipe=recipe,
        service=service,
        adapter=adapter,
        json_schema=adapter.json_schema(ref_template=reference),
        response_schema=TypeAdapter(service.response_type).json_schema(ref_template=reference),
        fields=list(request.model_fields),
        categorical=frozenset(c.name for c in features if c.type == "categorical"),
        numeric=frozenset(c.name for c in features if c.type in ("numeric", "boolean")),
    )


def _kind(value: Any) -> str:
    return "batch" if isinstance(value, dict) and isinstance(value.get("records"), list) else "record"
