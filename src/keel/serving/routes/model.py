"""``GET /v1/model`` (what is served) and ``POST /v1/admin/reload`` (follow the alias now)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from keel.errors import KeelError
from keel.serving.body import render
from keel.serving.contract import ErrorResponse, ReloadResponse
from keel.serving.errors import JSON, ClientError
from keel.serving.routes.deps import ServedDep, ServiceDep

router = APIRouter()


@router.get("/v1/model", summary="The served model: version, metrics, feature schema, provenance")
async def model_info(served: ServedDep) -> Response:
    """Name, version, alias, metrics, feature schema, trained-at and data fingerprint of the served model."""
    return Response(render(served.describe()), media_type=JSON)


@router.post(
    "/v1/admin/reload",
    response_model=ReloadResponse,
    responses={
        409: {"model": ReloadResponse, "description": "The new version failed verification"},
        503: {"model": ErrorResponse, "description": "The registry cannot be read (the current version serves on)"},
    },
    summary="Check the registry for a new version now",
)
async def reload(service: ServiceDep) -> Response:
    """Load the version the alias points at now; a version that fails verification is refused (409)."""
    try:
        outcome = await run_in_threadpool(service.swapper.check, force=True)
    except KeelError as error:
        raise ClientError(503, f"could not check the registry (still serving the current version): {error}") from None
    if outcome.status != "unchanged":
        service.metrics.swaps.labels(outcome.status).inc()
    document = ReloadResponse(
        status=outcome.status, version=outcome.version, previous=outcome.previous, reason=outcome.reason
    )
    status = 409 if outcome.status == "refused" else 200
    return Response(document.model_dump_json(), status_code=status, media_type=JSON)
