"""Finding, loading, listing, promoting and exporting registered model versions.

The functions taking a ``workspace`` are what ``keel models ...`` (and the commands that use one version) call: each
opens the workspace's registry itself and returns a value :mod:`keel.render` shows.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keel.domain.refs import DEFAULT_ALIAS, ModelRef, parse_ref
from keel.errors import RegistryError
from keel.io import artifacts, exports
from keel.io.files import user_file_mode, user_folder_mode
from keel.io.registry import Registry, VersionInfo

PROMOTION_REASON_TAG = "keel.promotion"
EVIDENCE_TAG = "keel.evidence"
"""Live evidence a promotion was decided on (``keel models promote --evidence``), as JSON."""


@dataclass
class ModelHandle:
    """A verified, loaded model version.

    Attributes:
        info: The registry's record of the version.
        loaded: The model and its manifest.
    """

    info: VersionInfo
    loaded: artifacts.LoadedModel

    @property
    def label(self) -> str:
        """``name:version``."""
        return f"{self.info.name}:{self.info.version}"


def default_reference(registry: Registry) -> str:
    """The model a command uses when given none: the champion of the only registered model.

    Raises:
        RegistryError: No model is registered, or several are (the message lists them).
    """
    names = registry.model_names()
    if len(names) == 1:
        return f"{names[0]}@{DEFAULT_ALIAS}"
    if not names:
        raise RegistryError(f"no model is registered in {registry.workspace} yet; run `keel train` first")
    raise RegistryError(
        f"{len(names)} models are registered ({', '.join(names)}); choose one with --model NAME (or NAME@ALIAS, "
        "NAME:VERSION)"
    )


def load_version(registry: Registry, reference: str | ModelRef | None) -> ModelHandle:
    """Find a version and load it, verifying every artifact's sha256.

    Args:
        registry: Where the version is registered.
        reference: ``NAME``, ``NAME@ALIAS``, ``NAME:VERSION``; ``None``: see :func:`default_reference`.

    Raises:
        RegistryError: The version does not exist or its registration never completed, or no reference was given
            and there is not exactly one registered model.
        IntegrityError: An artifact fails verification (the error names the file).
    """
    if reference is None:
        reference = default_reference(registry)
    ref = parse_ref(reference) if isinstance(reference, str) else reference
    info = registry.get(ref)
    if not info.complete:
        raise RegistryError(
            f"{info.name}:{info.version} is incomplete (its registration did not finish; status "
            f"{info.tags.get('keel.status', 'unknown')!r}) and cannot be used"
        )
    loaded = artifacts.load_model(registry.local_directory(info), manifest_sha256=info.manifest_sha256)
    return ModelHandle(info=info, loaded=loaded)


def load_from(workspace: Path | None, reference: str | ModelRef | None) -> ModelHandle:
    """:func:`load_version` from the registry of ``workspace`` (``None``: ``KEEL_WORKSPACE`` or ``.keel``)."""
    return load_version(Registry.open(workspace), reference)


def describe(info: VersionInfo) -> dict[str, Any]:
    """A JSON-ready summary of a version."""
    metrics = {k.removeprefix("keel.test."): float(v) for k, v in info.tags.items() if k.startswith("keel.test.")}
    return {
        "name": info.name,
        "version": info.version,
        "aliases": info.aliases,
        "status": "complete" if info.complete else f"incomplete ({info.tags.get('keel.status', 'unknown')})",
        "task": info.tags.get("keel.task"),
        "estimator": info.tags.get("keel.estimator"),
        "metrics": metrics,
        "promotion": info.tags.get(PROMOTION_REASON_TAG),
        "evidence": _evidence(info.tags.get(EVIDENCE_TAG)),
        "created_at": info.created_at,
        "run_id": info.run_id,
        "source": info.source,
    }


def _evidence(text: str | None) -> Any:
    import json

    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text  # cut at the tag's length limit: shown as written


def list_versions(registry: Registry, name: str | None = None) -> list[VersionInfo]:
    """Versions of one model, or of every model, newest first."""
    names = [name] if name else registry.model_names()
    if name and name not in registry.model_names():
        raise RegistryError(f"no registered model named {name!r} (registered: {', '.join(registry.model_names())})")
    found: list[VersionInfo] = []
    for each in names:
        found.extend(registry.versions(each))
    return found


@dataclass
class VersionList:
    """Registered versions, newest first, each beside its summary (:func:`describe`).

    Attributes:
        versions: The registry's records.
        summaries: One JSON-ready summary per version, in the same order.
    """

    versions: list[VersionInfo]
    summaries: list[dict[str, Any]]


def list_registered(workspace: Path | None, name: str | None = None) -> VersionList:
    """``keel models list``: the versions of one model, or of every model, in ``workspace``'s registry.

    Raises:
        RegistryError: No model of that name is registered.
    """
    versions = list_versions(Registry.open(workspace), name)
    return VersionList(versions=versions, summaries=[describe(v) for v in versions])


@dataclass
class VersionDetail:
    """One verified version: its summary, test metrics and manifest."""

    handle: ModelHandle

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: the summary, ``verified``, the test metrics and the manifest."""
        loaded = self.handle.loaded
        return {
            **describe(self.handle.info),
            "verified": True,
            "test": loaded.metrics.get("test"),
            "manifest": dict(loaded.manifest),
        }


