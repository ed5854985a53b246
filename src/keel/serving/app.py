"""The prediction service: a FastAPI app built around one :class:`~keel.serving.swap.ModelSource`.

This module only assembles it; each concern has its own module: the routes (:mod:`keel.serving.routes`, with the
served version and the service's parts given by ``Depends``), reading request bodies (:mod:`keel.serving.body`),
refusals (:mod:`keel.serving.errors`), the OpenAPI document (:mod:`keel.serving.openapi`) and the ASGI gateway
for request ids, API keys and request metrics (:mod:`keel.serving.gateway`).

Routes: ``POST /v1/predict``, ``GET /v1/model``, ``POST /v1/admin/reload``, ``GET /health``, ``GET /ready``,
``GET /metrics``, ``GET /`` (the model report), ``GET /v1/monitoring`` (plus ``/docs`` and ``/openapi.json``,
whose request model follows the served version).

Client mistakes are always 4xx with the field path and what to do: malformed JSON or a repeated key 400, missing or
wrong API key 401, a body that stalls 408, body over the limit 413, a body not sent as JSON 415, invalid fields or
too many records 422. Request bodies and keys are never logged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from keel import __version__
from keel.defaults import DRIFT_THRESHOLD, MAX_EXPLAIN_RECORDS, POLL_SECONDS
from keel.serving.body import DEFAULT_MAX_BODY_BYTES
from keel.serving.errors import install_error_handlers
from keel.serving.gateway import Gateway, api_keys_from_environment
from keel.serving.insights import DEFAULT_WINDOW, DriftMonitor
from keel.serving.monitoring import ServiceMetrics
from keel.serving.openapi import install_openapi
from keel.serving.prediction_log import DEFAULT_ROTATE_SECONDS, PredictionLog
from keel.serving.routes import insight, model, ops, predict
from keel.serving.routes.deps import Service
from keel.serving.swap import DEFAULT_MAX_RECORDS, ModelSource, ModelSwapper, ModelVersion, ServedModel, serve_model
from keel.serving.traffic import Traffic

DEFAULT_POLL_SECONDS = POLL_SECONDS
DEFAULT_MAX_EXPLAIN_RECORDS = MAX_EXPLAIN_RECORDS
"""Most records one ``?explain=true`` request may hold (``keel serve --max-explain-records``)."""


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
    drift_threshold: float = DRIFT_THRESHOLD,
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
    service = Service(
        source=source,
        swapper=swapper,
        traffic=traffic,
        metrics=metrics,
        monitor=DriftMonitor(lambda: service.served_now(), window=monitor_window, threshold=drift_threshold),
        max_body_bytes=max_body_bytes,
        explain_top=explain_top,
        max_explain_records=max_explain_records,
    )
    app.state.service = service
    app.state.swapper = swapper
    app.state.metrics = metrics
    app.state.traffic = traffic
    metrics.register(service.monitor)  # the drift gauges, computed on a /metrics scrape
    for router in (predict.router, model.router, ops.router, insight.router):
        app.include_router(router)
    install_error_handlers(app)
    install_openapi(app, service.served_now)
    known = frozenset(getattr(route, "path", "") for route in app.routes)
    lanes = {predict.PredictLane.PATH: predict.PredictLane(service)}
    app.add_middleware(Gateway, keys=keys, metrics=metrics, known=known, lanes=lanes)
    return app
