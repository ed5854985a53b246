"""What routes receive through ``Depends``: the service's shared parts and the version serving this request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from keel.serving.insights import DriftMonitor
from keel.serving.monitoring import ServiceMetrics
from keel.serving.swap import ModelSource, ModelSwapper, ServedModel
from keel.serving.traffic import Traffic


@dataclass(frozen=True)
class Service:
    """The parts of one service every route may use (kept on ``app.state.service``).

    Attributes:
        source: Where the model comes from.
        swapper: Holds the served (primary) version and moves to a new one.
        traffic: Which version answers a request (primary or canary), the shadow and the prediction log.
        metrics: Prometheus metrics.
        monitor: Drift of recent requests.
        max_body_bytes: Largest request body accepted.
        explain_top: Feature contributions reported per record with ``?explain=true``.
        max_explain_records: Most records in one ``?explain=true`` request.
    """

    source: ModelSource
    swapper: ModelSwapper
    traffic: Traffic
    metrics: ServiceMetrics
    monitor: DriftMonitor
    max_body_bytes: int
    explain_top: int
    max_explain_records: int

    def served_now(self) -> ServedModel:
        """The version serving now (loaded before the app exists, so never missing)."""
        current = self.swapper.current
        assert current is not None  # noqa: S101 - loaded before the app exists
        return current


async def get_service(request: Request) -> Service:
    """The service this request reached."""
    service: Service = request.app.state.service
    return service


async def get_served(service: Annotated[Service, Depends(get_service)]) -> ServedModel:
    """The version that answers this request, read once: a swap during the request does not change it."""
    return service.served_now()


ServiceDep = Annotated[Service, Depends(get_service)]
ServedDep = Annotated[ServedModel, Depends(get_served)]
