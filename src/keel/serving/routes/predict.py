"""``POST /v1/predict``: one record, a batch of records, or a batch of columns, answered by the served version."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from keel.serving.body import Body, column_length, parse_json, read_body, render, require_json, validated
from keel.serving.contract import BatchPrediction, ColumnsPrediction, SinglePrediction
from keel.serving.contract import _kind as body_kind
from keel.serving.errors import ERROR_RESPONSES, JSON, REQUEST_ID_KEY, ClientError, error_response
from keel.serving.recipe import RecipeEndpoint, RecipeRequestError
from keel.serving.routes.deps import Service, ServiceDep
from keel.serving.swap import ServedModel

THREADPOOL_RECORDS = 256
"""Requests with at least this many records are scored in a worker thread, so small requests are not held up."""
THREADPOOL_EXPLAIN_RECORDS = 8
"""Explained records from which a request is scored in a worker thread (contributions cost ~10× a prediction)."""
_NO_CONTRIBUTIONS = {"field": "explain", "problem": "this model's estimator has no per-feature contributions"}
_T = TypeVar("_T")
_LANE_QUERIES = {b"": False, b"explain=true": True, b"explain=false": False}
"""The query strings :class:`PredictLane` answers, and the ``explain`` each means."""

router = APIRouter()


@router.post(
    "/v1/predict",
    response_model=SinglePrediction | BatchPrediction | ColumnsPrediction,
    responses=ERROR_RESPONSES,
    summary='Predict one record, many as {"records": [...]}, or many as {"columns": {...}}',
)
async def predict(request: Request, service: ServiceDep, explain: bool = False) -> Response:
    """Predict one record (a JSON object), many (``{"records": [...]}``), or many as columns.

    A columnar body, ``{"columns": {"field": [...], ...}}``, is answered in columns: the compact form for large
    batches. Values outside the training data (an unseen category, a number out of the training range) are
    scored and reported in ``warnings``. ``?explain=true`` adds each record's largest feature contributions.
    """
    return await answer(request, service, explain)


class PredictLane:
    """``POST /v1/predict`` answered straight from the gateway, past FastAPI's routing and dependency solving.

    Those cost more than scoring one record (about 150 µs against 40 µs). The lane takes only requests whose
    query string is empty or exactly ``explain=true`` / ``explain=false``, runs the route's own :func:`answer`,
    and answers a :class:`ClientError` as the route's exception handler does; anything else (another query
    string, another method) goes the usual way, so every odd request keeps FastAPI's exact handling. The route
    stays declared for the OpenAPI document.
    """

    PATH = "/v1/predict"

    def __init__(self, service: Service) -> None:
        self.service = service

    def takes(self, scope: Scope) -> bool:
        """Whether this request is one the lane answers (the gateway sends the rest to the app)."""
        return scope["method"] == "POST" and scope["query_string"] in _LANE_QUERIES

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one request the lane :meth:`takes`."""
        try:
            response = await answer(Request(scope, receive), self.service, _LANE_QUERIES[scope["query_string"]])
        except ClientError as error:
            response = error_response(error.status, error.error, error.detail, scope)
        await response(scope, receive, send)


async def answer(request: Request, service: Service, explain: bool) -> Response:
    """The answer to ``POST /v1/predict`` (the route and :class:`PredictLane` both answer through it)."""
    require_json(request)
    body = parse_json(await read_body(request, service.max_body_bytes))
    traffic = service.traffic
    # The primary version, or the canary for its share of requests (sticky by id column, else request id).
    served, role = traffic.choose(request.scope[REQUEST_ID_KEY], body.data)
    if served.recipe is not None:
        return await _answer_with_recipe(request, service, served, role, served.recipe, body, explain)
    if body_kind(body.data) == "columns":
        return await _answer_columns(request, service, served, role, body, explain)
    # A batch of plain values is accepted column by column; anything else (and ?explain=true, which echoes
    # values back as pydantic returns them) is validated record by record, with exact error messages.
    accepted = served.request.fast_batch(body.data) if body.fast and not explain else None
    columns: dict[str, Sequence[Any]] | None = None
    if accepted is not None:
        records, columns = accepted
        batch = True
    else:
        payload = validated(body, served.request.adapter.validate_python, _fields(served))
        batch = body_kind(body.data) == "batch"
        records = payload["records"] if batch else [payload]
    _limit_explain(service, len(records), explain)
    predictor = served.predictor
    results = await _scored(
        len(records), predictor.predict, records, columns=columns, explain=explain, top=service.explain_top
    )
    if explain and not predictor.can_explain:
        for result in results:
            result["warnings"].append(dict(_NO_CONTRIBUTIONS))
    service.metrics.predicted(served.name, served.version, results)
    service.monitor.observe(served, records, results, columns)
    traffic.answered_records(request.scope[REQUEST_ID_KEY], served, role, records, results)
    meta = _meta(request, served, role if traffic.canary else None)
    document = {**meta, "predictions": results} if batch else {**results[0], **meta}
    return Response(render(document), media_type=JSON)


