"""How jobs report progress without printing: the CLI passes a reporter that renders it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Protocol


class Reporter(Protocol):
    """Receives progress from a job."""

    def step(self, title: str) -> contextlib.AbstractContextManager[None]:
        """A named step; the context manager ends when the step does."""
        ...

    def note(self, text: str) -> None:
        """A line of information worth showing (inferred types, dropped rows, the promotion decision)."""
        ...


class SilentReporter:
    """A reporter that shows nothing (tests, ``--quiet``, ``--json``); notes are kept for inspection."""

    def __init__(self) -> None:
        self.notes: list[str] = []
        self.steps: list[str] = []

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[None]:
        """Record the step's title."""
        self.steps.append(title)
        yield

    def note(self, text: str) -> None:
        """Keep the note."""
        self.notes.append(text)
