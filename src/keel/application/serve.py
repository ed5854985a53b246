"""Serving a registered model over HTTP: the registry as the service's model source, and running uvicorn."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from keel.application.models import load_version
from keel.domain.refs import ModelRef, parse_ref
from keel.errors import KeelError, RegistryError
from keel.io.registry import Registry

if TYPE_CHECKING:
    from fastapi import FastAPI

    from keel.serving.swap import ModelVersion

DEFAULT_REFERENCE = "adult-income@champion"
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
        reference: The model reference.
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
    """

    reference: str = DEFAULT_REFERENCE
    workspace: str | None = None
    model_dir: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    poll_interval: float = 10.0
    access_log: bool = True
    max_records: int = 10_000
    max_explain_records: int = 100
    monitor_window: int = 5000
    drift_threshold: float = 0.2


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
        return create_app(
            DirectorySource(directory),
            poll_interval=0,
            max_records=settings.max_records,
            max_explain_records=settings.max_explain_records,
            monitor_window=settings.monitor_window,
            drift_threshold=settings.drift_threshold,
        )
    registry = Registry.open(Path(settings.workspace) if settings.workspace else None)
    if not registry.exists():
        raise RegistryError(f"no registry at {registry.workspace}; run `keel train` first or pass --workspace")
    return create_app(
        RegistrySource(registry, settings.reference),
        poll_interval=settings.poll_interval,
        max_records=settings.max_records,
        max_explain_records=settings.max_explain_records,
        monitor_window=settings.monitor_window,
        drift_threshold=settings.drift_threshold,
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
        parse_ref(settings.reference)
    app = build_app(settings)
    common = {"host": settings.host, "port": settings.port, "access_log": settings.access_log, "log_level": "info"}
    if settings.workers <= 1:
        _freeze_heap()
        uvicorn.run(app, **common)  # type: ignore[arg-type]
        return
    del app
    os.environ[SETTINGS_ENV] = json.dumps(asdict(settings))
    uvicorn.run(
        "keel.application.serve:app_from_environment",
        factory=True,
        workers=settings.workers,
        **common,  # type: ignore[arg-type]
    )
