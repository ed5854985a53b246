"""Serving a registered model over HTTP: the registry as the service's model source, and running uvicorn."""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from keel.application.models import default_reference, load_version
from keel.defaults import (
    DRIFT_THRESHOLD,
    MAX_EXPLAIN_RECORDS,
    MAX_RECORDS,
    MONITOR_WINDOW,
    POLL_SECONDS,
    SERVE_HOST,
    SERVE_PORT,
    SERVE_WORKERS,
)
from keel.domain.refs import ModelRef, parse_ref
from keel.errors import KeelError, RegistryError
from keel.io.registry import Registry

if TYPE_CHECKING:
    from fastapi import FastAPI

    from keel.serving.swap import ModelVersion

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
SETTINGS_ENV = "KEEL_SERVE_SETTINGS"
"""How ``keel serve --workers N`` hands its settings to the worker processes uvicorn starts."""


class RegistrySource:
    """A model reference in the registry, as the service's model source.

    Args:
        registry: The registry.
        reference: ``NAME``, ``NAME@ALIAS`` or ``NAME:VERSION``.
    """

    def __init__(self, registry: Registry, reference: str | ModelRef) -> None:
        self.registry = registry
        self.ref = parse_ref(reference) if isinstance(reference, str) else reference

    @property
    def reference(self) -> str:
        """The reference as ``name@alias`` or ``name:version``."""
        return str(self.ref)

    @property
    def alias(self) -> str | None:
        """The alias followed (``None`` for a fixed version)."""
        return None if self.ref.version is not None else self.ref.alias

    def pointed_version(self) -> int:
        """The version the reference points at now.

        Raises:
            RegistryError: The model or alias does not exist.
        """
        if self.ref.version is not None:
            return self.ref.version
        assert self.ref.alias is not None  # noqa: S101 - parse_ref gives a bare name the default alias
        try:
            number = self.registry.alias_version(self.ref.name, self.ref.alias)
        except KeelError:
            raise
        except Exception as error:  # noqa: BLE001 - the store's own errors (SQLite, HTTP) become one clear error
            raise RegistryError(f"could not read the registry at {self.registry.workspace}: {error}") from None
        if number is None:
            raise RegistryError(f"model {self.ref.name!r} has no version with alias {self.ref.alias!r}")
        return number

    def load(self, version: int) -> ModelVersion:
        """Load and verify one version (every artifact's sha256 is checked).

        Raises:
            RegistryError: The version does not exist or is incomplete.
            IntegrityError: An artifact fails verification.
        """
        from keel.serving.swap import ModelVersion

        try:
            handle = load_version(self.registry, ModelRef(name=self.ref.name, version=version))
        except KeelError:
            raise
        except Exception as error:  # noqa: BLE001 - the store's own errors (SQLite, HTTP) become one clear error
            raise RegistryError(f"could not read the registry at {self.registry.workspace}: {error}") from None
        loaded = handle.loaded
        return ModelVersion(
            name=handle.info.name,
            version=handle.info.version,
            aliases=list(handle.info.aliases),
            model=loaded.model,
            manifest=loaded.manifest,
            metrics=loaded.metrics,
            directory=loaded.directory,
        )


class DirectorySource:
    """An exported version (``keel models export``), served with no registry; it is never swapped.

    Args:
        directory: The export folder (model files plus ``registry.json``).

    Raises:
        IntegrityError: ``registry.json`` is missing or unreadable.
    """

    def __init__(self, directory: Path) -> None:
        from keel.io.exports import read_metadata

        self.directory = directory
        self.metadata = read_metadata(directory)

    @property
    def reference(self) -> str:
        """``name:version`` and where the files are."""
        return f"{self.metadata.get('name')}:{self.metadata.get('version')} from {self.directory}"

    @property
    def alias(self) -> str | None:
        """No alias is followed."""
        return None

    def pointed_version(self) -> int:
        """The exported version's number."""
        return int(self.metadata["version"])

    def load(self, version: int) -> ModelVersion:
        """Verify and load the folder (its manifest against ``registry.json``, every file against the manifest).

        Raises:
            IntegrityError: A file fails verification.
        """
        from keel.io.exports import load_exported
        from keel.serving.swap import ModelVersion

        loaded, metadata = load_exported(self.directory)
        return ModelVersion(
            name=str(metadata["name"]),
            version=int(metadata["version"]),
            aliases=[str(a) for a in metadata.get("aliases", [])],
            model=loaded.model,
            manifest=loaded.manifest,
            metrics=loaded.metrics,
            directory=loaded.directory,
        )


