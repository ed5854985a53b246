"""Errors a user can act on.

Every error raised for a user's mistake (a bad config, bad data, a missing model) is a :class:`KeelError`. The CLI
prints its message without a traceback and exits with its ``exit_code``; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations


class KeelError(Exception):
    """Base class for errors caused by input the user controls.

    Attributes:
        exit_code: Process exit code the CLI uses for this error.
    """

    exit_code = 2


class ConfigError(KeelError):
    """The configuration is missing, malformed or invalid."""


class DataError(KeelError):
    """The data could not be read or failed validation."""


class RegistryError(KeelError):
    """A model, version or alias could not be found or used in the registry."""


class IntegrityError(KeelError):
    """A stored artifact does not match its recorded sha256, or a download does not match its checksum."""

    exit_code = 3
