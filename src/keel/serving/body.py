"""Reading a request body: declared as JSON, within the size limit and time, parsed exactly once, rendered back.

orjson parses plain bodies fast; anything it cannot prove unambiguous (a repeated key, NaN, huge integers) is parsed
again by the standard library, which names the exact problem (see :func:`parse_json`).
"""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from fastapi import Request
from pydantic import ValidationError
from starlette.requests import ClientDisconnect

from keel.serving.errors import JSON, ClientError, validation_problems

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
BODY_TIMEOUT_SECONDS = 10.0
"""Longest wait for the rest of a request body once it has started (a stalled or slow-loris client gets 408)."""
BODY_HINT = 'send one record as a JSON object, or several as {"records": [...]}'
_T = TypeVar("_T")


def require_json(request: Request) -> None:
    """Refuse a body not declared as JSON (it also keeps browsers from posting here cross-site without a preflight)."""
    declared = request.headers.get("content-type", "")
    media_type = declared.split(";", 1)[0].strip().lower()
    if media_type != JSON and not (media_type.startswith("application/") and media_type.endswith("+json")):
        shown = f"{declared[:60]!r}" if declared else "none"
        raise ClientError(415, f"the body must be sent as 'Content-Type: application/json' (got {shown})")


async def read_body(request: Request, limit: int, timeout: float = BODY_TIMEOUT_SECONDS) -> bytes:
    """The request body: 413 over ``limit`` bytes, 408 when it stalls, 400 when the client goes away."""
    try:
        async with asyncio.timeout(timeout):
            return await _read_limited(request, limit)
    except TimeoutError:
        raise ClientError(
            408, f"the request body did not arrive within {timeout:g} seconds; send it in one go"
        ) from None
    except ClientDisconnect:
        # Nobody is left to answer; a 4xx keeps it out of the error log and the 5xx count.
        raise ClientError(400, "the client disconnected before the body was complete") from None


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    # The ASGI messages themselves (what Request.stream() reads, without its async generator per request).
    chunks = []
    size = 0
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(limit: int) -> ClientError:
    return ClientError(413, f"the body is over the {limit:,}-byte limit; send fewer records per request")


@dataclass
class Body:
    """A parsed request body.

    Attributes:
        raw: The bytes received.
        data: The parsed document.
        fast: Whether orjson parsed it. Its document has unique keys (see :func:`parse_json`) and finite numbers,
            but it reads an integer beyond 64 bits as a float, so a validation that refuses it is run again on the
            exact document (:meth:`validated`). A document that validates is the same either way: such a float is
            only accepted where a float is, and it equals the integer's conversion.
    """

    raw: bytes
    data: Any
    fast: bool

    def validated(self, validate: Callable[[Any], _T]) -> _T:
        """``validate(data)``, deciding on the exactly parsed document when the fast one is refused."""
        try:
            return validate(self.data)
        except ValidationError:
            if not self.fast:
                raise
        self.data, self.fast = _parse_json_exactly(self.raw), False
        return validate(self.data)


def parse_json(body: bytes) -> Body:
    """The parsed body; orjson's fast parse when it is plain (unique keys, finite numbers).

    orjson parses well-formed bodies (two to three times as fast as the standard library) but lets a repeated key
    win silently. Counting colons proves there is none: every key in the text is followed by one colon outside
    strings, so when the body holds no more colons than keys were parsed, no key was repeated (and no string holds
    a colon). Otherwise, and for anything orjson refuses (NaN, 1e309, invalid UTF-8, deep nesting), the standard
    library parses the body again with a duplicate-key check and names the exact problem.
    """
    if not body.strip():
        raise ClientError(400, f"the body is empty; {BODY_HINT}")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    else:
        if body.count(b":") == _keys_parsed(data):
            return Body(body, data, fast=True)
    return Body(body, _parse_json_exactly(body), fast=False)


def _keys_parsed(data: Any) -> int:
    """Keys of the body's object and of its records (never more than the parsed document holds)."""
    if type(data) is not dict:
        return 0
    records = data.get("records")
    if type(records) is list and set(map(type, records)) == {dict}:
        return len(data) + sum(map(len, records))
    columns = data.get("columns")
    return len(data) + (len(columns) if type(columns) is dict else 0)


def render(document: Any) -> bytes:
    """A response document as JSON (numpy values as numbers).

    A string echoed from the request may hold a lone surrogate (an escaped U+D800 is valid JSON but not UTF-8),
    which orjson refuses; the standard library writes it back escaped, as it came.
    """
    try:
        return orjson.dumps(document, default=_json_default, option=orjson.OPT_SERIALIZE_NUMPY)
    except orjson.JSONEncodeError:
        return json.dumps(document, default=_json_default).encode()


def _parse_json_exactly(body: bytes) -> Any:
    try:
        return json.loads(body, object_pairs_hook=_unique_keys)
    except _DuplicateKeyError as error:
        raise ClientError(400, f"the body repeats the key {error.key!r} in one object; send each field once") from None
    except json.JSONDecodeError as error:
        raise ClientError(
            400, f"the body is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno}); {BODY_HINT}"
        ) from None
    except (ValueError, RecursionError) as error:
        raise ClientError(400, f"the body is not valid JSON ({error}); {BODY_HINT}") from None


class _DuplicateKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key[:60]


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object from its key/value pairs, refusing a repeated key (parsers disagree on which one wins)."""
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKeyError(key)
            seen.add(key)
    return document


def column_length(columns: dict[str, list[Any]]) -> int:
    """Records in a columnar body; 422 unless every column holds the same number of values."""
    lengths = {name: len(values) for name, values in columns.items()}
    if not lengths:
        raise ClientError(422, 'the body has no columns; send {"columns": {"field": [values], ...}}')
    common = collections.Counter(lengths.values()).most_common(1)[0][0]
    odd = [
        {
            "field": f"columns.{name}",
            "problem": f"{length:,} values where the other columns have {common:,}",
            "type": "column_length",
        }
        for name, length in lengths.items()
        if length != common
    ]
    if odd:
        raise ClientError(422, "every column must hold one value per record; see detail", odd)
    return common


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def validated(body: Body, validate: Callable[[Any], _T], fields: list[str]) -> _T:
    """``validate`` applied to the body; a refusal is a 422 naming each field and what was wrong with it."""
    try:
        return body.validated(validate)
    except ValidationError as error:
        problems = validation_problems(error, fields)
        raise ClientError(422, "the request has invalid fields; see detail", problems) from None
