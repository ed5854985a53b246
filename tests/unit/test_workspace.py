"""Which workspace keel uses: a --workspace flag, then KEEL_WORKSPACE, then the config's registry.workspace."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.io.registry import Registry, resolve_workspace


def test_a_workspace_flag_beats_the_environment_which_beats_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KEEL_WORKSPACE", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert resolve_workspace() == tmp_path / ".keel"
    assert resolve_workspace(configured="from-config") == tmp_path / "from-config"
    monkeypatch.setenv("KEEL_WORKSPACE", str(tmp_path / "from-env"))
    assert resolve_workspace(configured="from-config") == tmp_path / "from-env"
    assert resolve_workspace(tmp_path / "from-flag", configured="from-config") == tmp_path / "from-flag"
    registry = Registry.open(tmp_path / "from-flag")
    assert registry.workspace == tmp_path / "from-flag"
    assert registry.tracking_uri == f"sqlite:///{tmp_path / 'from-flag' / 'mlflow.db'}"