async def _answer_with_recipe(
    request: Request,
    service: Service,
    served: ServedModel,
    role: str,
    recipe: RecipeEndpoint,
    body: Body,
    explain: bool,
) -> Response:
    # A recipe with a serving hook (tennis: player names) answers in its own words; see keel.serving.recipe.
    batch, requests = validated(body, recipe.validate, _fields(served))
    _limit_explain(service, len(requests), explain)
    try:
        answer = await _scored(
            len(requests), recipe.answer, requests, batch, served.predictor, explain=explain, top=service.explain_top
        )
    except RecipeRequestError as error:
        raise ClientError(error.status, error.error, error.detail) from None
    service.metrics.predicted(served.name, served.version, answer.predictions)
    service.monitor.observe(served, answer.rows, answer.predictions)
    traffic = service.traffic
    traffic.answered_records(request.scope[REQUEST_ID_KEY], served, role, answer.rows, answer.predictions)
    meta = _meta(request, served, role if traffic.canary else None)
    document = {**meta, "predictions": answer.answers} if batch else {**answer.answers[0], **meta}
    return Response(render(document), media_type=JSON)


async def _answer_columns(
    request: Request, service: Service, served: ServedModel, role: str, body: Body, explain: bool
) -> Response:
    # {"columns": {field: [values]}}: validated by pydantic a column at a time, answered in columns.
    columns = validated(body, served.request.adapter.validate_python, _fields(served))["columns"]
    count = column_length(columns)
    _limit_explain(service, count, explain)
    predictor = served.predictor
    predictions, warnings = await _scored(
        count, predictor.predict_columns, columns, count, explain=explain, top=service.explain_top
    )
    if explain and not predictor.can_explain:
        warnings.append({"record": None, **_NO_CONTRIBUTIONS})
    service.metrics.counted(
        served.name, served.version, count, predictions.get("label"), (w["field"] for w in warnings)
    )
    service.monitor.observe_columns(served, columns, predictions, count)
    traffic = service.traffic
    traffic.answered_columns(request.scope[REQUEST_ID_KEY], served, role, columns, predictions, warnings, count)
    meta = _meta(request, served, role if traffic.canary else None)
    document = {**meta, "predictions": predictions, "warnings": warnings}
    return Response(render(document), media_type=JSON)


def _limit_explain(service: Service, count: int, explain: bool) -> None:
    """Refuse an ``?explain=true`` request over the service's limit (422 naming it)."""
    limit = service.max_explain_records
    if explain and count > limit:
        problem = f"?explain=true answers at most {limit:,} records per request"
        raise ClientError(
            422,
            f"{problem}, this one has {count:,}: send the records to explain in smaller requests (or start the "
            "service with a larger --max-explain-records)",
            [{"field": "explain", "problem": problem}],
        )


def _fields(served: ServedModel) -> list[str]:
    """The request's field names (for "did you mean" hints)."""
    if served.recipe:
        return list(served.recipe.fields)
    return served.predictor.feature_names + served.predictor.id_names


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
    meta = {"model": served.name, "version": served.version, "request_id": request.scope[REQUEST_ID_KEY]}
    if role is not None:
        meta["role"] = role
    return meta
