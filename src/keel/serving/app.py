"""The prediction service: a FastAPI app built around one :class:`~keel.serving.swap.ModelSource`.

Routes: ``POST /v1/predict``, ``GET /v1/model``, ``POST /v1/admin/reload``, ``GET /health``, ``GET /ready``,
``GET /metrics`` (plus ``/docs`` and ``/openapi.json``, whose request model follows the served version).

Client mistakes are always 4xx with the field path and what to do: malformed JSON or a repeated key 400, missing or
wrong API key 401, a body that stalls 408, body over the limit 413, a body not sent as JSON 415, invalid fields or
too many records 422. Request bodies and keys are never logged.
"""

from __future__ import annotations

import asyncio
import collections
import difflib
import hmac
import json
import logging
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import PlainTextResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keel import __version__
from keel.errors import KeelError
from keel.serving.contract import (
    BatchPrediction,
    ColumnsPrediction,
    ErrorResponse,
    ReloadResponse,
    SinglePrediction,
)
from keel.serving.contract import _kind as body_kind
from keel.serving.insights import DEFAULT_WINDOW, DriftMonitor, install_insight_routes
from keel.serving.monitoring import CONTENT_TYPE, ServiceMetrics
from keel.serving.prediction_log import DEFAULT_ROTATE_SECONDS, PredictionLog
from keel.serving.recipe import RecipeEndpoint, RecipeRequestError
from keel.serving.swap import DEFAULT_MAX_RECORDS, ModelSource, ModelSwapper, ModelVersion, ServedModel, serve_model
from keel.serving.traffic import Traffic

log = logging.getLogger(__name__)

API_KEYS_ENV = "KEEL_API_KEYS"
API_KEYS_FILE_ENV = "KEEL_API_KEYS_FILE"
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
BODY_TIMEOUT_SECONDS = 10.0
"""Longest wait for the rest of a request body once it has started (a stalled or slow-loris client gets 408)."""
DEFAULT_POLL_SECONDS = 10.0
THREADPOOL_RECORDS = 256
THREADPOOL_EXPLAIN_RECORDS = 8
"""Explained records from which a request is scored in a worker thread (contributions cost ~10× a prediction)."""
DEFAULT_MAX_EXPLAIN_RECORDS = 100
"""Most records one ``?explain=true`` request may hold (``keel serve --max-explain-records``)."""
"""Requests with at least this many records are scored in a worker thread, so small requests are not held up."""
OPEN_PATHS = frozenset({"/health", "/ready"})
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_REQUEST_ID_KEY = "keel.request_id"
_JSON = "application/json"
_T = TypeVar("_T")
_NO_CONTRIBUTIONS = {"field": "explain", "problem": "this model's estimator has no per-feature contributions"}
_BODY_HINT = 'send one record as a JSON object, or several as {"records": [...]}'


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


def api_keys_from_environment() -> list[str]:
    """Keys listed (comma-separated) in ``KEEL_API_KEYS`` and in the file ``KEEL_API_KEYS_FILE`` names.

    The file holds keys separated by commas or new lines (``#`` starts a comment), e.g. a mounted secret. No keys
    at all means authentication is off. Keys are never read from a configuration file or the command line, so they
    cannot end up in MLflow parameters, shell history or ``ps``.

    Raises:
        KeelError: ``KEEL_API_KEYS_FILE`` is set but the file cannot be read, or holds no key (the message names
            the file, never its content).
    """
    keys = [key.strip() for key in os.environ.get(API_KEYS_ENV, "").split(",") if key.strip()]
    named = os.environ.get(API_KEYS_FILE_ENV, "").strip()
    if named:
        try:
            text = Path(named).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else type(error).__name__
            raise KeelError(f"{API_KEYS_FILE_ENV}={named}: cannot read the API key file ({reason})") from None
        lines = (line.split("#", 1)[0] for line in text.splitlines())
        found = [key.strip() for line in lines for key in line.split(",") if key.strip()]
        if not found:
            raise KeelError(f"{API_KEYS_FILE_ENV}={named}: the file holds no API key; authentication would be off")
        keys += found
    return keys


