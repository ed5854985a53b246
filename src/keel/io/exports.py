"""Exported model versions: a model directory plus ``registry.json``, usable without any registry.

``keel models export`` writes such a folder; ``keel serve --model-dir`` and the container image (``MODEL`` build
argument) read it. ``registry.json`` records the version's name, number, aliases and the manifest's sha256, so the
manifest, and through it every file, is verified on load just as when loading from the registry.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from keel.errors import IntegrityError
from keel.io import artifacts

METADATA_FILE = "registry.json"
FORMAT = "keel-export/1"


def write_metadata(directory: Path, metadata: dict[str, Any]) -> None:
    """Write ``registry.json`` into an export folder (``format`` is added)."""
    artifacts.write_json(directory / METADATA_FILE, {"format": FORMAT, **metadata})


def read_metadata(directory: Path) -> dict[str, Any]:
    """Read and check an export folder's ``registry.json``.

    Raises:
        IntegrityError: The file is missing, unreadable or not a keel export's metadata.
    """
    path = directory / METADATA_FILE
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IntegrityError(f"{path}: not readable as an exported version's metadata ({exc})") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise IntegrityError(f"{path}: not a keel export's metadata (expected format {FORMAT})")
    if not isinstance(metadata.get("manifest_sha256"), str):
        raise IntegrityError(f"{path}: has no manifest_sha256, so the export cannot be verified")
    return metadata


def load_exported(directory: Path) -> tuple[artifacts.LoadedModel, dict[str, Any]]:
    """Verify and load an export folder: the manifest against ``registry.json``, every file against the manifest.

    Returns:
        The loaded model and the version's registry metadata.

    Raises:
        IntegrityError: The metadata is missing or a file fails verification.
    """
    metadata = read_metadata(directory)
    loaded = artifacts.load_model(directory, manifest_sha256=metadata["manifest_sha256"])
    return loaded, metadata
