"""The model registry: MLflow runs, registered model versions and aliases.

The embedded default is a SQLite store in the workspace folder (``.keel/mlflow.db``) with artifacts beside it;
``MLFLOW_TRACKING_URI`` points keel at a tracking server instead.

A version is created only after all its artifacts are logged, and it is tagged ``keel.status=complete`` (with the
sha256 of its manifest) only after that; versions without the tag are shown as incomplete and never loaded, so a
crash at any point leaves nothing that looks complete.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import unquote, urlparse

from keel.domain.refs import ModelRef
from keel.errors import RegistryError

STATUS_TAG = "keel.status"
MANIFEST_TAG = "keel.manifest_sha256"
COMPLETE = "complete"
REGISTERING = "registering"
ARTIFACT_PATH = "model"
_T = TypeVar("_T")


@dataclass(frozen=True)
class VersionInfo:
    """A registered model version.

    Attributes:
        name: Registered model name.
        version: Version number.
        source: Artifact URI of its model directory.
        run_id: MLflow run that produced it.
        tags: Version tags (``keel.*`` hold keel's bookkeeping).
        aliases: Aliases pointing at it.
        created_at: Creation time (ms since the epoch).
        description: Free text.
    """

    name: str
    version: int
    source: str
    run_id: str | None
    tags: dict[str, str] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)
    created_at: int = 0
    description: str = ""

    @property
    def complete(self) -> bool:
        """Whether registration finished (only complete versions are loaded)."""
        return self.tags.get(STATUS_TAG) == COMPLETE

    @property
    def manifest_sha256(self) -> str | None:
        """The manifest's sha256 recorded at registration."""
        return self.tags.get(MANIFEST_TAG)


@dataclass(frozen=True)
class DatasetRecord:
    """A table a run used, as MLflow records dataset inputs.

    Attributes:
        name: What to call it (``train``, ``test``).
        context: MLflow's context tag (``training``, ``testing``).
        source: Where it was read from (path or URL).
        source_type: ``local`` or ``http``.
        digest: A short digest of its files' sha256.
        rows: Rows used.
        files: sha256 of each file behind it.
    """

    name: str
    context: str
    source: str
    source_type: str
    digest: str
    rows: int
    files: dict[str, str]


class RegistryReads(Protocol):
    """The registry reads training needs to find and load the champion (a :class:`Registry`, or the sidecar's)."""

    workspace: Path

    def exists(self) -> bool:
        """Whether there is anything to read."""
        ...

    def alias_version(self, name: str, alias: str) -> int | None:
        """The version ``alias`` points at, or ``None``."""
        ...

    def get(self, ref: ModelRef) -> VersionInfo:
        """The version a reference names."""
        ...

    def local_directory(self, info: VersionInfo) -> Path:
        """A local folder holding the version's files."""
        ...


def resolve_workspace(workspace: str | Path | None = None, *, configured: str | Path | None = None) -> Path:
    """The workspace folder, the most specific choice first.

    Args:
        workspace: Given for this call (a ``--workspace`` flag): wins over everything.
        configured: ``registry.workspace`` of a configuration: used when ``KEEL_WORKSPACE`` is not set.

    Returns:
        ``workspace``, else ``KEEL_WORKSPACE``, else ``configured``, else ``.keel`` (relative to the cwd).
    """
    value = workspace or os.environ.get("KEEL_WORKSPACE") or configured or ".keel"
    return Path(value).expanduser().absolute()


def resolve_tracking_uri(workspace: Path, configured: str | None = None) -> str:
    """``MLFLOW_TRACKING_URI``, else the configured URI, else the workspace's SQLite store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or configured or f"sqlite:///{workspace / 'mlflow.db'}"


def _retry(call: Callable[[], _T], *, what: str, attempts: int = 30) -> _T:
    """Run ``call``, retrying while the SQLite store is busy (another keel process is writing)."""
    delay = 0.05
    for attempt in range(attempts):
        try:
            return call()
        except Exception as exc:
            text = str(exc).lower()
            if ("locked" not in text and "busy" not in text) or attempt == attempts - 1:
                raise
            time.sleep(delay * (1 + random.random()))  # noqa: S311 - jitter, not security
            delay = min(delay * 1.5, 1.0)
    raise AssertionError("unreachable")  # pragma: no cover


class Registry:
    """MLflow tracking and model registry, as keel uses them.

    Args:
        workspace: Folder of the embedded store and its artifacts.
        tracking_uri: MLflow tracking URI (see :func:`resolve_tracking_uri`).
    """

    def __init__(self, workspace: Path, tracking_uri: str) -> None:
        self.workspace = workspace
        self.tracking_uri = tracking_uri
        self._client: Any = None
        self._client_lock = threading.Lock()

    @classmethod
    def open(
        cls,
        workspace: str | Path | None = None,
        tracking_uri: str | None = None,
        *,
        configured: str | Path | None = None,
    ) -> Registry:
        """A registry for the resolved workspace and tracking URI.

        Args:
            workspace: The workspace given for this call (a ``--workspace`` flag; beats ``KEEL_WORKSPACE``).
            tracking_uri: A configured tracking URI (``MLFLOW_TRACKING_URI`` beats it).
            configured: The configuration's ``registry.workspace`` (``KEEL_WORKSPACE`` beats it).
        """
        folder = resolve_workspace(workspace, configured=configured)
        return cls(folder, resolve_tracking_uri(folder, tracking_uri))

    @property
    def embedded(self) -> bool:
        """Whether the store is the workspace's own SQLite file."""
        return self.tracking_uri == f"sqlite:///{self.workspace / 'mlflow.db'}"

    def exists(self) -> bool:
        """Whether there is anything to read (an embedded store that was never written does not exist)."""
        return not self.embedded or (self.workspace / "mlflow.db").is_file()

    @property
    def client(self) -> Any:
        """The MLflow client (created on first use, once even when threads ask at the same time)."""
        if self._client is not None:
            return self._client
        with self._client_lock:
            return self._open_client()

    def _open_client(self) -> Any:
        if self._client is None:
            from mlflow import MlflowClient

            _quiet_mlflow()

            if not self.embedded:
                self._client = _retry(lambda: MlflowClient(tracking_uri=self.tracking_uri), what="open the store")
                return self._client
            self.workspace.mkdir(parents=True, exist_ok=True)
            # MLflow creates and migrates a new SQLite store on first use; two processes doing that at once race
            # on the same ALTER TABLEs. The first keel process on this workspace does it alone, under a lock, and
            # copies the empty store MLflow built once for its version rather than migrating again (1.8 s).
            with self._workspace_lock(".store.lock"):
                database = self.workspace / "mlflow.db"
                if not database.exists():
                    from keel.io.empty_store import seed_store
                    from keel.io.sources import cache_dir

                    seed_store(database, cache_dir())
                client = _retry(lambda: MlflowClient(tracking_uri=self.tracking_uri), what="open the store")
                _retry(lambda: client.search_experiments(max_results=1), what="initialise the store")
            self._client = client
        return self._client

    def _workspace_lock(self, name: str) -> contextlib.AbstractContextManager[None]:
        from keel.io.files import locked

        return locked(self.workspace / name)

    def _require_store(self) -> None:
        if not self.exists():
            raise RegistryError(
                f"no model registry at {self.workspace} yet; run `keel train` first, or point KEEL_WORKSPACE or "
                "MLFLOW_TRACKING_URI at an existing one"
            )

    # -- runs ------------------------------------------------------------------------------------------------

    def experiment_id(self, name: str) -> str:
        """The id of experiment ``name``, created (with artifacts in the workspace) when missing."""
        client = self.client
        existing = _retry(lambda: client.get_experiment_by_name(name), what="find the experiment")
        if existing is not None:
            return str(existing.experiment_id)
        location = (self.workspace / "artifacts").as_uri() if self.embedded else None
        try:
            return str(_retry(lambda: client.create_experiment(name, artifact_location=location), what="create"))
        except Exception:
            # Another process created it at the same moment.
            found = _retry(lambda: client.get_experiment_by_name(name), what="find the experiment")
            if found is None:
                raise
            return str(found.experiment_id)

    @contextlib.contextmanager
    def run(self, experiment: str, run_name: str, tags: dict[str, str] | None = None) -> Iterator[str]:
        """An MLflow run that ends FINISHED, FAILED or KILLED (Ctrl-C) as the block does."""
        run_id = self.start_run(experiment, run_name, tags)
        with ending_run(lambda status: self.end_run(run_id, status)):
            yield run_id

    def start_run(self, experiment: str, run_name: str, tags: dict[str, str] | None = None) -> str:
        """Start an MLflow run in ``experiment`` (created when missing) and return its id.

        End it with :meth:`end_run`, or use :meth:`run`.
        """
        client = self.client
        experiment_id = self.experiment_id(experiment)
        run = _retry(lambda: client.create_run(experiment_id, run_name=run_name, tags=tags or {}), what="start the run")
        return str(run.info.run_id)

    def end_run(self, run_id: str, status: str) -> None:
        """End a run as ``FINISHED``, ``FAILED`` or ``KILLED``."""
        _retry(lambda: self.client.set_terminated(run_id, status), what="finish the run")

    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        """Log flat parameters (values longer than MLflow accepts are cut)."""
        from mlflow.entities import Param

        items = [Param(str(k)[:250], str(v)[:6000]) for k, v in params.items()]
        for start in range(0, len(items), 100):
            chunk = items[start : start + 100]
            _retry(functools.partial(self.client.log_batch, run_id, params=chunk), what="log parameters")

    def log_metrics(self, run_id: str, metrics: dict[str, float]) -> None:
        """Log metrics (NaN values are skipped)."""
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        items = [Metric(k, float(v), stamp, 0) for k, v in metrics.items() if v == v]
        for start in range(0, len(items), 500):
            chunk = items[start : start + 500]
            _retry(functools.partial(self.client.log_batch, run_id, metrics=chunk), what="log metrics")

    def log_datasets(self, run_id: str, datasets: list[DatasetRecord]) -> None:
        """Record the run's data as MLflow dataset inputs (shown under the run's "Datasets used")."""
        import json

        from mlflow.entities import Dataset, DatasetInput, InputTag

        inputs = [
            DatasetInput(
                Dataset(
                    name=record.name,
                    digest=record.digest,
                    source_type=record.source_type,
                    source=json.dumps({"uri": record.source}),
                    profile=json.dumps({"num_rows": record.rows, "sha256": record.files}),
                ),
                tags=[InputTag("mlflow.data.context", record.context)],
            )
            for record in datasets
        ]
        _retry(lambda: self.client.log_inputs(run_id, datasets=inputs), what="log the datasets")

    def log_model_directory(self, run_id: str, directory: Path) -> str:
        """Upload a model directory as the run's ``model`` artifacts and return their URI."""
        _retry(lambda: self.client.log_artifacts(run_id, str(directory), ARTIFACT_PATH), what="log artifacts")
        run = _retry(lambda: self.client.get_run(run_id), what="read the run")
        return f"{run.info.artifact_uri.rstrip('/')}/{ARTIFACT_PATH}"

    @contextlib.contextmanager
    def promotion_lock(self) -> Iterator[None]:
        """Serialise promotion decisions of concurrent ``keel train`` runs on this machine.

        The gate reads the champion, compares and moves the alias; two runs interleaving those steps could both
        decide against the same old champion. A file lock in the workspace makes the decision one step.
        """
        with self._workspace_lock(".promotion.lock"):
            yield

    # -- versions --------------------------------------------------------------------------------------------

    def register(
        self, name: str, source: str, run_id: str, *, description: str = "", tags: dict[str, str] | None = None
    ) -> int:
        """Create a model version in state ``registering`` (with ``tags`` known already) and return its number."""
        client = self.client
        with contextlib.suppress(Exception):
            # Fails harmlessly when the model exists already (or another process just created it).
            client.create_registered_model(name)
        version = _retry(
            lambda: client.create_model_version(
                name,
                source,
                run_id=run_id,
                tags={**(tags or {}), STATUS_TAG: REGISTERING},
                description=description or None,
            ),
            what="register the version",
        )
        return int(version.version)

    def mark_complete(self, name: str, version: int, manifest_sha256: str, tags: dict[str, str]) -> None:
        """Record the manifest hash and extra tags, then mark the version complete (last)."""
        client = self.client
        for key, value in {**tags, MANIFEST_TAG: manifest_sha256}.items():
            _retry(functools.partial(client.set_model_version_tag, name, str(version), key, value), what="tag")
        _retry(lambda: client.set_model_version_tag(name, str(version), STATUS_TAG, COMPLETE), what="tag")

    def set_tag(self, name: str, version: int, key: str, value: str) -> None:
        """Set one version tag."""
        _retry(lambda: self.client.set_model_version_tag(name, str(version), key, value), what="tag")

    def set_alias(self, name: str, alias: str, version: int) -> None:
        """Point ``alias`` at ``version``."""
        _retry(lambda: self.client.set_registered_model_alias(name, alias, str(version)), what="set the alias")

    def alias_version(self, name: str, alias: str) -> int | None:
        """The version ``alias`` points at, or ``None``."""
        self._require_store()
        try:
            found = _retry(lambda: self.client.get_model_version_by_alias(name, alias), what="read the alias")
        except Exception as exc:
            if _not_found(exc):
                return None
            raise
        return int(found.version)

    def versions(self, name: str) -> list[VersionInfo]:
        """Every version of ``name``, newest first."""
        self._require_store()
        client = self.client
        try:
            found = _retry(lambda: client.search_model_versions(f"name='{_quote(name)}'"), what="list versions")
        except Exception as exc:
            if _not_found(exc):
                return []
            raise
        aliases = self._aliases(name)
        return sorted((self._info(v, aliases) for v in found), key=lambda v: v.version, reverse=True)

    def model_names(self) -> list[str]:
        """Names of all registered models."""
        self._require_store()
        found = _retry(lambda: self.client.search_registered_models(), what="list models")
        return sorted(str(m.name) for m in found)

    def get(self, ref: ModelRef) -> VersionInfo:
        """The version a reference names.

        Raises:
            RegistryError: The model, alias or version does not exist.
        """
        self._require_store()
        names = self.model_names()
        if ref.name not in names:
            known = ", ".join(names) or "none yet"
            raise RegistryError(f"no registered model named {ref.name!r} (registered: {known})")
        if ref.version is None:
            alias = ref.alias or "champion"
            number = self.alias_version(ref.name, alias)
            if number is None:
                raise RegistryError(
                    f"model {ref.name!r} has no version with alias {alias!r}; see `keel models list {ref.name}`"
                )
        else:
            number = ref.version
        for info in self.versions(ref.name):
            if info.version == number:
                return info
        raise RegistryError(f"model {ref.name!r} has no version {number}; see `keel models list {ref.name}`")

    def _aliases(self, name: str) -> dict[int, list[str]]:
        try:
            model = _retry(lambda: self.client.get_registered_model(name), what="read the model")
        except Exception as exc:
            if _not_found(exc):
                return {}
            raise
        result: dict[int, list[str]] = {}
        raw = getattr(model, "aliases", {}) or {}
        for alias, version in dict(raw).items():
            result.setdefault(int(version), []).append(str(alias))
        return result

    @staticmethod
    def _info(version: Any, aliases: dict[int, list[str]]) -> VersionInfo:
        number = int(version.version)
        return VersionInfo(
            name=str(version.name),
            version=number,
            source=str(version.source),
            run_id=version.run_id,
            tags=dict(version.tags or {}),
            aliases=sorted(aliases.get(number, [])),
            created_at=int(version.creation_timestamp or 0),
            description=str(version.description or ""),
        )

    def run_metrics(self, run_id: str) -> dict[str, float]:
        """The metrics logged by a run."""
        run = _retry(lambda: self.client.get_run(run_id), what="read the run")
        return {str(k): float(v) for k, v in run.data.metrics.items()}

    # -- artifacts -------------------------------------------------------------------------------------------

    def local_directory(self, info: VersionInfo) -> Path:
        """A local folder holding the version's model directory (downloaded when the store is remote).

        Raises:
            RegistryError: The artifacts are gone.
        """
        parsed = urlparse(info.source)
        if parsed.scheme in ("", "file"):
            path = Path(unquote(parsed.path))
            if not path.is_dir():
                raise RegistryError(
                    f"{info.name}:{info.version}: its artifacts at {path} are missing; was the workspace moved or "
                    "cleaned?"
                )
            return path
        from mlflow.artifacts import download_artifacts

        target = Path(tempfile.mkdtemp(prefix=f"keel-{info.name}-{info.version}-"))
        try:
            return Path(download_artifacts(artifact_uri=info.source, dst_path=str(target)))
        except Exception as exc:  # noqa: BLE001 - MLflow's stores raise many kinds for a failed download
            shutil.rmtree(target, ignore_errors=True)
            raise RegistryError(f"{info.name}:{info.version}: could not download its artifacts: {exc}") from None


@contextlib.contextmanager
def ending_run(end: Callable[[str], None]) -> Iterator[None]:
    """End a run as the block ends: ``FINISHED``, ``KILLED`` on Ctrl-C, ``FAILED`` on any other exception.

    Args:
        end: Ends the run with the status it is given (an error while ending a failed run is not raised).
    """
    try:
        yield
    except KeyboardInterrupt:
        with contextlib.suppress(Exception):
            end("KILLED")
        raise
    except BaseException:
        with contextlib.suppress(Exception):
            end("FAILED")
        raise
    end("FINISHED")


def find_champion(registry: RegistryReads, name: str, alias: str = "champion") -> tuple[VersionInfo, Path] | None:
    """The version ``alias`` points at and a local folder with its files, or ``None`` when there is none.

    Raises:
        RegistryError: The version's files are missing or could not be downloaded.
    """
    if not registry.exists():
        return None
    try:
        version = registry.alias_version(name, alias)
    except RegistryError:
        return None
    if version is None:
        return None
    info = registry.get(ModelRef(name=name, version=version))
    return info, registry.local_directory(info)


def _not_found(exc: Exception) -> bool:
    code = str(getattr(exc, "error_code", ""))
    return "RESOURCE_DOES_NOT_EXIST" in code or "not found" in str(exc).lower()


def _quote(name: str) -> str:
    return name.replace("'", "\\'")


def _quiet_mlflow() -> None:
    # MLflow announces database migrations and other internals at INFO; keel reports what matters itself.
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
