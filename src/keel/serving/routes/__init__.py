"""The service's routes, one router per concern, included by :func:`keel.serving.app.create_app`.

Response models are documentation, not checks, on every route: a route declares its answer for the OpenAPI
document (``response_model=`` or ``responses=``) and returns a :class:`~fastapi.Response` it rendered itself, so
FastAPI validates nothing on the way out and the hot path pays for no second serialisation. The answers are built
from the same pydantic models or plain documents the declarations name.
"""
