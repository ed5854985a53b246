"""A loaded model version and where the service gets versions from (shared by the swapper and recipe endpoints)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from keel.domain.model import FittedModel


@dataclass(frozen=True)
class ModelVersion:
    """A verified, loaded model version, as a :class:`ModelSource` hands it over.

    Attributes:
        name: Registered model name.
        version: Version number.
        aliases: Aliases pointing at it when it was loaded.
        model: The fitted model.
        manifest: Its verified manifest (provenance).
        metrics: The evaluation recorded at training time.
        directory: Its verified files (report, drift reference), when the source has them on disk.
    """

    name: str
    version: int
    aliases: list[str]
    model: FittedModel
    manifest: dict[str, Any]
    metrics: dict[str, Any]
    directory: Path | None = None


class ModelSource(Protocol):
    """Where the service's model comes from (the registry, in ``keel serve``)."""

    @property
    def reference(self) -> str:
        """What is served, as the user wrote it (``adult-income@champion``)."""
        ...

    @property
    def alias(self) -> str | None:
        """The alias followed, or ``None`` for a fixed version (which is never swapped)."""
        ...

    def pointed_version(self) -> int:
        """The version the reference points at now.

        Raises:
            KeelError: The registry cannot be read or the alias is gone.
        """
        ...

    def load(self, version: int) -> ModelVersion:
        """Load and verify one version.

        Raises:
            KeelError: The version is incomplete, missing or fails verification.
        """
        ...