@dataclass(frozen=True)
class ServeSettings:
    """What ``keel serve`` was asked for.

    Attributes:
        reference: The model reference (``None``: the only registered model's champion).
        workspace: The workspace (``None``: ``KEEL_WORKSPACE`` or ``.keel``).
        model_dir: An exported version to serve instead of the registry's.
        host: Interface to bind.
        port: TCP port.
        workers: Worker processes.
        poll_interval: Seconds between checks for a new version of the alias (0: never).
        access_log: Whether uvicorn logs each request line (never bodies or keys).
        max_records: Most records in one request.
        max_explain_records: Most records in one ``?explain=true`` request.
        monitor_window: Most recent records kept for drift monitoring (per worker process).
        drift_threshold: PSI at or above which a feature is reported as drifting.
        log_dir: Prediction log folder (``None``: the version's ``serving.log_dir``, else no log).
        shadow: A second version that scores every request off the response path (``NAME:VERSION`` or
            ``NAME@ALIAS``).
        canary: ``REF:PERCENT``: the share of requests another version answers.
        log_rotate_seconds: A log file is completed this long after its first row (the most a hard kill loses).
    """

    reference: str | None = None
    workspace: str | None = None
    model_dir: str | None = None
    host: str = SERVE_HOST
    port: int = SERVE_PORT
    workers: int = SERVE_WORKERS
    poll_interval: float = POLL_SECONDS
    access_log: bool = True
    max_records: int = MAX_RECORDS
    max_explain_records: int = MAX_EXPLAIN_RECORDS
    monitor_window: int = MONITOR_WINDOW
    drift_threshold: float = DRIFT_THRESHOLD
    log_dir: str | None = None
    shadow: str | None = None
    canary: str | None = None
    log_rotate_seconds: float = 60.0


def parse_canary(text: str) -> tuple[ModelRef, float]:
    """``adult-income:7:10`` or ``adult-income@challenger:25`` as the version's reference and its share (percent).

    Raises:
        KeelError: The text does not end in a percentage in (0, 100], or the reference is malformed.
    """
    reference, _, share = text.rpartition(":")
    try:
        percent = float(share)
    except ValueError:
        percent = math.nan
    if not reference or not 0 < percent <= 100:
        raise KeelError(
            f"--canary {text!r}: write REF:PERCENT, e.g. adult-income:7:10 (version 7 answers 10% of requests)"
        )
    return parse_ref(reference), percent


