"""Fixtures shared by the end-to-end modules."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_projects import _Projects


@pytest.fixture(scope="session")
def trained(shared_data: Path, tmp_path_factory: pytest.TempPathFactory, keel_command: list[str]) -> _Projects:
    """The four example projects, each trained once per session from its shipped config (on first use)."""
    return _Projects(shared_data, tmp_path_factory, keel_command)
