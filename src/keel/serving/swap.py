"""Which model version the service answers with, and moving to a new one without dropping a request.

The service holds one :class:`ServedModel` at a time. A request reads the reference once and uses it to the end,
so in-flight requests finish on the version they started with while the next request sees the new one (a Python
attribute assignment is atomic). A :class:`ModelSwapper` polls the registry in a background thread; when the alias
points elsewhere it loads and verifies the new version off the request path and switches only if that succeeds.
A version that fails verification is refused, logged once, and the old one keeps serving.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from keel.defaults import MAX_RECORDS
from keel.errors import KeelError
from keel.serving.contract import RequestTypes, build_request_types
from keel.serving.predictor import Predictor
from keel.serving.recipe import RecipeEndpoint, load_recipe_endpoint
from keel.serving.versions import ModelSource, ModelVersion

__all__ = ["DEFAULT_MAX_RECORDS", "ModelSource", "ModelSwapper", "ModelVersion", "ServedModel", "serve_model"]

log = logging.getLogger(__name__)

DEFAULT_MAX_RECORDS = MAX_RECORDS


@dataclass(frozen=True)
class ServedModel:
    """Everything a request needs about the version being served.

    Attributes:
        source: The loaded version.
        predictor: Its compiled predictor.
        request: Its request validators and OpenAPI schema.
        alias: The alias the service follows.
        recipe: The recipe's serving hook, when the version's recipe declares one (it then replaces the generic
            request model, e.g. tennis takes two player names).
    """

    source: ModelVersion
    predictor: Predictor
    request: RequestTypes
    alias: str | None
    recipe: RecipeEndpoint | None = None

    @property
    def name(self) -> str:
        """Registered model name."""
        return self.source.name

    @property
    def version(self) -> int:
        """Version number."""
        return self.source.version

    def describe(self) -> dict[str, Any]:
        """What ``GET /v1/model`` returns."""
        manifest = self.source.manifest
        test = self.source.metrics.get("test") or {}
        return {
            "name": self.name,
            "version": self.version,
            "alias": self.alias,
            "aliases": self.source.aliases,
            "task": self.predictor.task,
            "estimator": self.source.model.estimator_name,
            "classes": self.predictor.classes,
            "metrics": test.get("metrics", {}),
            "baseline_metrics": test.get("baseline", {}),
            "test_rows": test.get("rows"),
            "trained_at": manifest.get("created_at"),
            "data_fingerprint": manifest.get("data_fingerprint"),
            "git_commit": manifest.get("git_commit"),
            "compiled_predictor": self.predictor.compiled,
            "feature_schema": self.source.model.schema.model_dump(mode="json"),
        }


def serve_model(version: ModelVersion, *, alias: str | None, max_records: int = DEFAULT_MAX_RECORDS) -> ServedModel:
    """Compile a loaded version for serving."""
    predictor = Predictor(version.model)
    request = build_request_types(version.model.schema, model_name=version.name, max_records=max_records)
    recipe = load_recipe_endpoint(version, max_records=max_records)
    return ServedModel(source=version, predictor=predictor, request=request, alias=alias, recipe=recipe)


@dataclass(frozen=True)
class SwapOutcome:
    """What a check for a new version did.

    Attributes:
        status: ``unchanged``, ``swapped`` or ``refused``.
        version: The version served afterwards.
        previous: The version served before a swap.
        reason: Why a version was refused.
    """

    status: Literal["unchanged", "swapped", "refused"]
    version: int
    previous: int | None = None
    reason: str = ""


@dataclass
class ModelSwapper:
    """Holds the served model and swaps it when the followed alias moves.

    Args:
        source: Where versions come from.
        build: Turns a loaded version into a served one.
        on_swap: Called with the new model after each swap (e.g. to update metrics).
    """

    source: ModelSource
    build: Callable[[ModelVersion], ServedModel]
    on_swap: Callable[[ServedModel], None] | None = None
    current: ServedModel | None = None
    refused: dict[int, str] = field(default_factory=dict)
    problem: str | None = None
    """Why the last check could not read the registry (``None`` once a check succeeds); the model keeps serving."""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def load_initial(self) -> ServedModel:
        """Load the version the reference points at now (at start; errors propagate).

        Raises:
            KeelError: The version cannot be found or fails verification.
        """
        served = self.build(self.source.load(self.source.pointed_version()))
        self.current = served
        if self.on_swap:
            self.on_swap(served)
        return served

    def check(self, *, force: bool = False) -> SwapOutcome:
        """Swap to the version the alias points at now, if it moved and it verifies.

        Args:
            force: Retry a version refused before (an operator's explicit reload).

        Raises:
            KeelError: The registry cannot be read.
        """
        with self._lock:
            current = self.current
            assert current is not None  # noqa: S101 - load_initial runs before any check
            try:
                wanted = self.source.pointed_version()
            except KeelError as error:
                self._report(str(error))
                raise
            self._report(None)
            if wanted == current.version:
                return SwapOutcome("unchanged", current.version)
            if wanted in self.refused and not force:
                return SwapOutcome("refused", current.version, reason=self.refused[wanted])
            try:
                served = self.build(self.source.load(wanted))
            except KeelError as error:
                reason = f"version {wanted} was refused, version {current.version} keeps serving: {error}"
                if self.refused.get(wanted) != reason:
                    log.error("%s", reason)
                self.refused[wanted] = reason
                return SwapOutcome("refused", current.version, reason=reason)
            self.refused.pop(wanted, None)
            self.current = served
            log.warning("now serving %s version %s (was version %s)", served.name, served.version, current.version)
            if self.on_swap:
                self.on_swap(served)
            return SwapOutcome("swapped", served.version, previous=current.version)

    def start(self, interval: float) -> None:
        """Poll for a new version every ``interval`` seconds in a daemon thread (not for a fixed version)."""
        if interval <= 0 or self.source.alias is None or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, args=(interval,), name="keel-model-poll", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling and wait for the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _report(self, problem: str | None) -> None:
        """Remember whether the registry can be read, logging only when that changes (not on every poll)."""
        if problem == self.problem:
            return
        current = self.current
        serving = f"{current.name} version {current.version}" if current is not None else "the current model"
        if problem is not None:
            log.error("cannot read the model registry; still serving %s: %s", serving, problem)
        else:
            log.warning("the model registry can be read again; serving %s", serving)
        self.problem = problem

    def _poll(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.check()
            except KeelError:
                pass  # recorded in ``problem`` and logged once by check()
            except Exception:  # a bug must not kill the poller; the current version keeps serving
                log.exception("checking for a new model version failed; still serving the current one")