def show_version(workspace: Path | None, reference: str) -> VersionDetail:
    """``keel models show``: find and verify one version (every artifact's sha256 is checked).

    Raises:
        RegistryError: The version does not exist or is incomplete.
        IntegrityError: An artifact fails verification.
    """
    return VersionDetail(handle=load_from(workspace, reference))


@dataclass
class ManualPromotion:
    """A version made champion by hand (``keel models promote --reason``).

    Attributes:
        name: Registered model name.
        version: The new champion.
        reason: The reason given, as given.
    """

    name: str
    version: int
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"name": self.name, "version": self.version, "promoted": True, "reason": self.reason}


def promote_by_hand(workspace: Path | None, name: str, version: int, reason: str) -> ManualPromotion:
    """``keel models promote NAME VERSION --reason``: :func:`promote` in ``workspace``'s registry.

    Raises:
        RegistryError: The version does not exist, is incomplete, or the reason is empty.
        IntegrityError: Its artifacts fail verification.
    """
    info = promote(Registry.open(workspace), name, version, reason)
    return ManualPromotion(name=info.name, version=info.version, reason=reason)


def promote(registry: Registry, name: str, version: int, reason: str, alias: str = DEFAULT_ALIAS) -> VersionInfo:
    """Move ``alias`` to a version by hand, recording why.

    Raises:
        RegistryError: The version does not exist, is incomplete, or the reason is empty.
        IntegrityError: Its artifacts fail verification (a broken version is never promoted).
    """
    if not reason.strip():
        raise RegistryError("a manual promotion needs --reason, recorded with the version")
    handle = load_version(registry, ModelRef(name=name, version=version))
    with registry.promotion_lock():
        previous = registry.alias_version(name, alias)
        registry.set_tag(name, version, PROMOTION_REASON_TAG, f"manual: {reason.strip()}"[:5000])
        registry.set_alias(name, alias, version)
    if previous is not None and previous != version:
        registry.set_tag(name, previous, "keel.replaced_by", f"{version} (manual: {reason.strip()})"[:5000])
    return registry.get(ModelRef(name=name, version=handle.info.version))


@dataclass
class ExportResult:
    """A version copied out of the registry into a self-contained folder.

    Attributes:
        directory: The folder: the model directory (loadable with :func:`keel.io.artifacts.load_model`, or with
            :func:`keel.io.exports.load_exported`, which also checks the manifest against ``registry.json``) plus
            ``registry.json``.
        metadata: What ``registry.json`` holds (name, version, aliases, manifest sha256, …).
    """

    directory: Path
    metadata: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: the folder and the metadata."""
        return {"directory": str(self.directory), **self.metadata}


def export_from(workspace: Path | None, reference: str, output: Path) -> ExportResult:
    """``keel models export``: :func:`export_version` from ``workspace``'s registry."""
    return export_version(Registry.open(workspace), reference, output)


def export_version(registry: Registry, reference: str | ModelRef, output: Path) -> ExportResult:
    """Copy a verified version's artifacts and its registry record into ``output``.

    The folder needs no registry to be used: ``keel serve --model-dir`` and a container image (``MODEL`` build
    argument) load it directly, and the files are checked again against the manifest, whose own sha256 is kept in
    ``registry.json``. The copy is written beside ``output`` and renamed into place, so a failed export leaves
    nothing behind.

    Args:
        registry: The registry holding the version.
        reference: ``NAME``, ``NAME@ALIAS`` or ``NAME:VERSION``.
        output: The folder to create; it must not exist, or be empty.

    Returns:
        Where the export is and its metadata.

    Raises:
        RegistryError: The version does not exist or is incomplete, or ``output`` is a file or a non-empty folder.
        IntegrityError: An artifact fails verification, in the registry or in the copy.
    """
    output = output.expanduser().absolute()
    if output.is_file() or (output.is_dir() and any(output.iterdir())):
        raise RegistryError(f"{output} already exists and is not an empty folder; choose a new --output")
    handle = load_version(registry, reference)
    info = handle.info
    metadata: dict[str, Any] = {
        "name": info.name,
        "version": info.version,
        "aliases": list(info.aliases),
        "manifest_sha256": info.manifest_sha256,
        "run_id": info.run_id,
        "created_at": info.created_at,
        "description": info.description,
        "source": info.source,
        "tags": dict(info.tags),
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}.", suffix=".part"))
    try:
        shutil.copytree(handle.loaded.directory, staging, dirs_exist_ok=True)
        exports.write_metadata(staging, metadata)
        # The modes a new file and folder get under the umask (0644/0755 under 022): the folder is meant to be
        # shipped (an image runs its service as a non-root user), and mkdtemp/mkstemp would leave it 0700/0600.
        file_mode, folder_mode = user_file_mode(), user_folder_mode()
        for path in [staging, *staging.rglob("*")]:
            path.chmod(folder_mode if path.is_dir() else file_mode)
        # Check the copy, not only the source: what ships is what gets verified.
        exports.load_exported(staging)
        if output.is_dir():
            output.rmdir()
        staging.rename(output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ExportResult(directory=output, metadata=metadata)
