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


def test_a_store_opened_in_the_background_is_the_one_the_job_then_uses(tmp_path: Path) -> None:
    registry = Registry.open(tmp_path / "ws")
    registry.open_in_background()
    client = registry.client  # waits for the background opening rather than opening a second client
    assert registry.client is client
    assert (tmp_path / "ws" / "mlflow.db").is_file()
    assert registry.model_names() == []
