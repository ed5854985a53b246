"""Model references as users write them: ``NAME``, ``NAME@ALIAS`` or ``NAME:VERSION``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from keel.errors import RegistryError

DEFAULT_ALIAS = "champion"
_REF = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*)(?:@(?P<alias>[A-Za-z][A-Za-z0-9_-]*)|:(?P<version>\d+))?$")


@dataclass(frozen=True)
class ModelRef:
    """A reference to a registered model version.

    Attributes:
        name: Registered model name.
        alias: Alias such as ``champion`` (exclusive with ``version``).
        version: Version number (exclusive with ``alias``).
    """

    name: str
    alias: str | None = None
    version: int | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        return f"{self.name}@{self.alias or DEFAULT_ALIAS}"


def parse_ref(text: str) -> ModelRef:
    """Parse ``NAME``, ``NAME@ALIAS`` or ``NAME:VERSION``; a bare name means ``NAME@champion``.

    Raises:
        RegistryError: The text is not a model reference.
    """
    match = _REF.match(text.strip())
    if match is None:
        raise RegistryError(
            f"{text!r} is not a model reference; write NAME, NAME@ALIAS (e.g. adult-income@champion) or NAME:VERSION"
        )
    version = match.group("version")
    alias = match.group("alias")
    if version is None and alias is None:
        alias = DEFAULT_ALIAS
    return ModelRef(name=match.group("name"), alias=alias, version=int(version) if version else None)
