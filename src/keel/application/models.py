"""Finding, loading, listing and promoting registered model versions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from keel.domain.refs import DEFAULT_ALIAS, ModelRef, parse_ref
from keel.errors import RegistryError
from keel.io import artifacts
from keel.io.registry import Registry, VersionInfo

PROMOTION_REASON_TAG = "keel.promotion"


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


def load_version(registry: Registry, reference: str | ModelRef) -> ModelHandle:
    """Find a version and load it, verifying every artifact's sha256.

    Raises:
        RegistryError: The version does not exist or its registration never completed.
        IntegrityError: An artifact fails verification (the error names the file).
    """
    ref = parse_ref(reference) if isinstance(reference, str) else reference
    info = registry.get(ref)
    if not info.complete:
        raise RegistryError(
            f"{info.name}:{info.version} is incomplete (its registration did not finish; status "
            f"{info.tags.get('keel.status', 'unknown')!r}) and cannot be used"
        )
    loaded = artifacts.load_model(registry.local_directory(info), manifest_sha256=info.manifest_sha256)
    return ModelHandle(info=info, loaded=loaded)


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
        "created_at": info.created_at,
        "run_id": info.run_id,
        "source": info.source,
    }


def list_versions(registry: Registry, name: str | None = None) -> list[VersionInfo]:
    """Versions of one model, or of every model, newest first."""
    names = [name] if name else registry.model_names()
    if name and name not in registry.model_names():
        raise RegistryError(f"no registered model named {name!r} (registered: {', '.join(registry.model_names())})")
    found: list[VersionInfo] = []
    for each in names:
        found.extend(registry.versions(each))
    return found


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
