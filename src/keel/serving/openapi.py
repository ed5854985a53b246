"""The OpenAPI document, whose ``/v1/predict`` request body follows the version being served."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from keel.serving.errors import JSON
from keel.serving.swap import ServedModel


def install_openapi(app: FastAPI, served_now: Callable[[], ServedModel]) -> None:
    """Replace ``app.openapi`` with one that documents the served version's request body (cached per version)."""
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
                JSON: {
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