def create_app(
    source: ModelSource,
    *,
    api_keys: Sequence[str] | None = None,
    poll_interval: float = DEFAULT_POLL_SECONDS,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_records: int = DEFAULT_MAX_RECORDS,
    max_explain_records: int = DEFAULT_MAX_EXPLAIN_RECORDS,
    explain_top: int = 5,
    monitor_window: int = DEFAULT_WINDOW,
    drift_threshold: float = 0.2,
    log_dir: Path | None = None,
    log_rotate_seconds: float = DEFAULT_ROTATE_SECONDS,
    shadow: ModelSource | None = None,
    canary: ModelSource | None = None,
    canary_percent: float = 0.0,
) -> FastAPI:
    """Build the service for the model ``source`` points at, loading and verifying it now.

    Args:
        source: Where the model comes from.
        api_keys: Accepted keys; ``None`` reads ``KEEL_API_KEYS``; empty turns authentication off.
        poll_interval: Seconds between checks for a new version of the followed alias (0 turns polling off).
        max_body_bytes: Largest request body accepted (413 above).
        max_records: Most records in one request (422 above).
        max_explain_records: Most records in one ``?explain=true`` request (422 above): contributions cost about
            ten times a prediction, so one large explain request would hold a worker for seconds.
        explain_top: Feature contributions reported per record with ``?explain=true``.
        monitor_window: Most recent records kept for drift monitoring (``GET /v1/monitoring``).
        drift_threshold: PSI at or above which a feature is reported as drifting.
        log_dir: Folder for the prediction log (every answered and shadow record); ``None`` logs nothing.
        log_rotate_seconds: A log file is completed this long after its first row (the most a hard kill loses).
        shadow: A second version that scores every request off the response path (see keel.serving.traffic).
        canary: A version that answers ``canary_percent`` of requests.
        canary_percent: Share of requests (0–100) the canary answers.

    Returns:
        The app; polling starts and stops with its lifespan.

    Raises:
        KeelError: The model cannot be found or fails verification.
    """
    keys = [k.encode() for k in (api_keys_from_environment() if api_keys is None else api_keys) if k]
    metrics = ServiceMetrics()

    def swapper_for(origin: ModelSource, role: str) -> ModelSwapper:
        def build(version: ModelVersion) -> ServedModel:
            return serve_model(version, alias=origin.alias, max_records=max_records)

        def swapped(served: ServedModel) -> None:
            metrics.served(served.name, served.version, served.alias, role)

        loaded = ModelSwapper(source=origin, build=build, on_swap=swapped)
        loaded.load_initial()
        return loaded

    swapper = swapper_for(source, "primary")
    traffic = Traffic(
        swapper,
        metrics,
        canary=swapper_for(canary, "canary") if canary is not None else None,
        canary_percent=canary_percent,
        shadow=swapper_for(shadow, "shadow") if shadow is not None else None,
        prediction_log=(
            PredictionLog(log_dir, rotate_seconds=log_rotate_seconds, on_drop=metrics.log_dropped.inc)
            if log_dir is not None
            else None
        ),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        traffic.start(poll_interval)
        try:
            yield
        finally:
            traffic.stop()
            metrics.close()

    app = FastAPI(
        title="keel prediction service",
        version=__version__,
        description=f"Predictions from `{source.reference}`. Fields are typed from the model's feature schema.",
        lifespan=lifespan,
    )
    app.state.swapper = swapper
    app.state.metrics = metrics
    app.state.traffic = traffic

    def served_now() -> ServedModel:
        current = swapper.current
        assert current is not None  # noqa: S101 - loaded above, before the app exists
        return current

    monitor = DriftMonitor(served_now, window=monitor_window, threshold=drift_threshold)

    errors = {
        400: {"model": ErrorResponse, "description": "The body is not valid JSON"},
        401: {"model": ErrorResponse, "description": "Missing or wrong API key (when keys are set)"},
        408: {"model": ErrorResponse, "description": "The body did not arrive in time"},
        413: {"model": ErrorResponse, "description": "The body is over the size limit"},
        415: {"model": ErrorResponse, "description": "The body is not declared as application/json"},
        422: {"model": ErrorResponse, "description": "A field is missing, unknown, of the wrong type or not finite"},
    }

    def limit_explain(count: int, explain: bool) -> None:
        if explain and count > max_explain_records:
            problem = f"?explain=true answers at most {max_explain_records:,} records per request"
            raise ClientError(
                422,
                f"{problem}, this one has {count:,}: send the records to explain in smaller requests (or start the "
                "service with a larger --max-explain-records)",
                [{"field": "explain", "problem": problem}],
            )

    async def answer_with_recipe(
        request: Request, served: ServedModel, role: str, recipe: RecipeEndpoint, body: _Body, explain: bool
    ) -> Response:
        # A recipe with a serving hook (tennis: player names) answers in its own words; see keel.serving.recipe.
        batch, requests = _validated(body, recipe.validate, served)
        limit_explain(len(requests), explain)
        try:
            answer = await _scored(
                len(requests), recipe.answer, requests, batch, served.predictor, explain=explain, top=explain_top
            )
        except RecipeRequestError as error:
            raise ClientError(error.status, error.error, error.detail) from None
        metrics.predicted(served.name, served.version, answer.predictions)
        monitor.observe(served, answer.rows, answer.predictions)
        traffic.answered_records(request.scope[_REQUEST_ID_KEY], served, role, answer.rows, answer.predictions)
        meta = _meta(request, served, role if traffic.canary else None)
        document = {**meta, "predictions": answer.answers} if batch else {**answer.answers[0], **meta}
        return Response(_render(document), media_type=_JSON)

    async def answer_columns(request: Request, served: ServedModel, role: str, body: _Body, explain: bool) -> Response:
        # {"columns": {field: [values]}}: validated by pydantic a column at a time, answered in columns.
        columns = _validated(body, served.request.adapter.validate_python, served)["columns"]
        count = _column_length(columns)
        limit_explain(count, explain)
        predictor = served.predictor
        predictions, warnings = await _scored(
            count, predictor.predict_columns, columns, count, explain=explain, top=explain_top
        )
        if explain and not predictor.can_explain:
            warnings.append({"record": None, **_NO_CONTRIBUTIONS})
        metrics.counted(served.name, served.version, count, predictions.get("label"), (w["field"] for w in warnings))
        monitor.observe_columns(served, columns, predictions, count)
        traffic.answered_columns(request.scope[_REQUEST_ID_KEY], served, role, columns, predictions, warnings, count)
        meta = _meta(request, served, role if traffic.canary else None)
        document = {**meta, "predictions": predictions, "warnings": warnings}
        return Response(_render(document), media_type=_JSON)

    @app.post(
        "/v1/predict",
        response_model=SinglePrediction | BatchPrediction | ColumnsPrediction,
        responses=errors,  # type: ignore[arg-type]
        summary='Predict one record, many as {"records": [...]}, or many as {"columns": {...}}',
    )
    async def predict(request: Request, explain: bool = False) -> Response:
        """Predict one record (a JSON object), many (``{"records": [...]}``), or many as columns.

        A columnar body, ``{"columns": {"field": [...], ...}}``, is answered in columns: the compact form for large
        batches. Values outside the training data (an unseen category, a number out of the training range) are
        scored and reported in ``warnings``. ``?explain=true`` adds each record's largest feature contributions.
        """
        _require_json(request)
        body = _parse_json(await _read_body(request, max_body_bytes))
        served, role = traffic.choose(request.scope[_REQUEST_ID_KEY], body.data)
        if served.recipe is not None:
            return await answer_with_recipe(request, served, role, served.recipe, body, explain)
        if body_kind(body.data) == "columns":
            return await answer_columns(request, served, role, body, explain)
        # A batch of plain values is accepted column by column; anything else (and ?explain=true, which echoes
        # values back as pydantic returns them) is validated record by record, with exact error messages.
        accepted = served.request.fast_batch(body.data) if body.fast and not explain else None
        columns: dict[str, Sequence[Any]] | None = None
        if accepted is not None:
            records, columns = accepted
            batch = True
        else:
            payload = _validated(body, served.request.adapter.validate_python, served)
            batch = body_kind(body.data) == "batch"
            records = payload["records"] if batch else [payload]
        limit_explain(len(records), explain)
        predictor = served.predictor
        results = await _scored(
            len(records), predictor.predict, records, columns=columns, explain=explain, top=explain_top
        )
        if explain and not predictor.can_explain:
            for result in results:
                result["warnings"].append(dict(_NO_CONTRIBUTIONS))
        metrics.predicted(served.name, served.version, results)
        monitor.observe(served, records, results, columns)
        traffic.answered_records(request.scope[_REQUEST_ID_KEY], served, role, records, results)
        meta = _meta(request, served, role if traffic.canary else None)
        document = {**meta, "predictions": results} if batch else {**results[0], **meta}
        return Response(_render(document), media_type=_JSON)

    @app.get("/v1/model", summary="The served model: version, metrics, feature schema, provenance")
    async def model_info() -> dict[str, Any]:
        """Name, version, alias, metrics, feature schema, trained-at and data fingerprint of the served model."""
        return served_now().describe()

    @app.post(
        "/v1/admin/reload",
        response_model=ReloadResponse,
        responses={
            409: {"model": ReloadResponse, "description": "The new version failed verification"},
            503: {"model": ErrorResponse, "description": "The registry cannot be read (the current version serves on)"},
        },
        summary="Check the registry for a new version now",
    )
    async def reload() -> Response:
        """Load the version the alias points at now; a version that fails verification is refused (409)."""
        try:
            outcome = await run_in_threadpool(swapper.check, force=True)
        except KeelError as error:
            raise ClientError(
                503, f"could not check the registry (still serving the current version): {error}"
            ) from None
        if outcome.status != "unchanged":
            metrics.swaps.labels(outcome.status).inc()
        document = ReloadResponse(
            status=outcome.status, version=outcome.version, previous=outcome.previous, reason=outcome.reason
        )
        status = 409 if outcome.status == "refused" else 200
        return Response(document.model_dump_json(), status_code=status, media_type=_JSON)

    @app.get("/health", summary="The process is alive")
    async def health() -> dict[str, str]:
        """Always 200 while the process answers."""
        return {"status": "alive"}

    @app.get("/ready", summary="A verified model is loaded")
    async def ready() -> Response:
        """200 when a verified model is loaded, else 503.

        When the registry cannot be read (deleted, moved, the served version removed), the loaded model keeps
        serving, so the answer stays 200 (taking every replica out of a load balancer would turn a registry outage
        into a service outage) and ``problem`` says what is wrong until a check succeeds again.
        """
        current = swapper.current
        if current is None:
            return Response(json.dumps({"status": "not ready"}), status_code=503, media_type=_JSON)
        document: dict[str, Any] = {"status": "ready", "model": current.name, "version": current.version}
        if swapper.problem is not None:
            document["problem"] = f"cannot follow {source.reference} in the registry: {swapper.problem}"
        return Response(json.dumps(document), media_type=_JSON)

    @app.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
    async def prometheus() -> Response:
        """Requests by route and status, latency, predictions per class, records per request, model version."""
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    install_insight_routes(app, monitor, metrics)
    _install_error_handlers(app)
    _install_openapi(app, served_now)
    known = frozenset(getattr(route, "path", "") for route in app.routes)
    app.add_middleware(_Gateway, keys=keys, metrics=metrics, known=known)
    return app


def _validated(body: _Body, validate: Callable[[Any], _T], served: ServedModel) -> _T:
    """``validate`` applied to the body; a refusal is a 422 naming each field and what was wrong with it."""
    try:
        return body.validated(validate)
    except ValidationError as error:
        raise ClientError(422, "the request has invalid fields; see detail", _problems(error, served)) from None


async def _scored(records: int, score: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """``score(*args, **kwargs)``, in a worker thread for a large request so small ones are not held up.

    LightGBM releases the GIL while it scores, so the event loop keeps answering small requests meanwhile.
    """
    limit = THREADPOOL_EXPLAIN_RECORDS if kwargs.get("explain") else THREADPOOL_RECORDS
    if records >= limit:
        return await run_in_threadpool(score, *args, **kwargs)
    return score(*args, **kwargs)


def _meta(request: Request, served: ServedModel, role: str | None = None) -> dict[str, Any]:
    """What every prediction response carries: the model, the answering version, the request id (and its role)."""
    meta = {"model": served.name, "version": served.version, "request_id": request.scope[_REQUEST_ID_KEY]}
    if role is not None:
        meta["role"] = role
    return meta


def _require_json(request: Request) -> None:
    """Refuse a body not declared as JSON (it also keeps browsers from posting here cross-site without a preflight)."""
    declared = request.headers.get("content-type", "")
    media_type = declared.split(";", 1)[0].strip().lower()
    if media_type != _JSON and not (media_type.startswith("application/") and media_type.endswith("+json")):
        shown = f"{declared[:60]!r}" if declared else "none"
        raise ClientError(415, f"the body must be sent as 'Content-Type: application/json' (got {shown})")


async def _read_body(request: Request, limit: int, timeout: float = BODY_TIMEOUT_SECONDS) -> bytes:
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
    too_large = ClientError(413, f"the body is over the {limit:,}-byte limit; send fewer records per request")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


@dataclass
class _Body:
    """A parsed request body.

    Attributes:
        raw: The bytes received.
        data: The parsed document.
        fast: Whether orjson parsed it. Its document has unique keys (see :func:`_parse_json`) and finite numbers,
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


def _parse_json(body: bytes) -> _Body:
    """The parsed body; orjson's fast parse when it is plain (unique keys, finite numbers).

    orjson parses well-formed bodies (two to three times as fast as the standard library) but lets a repeated key
    win silently. Counting colons proves there is none: every key in the text is followed by one colon outside
    strings, so when the body holds no more colons than keys were parsed, no key was repeated (and no string holds
    a colon). Otherwise, and for anything orjson refuses (NaN, 1e309, invalid UTF-8, deep nesting), the standard
    library parses the body again with a duplicate-key check and names the exact problem.
    """
    if not body.strip():
        raise ClientError(400, f"the body is empty; {_BODY_HINT}")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    else:
        if body.count(b":") == _keys_parsed(data):
            return _Body(body, data, fast=True)
    return _Body(body, _parse_json_exactly(body), fast=False)


def _keys_parsed(data: Any) -> int:
    """Keys of the body's object and of its records (never more than the parsed document holds)."""
    if type(data) is not dict:
        return 0
    records = data.get("records")
    if type(records) is list and set(map(type, records)) == {dict}:
        return len(data) + sum(map(len, records))
    columns = data.get("columns")
    return len(data) + (len(columns) if type(columns) is dict else 0)


def _render(document: Any) -> bytes:
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
            400, f"the body is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno}); {_BODY_HINT}"
        ) from None
    except (ValueError, RecursionError) as error:
        raise ClientError(400, f"the body is not valid JSON ({error}); {_BODY_HINT}") from None


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


def _column_length(columns: dict[str, list[Any]]) -> int:
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


def _problems(error: ValidationError, served: ServedModel) -> list[dict[str, str]]:
    fields = served.recipe.fields if served.recipe else served.predictor.feature_names + served.predictor.id_names
    problems = []
    for item in error.errors(include_url=False):
        loc = list(item["loc"])
        if loc and loc[0] in ("record", "batch", "columns"):
            loc = loc[1:]
        path = _path(loc)
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


def _path(loc: Sequence[Any]) -> str:
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


def _error_response(status: int, error: str, detail: list[dict[str, Any]], scope: Scope) -> Response:
    document = {"error": error, "detail": detail, "request_id": scope.get(_REQUEST_ID_KEY)}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return Response(json.dumps(document), status_code=status, media_type=_JSON, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    async def client_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ClientError)  # noqa: S101 - registered for this type only
        return _error_response(exc.status, exc.error, exc.detail, request.scope)

    async def query_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for this type only
        detail = [
            {"field": _path(list(e["loc"])), "problem": str(e["msg"]), "type": str(e["type"])} for e in exc.errors()
        ]
        return _error_response(422, "the request has invalid parameters; see detail", detail, request.scope)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)  # noqa: S101 - registered for this type only
        messages = {404: f"no route {request.url.path}; see /docs", 405: f"{request.method} is not allowed here"}
        error = messages.get(exc.status_code, str(exc.detail))
        response = _error_response(exc.status_code, error, [], request.scope)
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    app.add_exception_handler(ClientError, client_error)
    app.add_exception_handler(RequestValidationError, query_error)
    app.add_exception_handler(StarletteHTTPException, http_error)


