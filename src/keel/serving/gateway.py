"""The service's front door, a pure ASGI middleware: request ids, API keys and request metrics for every path.

Authentication lives here rather than in a route dependency on purpose: it then also covers ``/docs``,
``/openapi.json`` and unknown paths, refuses a request before any of its body is read, and costs no dependency
resolution on the hot path.
"""

from __future__ import annotations

import hmac
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keel.errors import KeelError
from keel.serving.errors import REQUEST_ID_KEY, error_response
from keel.serving.monitoring import ServiceMetrics

API_KEYS_ENV = "KEEL_API_KEYS"
API_KEYS_FILE_ENV = "KEEL_API_KEYS_FILE"
OPEN_PATHS = frozenset({"/health", "/ready"})
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


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


def new_request_id() -> str:
    """A random version-4 UUID as 32 hex digits, like ``uuid.uuid4().hex`` at a fifth of its cost."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # the RFC 4122 variant
    return raw.hex()


class Lane(Protocol):
    """A path's plain requests answered without the app's routing (see keel.serving.routes.predict.PredictLane)."""

    def takes(self, scope: Scope) -> bool:
        """Whether the lane answers this request (otherwise the app does)."""
        ...

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a request the lane takes."""
        ...


class Gateway:
    """Pure ASGI middleware: request ids, API keys, and request metrics (cheaper than ``BaseHTTPMiddleware``)."""

    def __init__(
        self,
        app: ASGIApp,
        keys: list[bytes],
        metrics: ServiceMetrics,
        known: frozenset[str],
        lanes: Mapping[str, Lane] | None = None,
    ) -> None:
        self.app = app
        self.keys = keys
        self.metrics = metrics
        self.known = known
        self.lanes = dict(lanes or {})

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
        """Give the request an id, refuse it without a valid key (except open paths), count it."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        incoming = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID.match(incoming) else new_request_id()
        scope[REQUEST_ID_KEY] = request_id
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        path = scope["path"]
        laned = False
        try:
            if self.keys and path not in OPEN_PATHS and not self._authorised(scope):
                error = "a valid API key is required: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'"
                await error_response(401, error, [], scope)(scope, receive, send_with_id)
            elif (lane := self.lanes.get(path)) is not None and lane.takes(scope):
                laned = True
                await lane(scope, receive, send_with_id)
            else:
                await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            label = path if laned else getattr(route, "path", None) or (path if path in self.known else "other")
            self.metrics.request(label, scope["method"], status, time.perf_counter() - started)
