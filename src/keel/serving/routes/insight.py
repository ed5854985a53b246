"""``GET /`` (the served version's model report, with a prediction form) and ``GET /v1/monitoring`` (drift)."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from keel.errors import KeelError
from keel.serving.routes.deps import ServedDep, ServiceDep

log = logging.getLogger(__name__)

router = APIRouter()


@router.get("/", response_class=HTMLResponse, summary="The served version's model report, with a prediction form")
async def report_page(service: ServiceDep, served: ServedDep) -> HTMLResponse:
    """The model report (metrics, plots, schema, config, environment) and a form that calls ``/v1/predict``."""
    try:
        html = await run_in_threadpool(service.monitor.page, served)
    except KeelError as error:  # its files changed or vanished after loading; the model itself serves on
        log.error("the model report of version %s cannot be shown: %s", served.version, error)
        return HTMLResponse(
            "<!DOCTYPE html><title>keel</title><p>This version's report files are missing or changed; see the "
            "service log.</p>",
            status_code=404,
        )
    if html is None:
        return HTMLResponse(
            "<!DOCTYPE html><title>keel</title><p>No report is stored with this version; see /docs.</p>",
            status_code=404,
        )
    return HTMLResponse(html)


@router.get("/v1/monitoring", summary="Drift of recent requests against the training data")
async def monitoring(service: ServiceDep) -> JSONResponse:
    """Per-feature PSI, missing and unseen-category shares, and the prediction distribution, of recent records."""
    return JSONResponse(await run_in_threadpool(service.monitor.report))