def _install_openapi(app: FastAPI, served_now: Callable[[], ServedModel]) -> None:
    cache: dict[int, dict[str, Any]] = {}

    def openapi() -> dict[str, Any]:
        served = served_now()
        if served.version in cache:
            return cache[served.version]
        document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        body = dict(served.request.json_schema)
        document.setdefault("components", {}).setdefault("schemas", {}).update(body.pop("$defs", {}))
        example = dict(served.source.model.schema.example)
        document["paths"]["/v1/predict"]["post"]["requestBody"] = {
            "required": True,
            "content": {
                _JSON: {
                    "schema": body,
                    "examples": {
                        "one record": {"summary": "One record (a real training row)", "value": example},
                        "a batch": {"summary": "Several records", "value": {"records": [example, example]}},
                    },
                }
            },
        }
        if served.recipe is not None:
            served.recipe.document(document["paths"]["/v1/predict"]["post"], document["components"]["schemas"])
        cache.clear()
        cache[served.version] = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]


class _Gateway:
    """Pure ASGI middleware: request ids, API keys, and request metrics (cheaper than ``BaseHTTPMiddleware``)."""

    def __init__(self, app: ASGIApp, keys: list[bytes], metrics: ServiceMetrics, known: frozenset[str]) -> None:
        self.app = app
        self.keys = keys
        self.metrics = metrics
        self.known = known

    def _authorised(self, scope: Scope) -> bool:
        offered: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"authorization" and value[:7].lower() == b"bearer ":
                offered = value[7:].strip()
            elif name == b"x-api-key":
                offered = value.strip()
        if offered is None:
            return False
        matched = False
        for key in self.keys:  # every key is compared, so the time taken does not tell which one matched
            matched |= hmac.compare_digest(offered, key)
        return matched

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        incoming = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope[_REQUEST_ID_KEY] = request_id
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        path = scope["path"]
        try:
            if self.keys and path not in OPEN_PATHS and not self._authorised(scope):
                error = "a valid API key is required: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'"
                await _error_response(401, error, [], scope)(scope, receive, send_with_id)
            else:
                await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            label = getattr(route, "path", None) or (path if path in self.known else "other")
            self.metrics.request(label, scope["method"], status, time.perf_counter() - started)
