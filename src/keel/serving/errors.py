"""How the service answers a request it refuses: one JSON shape for every 4xx (``error``, ``detail``, ``request_id``).

Client mistakes are always 4xx with the field path and what to do. Request bodies and keys are never logged.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

from keel.serving.contract import ErrorResponse

REQUEST_ID_KEY = "keel.request_id"
"""Where the gateway keeps the request id in the ASGI scope."""
JSON = "application/json"

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "The body is not valid JSON"},
    401: {"model": ErrorResponse, "description": "Missing or wrong API key (when keys are set)"},
    408: {"model": ErrorResponse, "description": "The body did not arrive in time"},
    413: {"model": ErrorResponse, "description": "The body is over the size limit"},
    415: {"model": ErrorResponse, "description": "The body is not declared as application/json"},
    422: {"model": ErrorResponse, "description": "A field is missing, unknown, of the wrong type or not finite"},
}
"""The refusals ``POST /v1/predict`` documents (in the OpenAPI document)."""


class ClientError(Exception):
    """A request the client must change; becomes a 4xx response.

    Args:
        status: HTTP status.
        error: One sentence saying what was wrong and what to do.
        detail: Field-level problems.
    """

    def __init__(self, status: int, error: str, detail: list[dict[str, Any]] | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.detail = detail or []


def validation_problems(error: ValidationError, fields: Sequence[str]) -> list[dict[str, str]]:
    """Each refused field of a request body: its path, what was wrong, and pydantic's error type."""
    fields = list(fields)
    problems = []
    for item in error.errors(include_url=False):
        loc = list(item["loc"])
        if loc and loc[0] in ("record", "batch", "columns"):
            loc = loc[1:]
        path = field_path(loc)
        kind = item["type"]
        if kind == "missing":
            problem = (
                "required column is missing (the field had no missing values in training)"
                if path.startswith("columns.")
                else "required field is missing"
            )
        elif kind == "extra_forbidden":
            close = difflib.get_close_matches(str(loc[-1]), fields, n=1) if loc else []
            problem = "unknown field" + (
                f"; did you mean {close[0]!r}?" if close else f"; the fields are: {', '.join(fields)}"
            )
        elif kind in ("dict_type", "model_type", "typed_dict_type") and not loc:
            problem = 'the body must be one record (a JSON object), {"records": [...]} or {"columns": {...}}'
        elif item.get("input", "") is None:
            problem = "null is not allowed here (the field had no missing values in training); send a value"
        else:
            problem = f"{item['msg']}, got {_shown(item.get('input'))}"
        problems.append({"field": path, "problem": problem, "type": kind})
    return problems


def field_path(loc: Sequence[Any]) -> str:
    """A pydantic error location as the field path users write (``records[2].age``)."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            name = str(part) if len(str(part)) <= 100 else f"{str(part)[:97]}…"  # a huge unknown key is not echoed
            text += f".{name}" if text else name
    return text


def _shown(value: Any) -> str:
    if isinstance(value, float | int | bool) or value is None:
        return json.dumps(value)
    if isinstance(value, str):
        text = json.dumps(value)
        return text if len(text) <= 60 else text[:57] + '…"'
    return f"a JSON {'array' if isinstance(value, list) else 'object' if isinstance(value, dict) else 'value'}"


def error_response(status: int, error: str, detail: list[dict[str, Any]], scope: Scope) -> Response:
    """The JSON refusal every 4xx uses, carrying the request id."""
    document = {"error": error, "detail": detail, "request_id": scope.get(REQUEST_ID_KEY)}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return Response(json.dumps(document), status_code=status, media_type=JSON, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Answer :class:`ClientError`, invalid query parameters and unknown routes with :func:`error_response`."""

    async def client_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ClientError)  # noqa: S101 - registered for this type only
        return error_response(exc.status, exc.error, exc.detail, request.scope)

    async def query_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for this type only
        detail = [
            {"field": field_path(list(e["loc"])), "problem": str(e["msg"]), "type": str(e["type"])}
            for e in exc.errors()
        ]
        return error_response(422, "the request has invalid parameters; see detail", detail, request.scope)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)  # noqa: S101 - registered for this type only
        messages = {404: f"no route {request.url.path}; see /docs", 405: f"{request.method} is not allowed here"}
        error = messages.get(exc.status_code, str(exc.detail))
        response = error_response(exc.status_code, error, [], request.scope)
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    app.add_exception_handler(ClientError, client_error)
    app.add_exception_handler(RequestValidationError, query_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