def configured_log_dir(registry: Registry, source: RegistrySource) -> str | None:
    """``serving.log_dir`` of the configuration the served version was trained with (``None`` when unset)."""
    import yaml

    from keel.io.artifacts import CONFIG_FILE

    try:
        info = registry.get(ModelRef(name=source.ref.name, version=source.pointed_version()))
        stored = yaml.safe_load((registry.local_directory(info) / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    serving = stored.get("serving") if isinstance(stored, dict) else None
    value = serving.get("log_dir") if isinstance(serving, dict) else None
    return str(value) if value else None


def build_app(settings: ServeSettings) -> FastAPI:
    """The service for ``settings.reference``, with its model loaded and verified.

    Raises:
        KeelError: The model cannot be found or fails verification.
    """
    from keel.serving.app import create_app

    if settings.model_dir:
        directory = Path(settings.model_dir).expanduser().absolute()
        if not directory.is_dir():
            raise RegistryError(f"--model-dir {directory} is not a folder; export one with `keel models export`")
        if settings.shadow or settings.canary:
            raise KeelError("--shadow and --canary take versions from the registry; they do not apply to --model-dir")
        return create_app(
            DirectorySource(directory),
            poll_interval=0,
            max_records=settings.max_records,
            max_explain_records=settings.max_explain_records,
            monitor_window=settings.monitor_window,
            drift_threshold=settings.drift_threshold,
            log_dir=Path(settings.log_dir).expanduser() if settings.log_dir else None,
            log_rotate_seconds=settings.log_rotate_seconds,
        )
    registry = Registry.open(Path(settings.workspace) if settings.workspace else None)
    if not registry.exists():
        raise RegistryError(f"no registry at {registry.workspace}; run `keel train` first or pass --workspace")
    primary = RegistrySource(registry, settings.reference or default_reference(registry))
    shadow = RegistrySource(registry, settings.shadow) if settings.shadow else None
    canary, percent = None, 0.0
    if settings.canary:
        reference, percent = parse_canary(settings.canary)
        canary = RegistrySource(registry, reference)
    log_dir = settings.log_dir or configured_log_dir(registry, primary)
    return create_app(
        primary,
        poll_interval=settings.poll_interval,
        max_records=settings.max_records,
        max_explain_records=settings.max_explain_records,
        monitor_window=settings.monitor_window,
        drift_threshold=settings.drift_threshold,
        log_dir=Path(log_dir).expanduser() if log_dir else None,
        log_rotate_seconds=settings.log_rotate_seconds,
        shadow=shadow,
        canary=canary,
        canary_percent=percent,
    )


def app_from_environment() -> FastAPI:
    """The factory uvicorn calls for worker processes: the settings come from ``KEEL_SERVE_SETTINGS``."""
    settings = ServeSettings(**json.loads(os.environ[SETTINGS_ENV]))
    app = build_app(settings)
    _freeze_heap()
    return app


def _freeze_heap() -> None:
    """Move everything loaded so far (libraries, the model) out of the garbage collector's sight.

    None of it becomes garbage while the process serves, yet every full collection would walk it again; a batch
    request allocates thousands of objects, so collections are frequent. (``gc.freeze``, as large Python services do.)
    """
    import gc

    gc.collect()
    gc.freeze()


def serve(settings: ServeSettings) -> None:
    """Load and verify the model, then answer HTTP requests until interrupted.

    With one worker the app is built here; with several, uvicorn starts worker processes that each build it
    (the model was verified here first, so a broken version fails before any port is opened).

    Raises:
        KeelError: The model cannot be found or fails verification.
    """
    import uvicorn

    if not settings.model_dir:
        if settings.reference is None:
            registry = Registry.open(Path(settings.workspace) if settings.workspace else None)
            settings = replace(settings, reference=default_reference(registry))
        parse_ref(settings.reference or "")
    if settings.canary:
        parse_canary(settings.canary)
    app = build_app(settings)
    common = {"host": settings.host, "port": settings.port, "access_log": settings.access_log, "log_level": "info"}
    if settings.workers <= 1:
        _freeze_heap()
        uvicorn.run(app, **common)  # type: ignore[arg-type]
        return
    del app
    os.environ[SETTINGS_ENV] = json.dumps(asdict(settings))
    # The workers count into files of one folder so that any worker's /metrics sums them all (the variable must
    # be set before a worker imports prometheus_client; uvicorn starts its workers as new interpreters).
    with tempfile.TemporaryDirectory(prefix="keel-metrics-") as folder:
        os.environ[MULTIPROCESS_ENV] = folder
        try:
            uvicorn.run(
                "keel.application.serve:app_from_environment",
                factory=True,
                workers=settings.workers,
                **common,  # type: ignore[arg-type]
            )
        finally:
            os.environ.pop(MULTIPROCESS_ENV, None)
