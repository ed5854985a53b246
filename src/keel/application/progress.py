"""How jobs report progress without printing: the CLI passes a reporter that renders it."""

from __future__ import annotations

import contextlib
import time
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


class TimedReporter:
    """Passes progress on to another reporter and records each finished step's wall time.

    Attributes:
        steps: ``(title, seconds)`` of each finished step, in order (``keel train --json`` prints them, so a
            regression in one step is visible).
    """

    def __init__(self, inner: Reporter) -> None:
        self.inner = inner
        self.steps: list[tuple[str, float]] = []

    @property
    def notes(self) -> list[str]:
        """The notes the wrapped reporter kept."""
        return list(getattr(self.inner, "notes", []))

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[None]:
        """Run the step in the wrapped reporter, timing it."""
        started = time.perf_counter()
        with self.inner.step(title):
            yield
        self.steps.append((title, time.perf_counter() - started))

    def note(self, text: str) -> None:
        """Pass the note on."""
        self.inner.note(text)
