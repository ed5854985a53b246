"""What operators and orchestrators ask: ``GET /health``, ``GET /ready``, ``GET /metrics``."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse, Response

from keel.serving.errors import JSON
from keel.serving.monitoring import CONTENT_TYPE
from keel.serving.routes.deps import ServiceDep

router = APIRouter()


@router.get("/health", summary="The process is alive")
async def health() -> Response:
    """Always 200 while the process answers."""
    return Response(json.dumps({"status": "alive"}), media_type=JSON)


@router.get("/ready", summary="A verified model is loaded")
async def ready(service: ServiceDep) -> Response:
    """200 when a verified model is loaded, else 503.

    When the registry cannot be read (deleted, moved, the served version removed), the loaded model keeps
    serving, so the answer stays 200 (taking every replica out of a load balancer would turn a registry outage
    into a service outage) and ``problem`` says what is wrong until a check succeeds again.
    """
    swapper = service.swapper
    current = swapper.current
    if current is None:
        return Response(json.dumps({"status": "not ready"}), status_code=503, media_type=JSON)
    document: dict[str, Any] = {"status": "ready", "model": current.name, "version": current.version}
    if swapper.problem is not None:
        document["problem"] = f"cannot follow {service.source.reference} in the registry: {swapper.problem}"
    return Response(json.dumps(document), media_type=JSON)


@router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
async def prometheus(service: ServiceDep) -> Response:
    """Requests by route and status, latency, predictions per class, records per request, model version."""
    return Response(service.metrics.render(), media_type=CONTENT_TYPE)
