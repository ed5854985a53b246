"""Operating the service: API keys, hot swap under load, and refusing tampered versions (real uvicorn processes)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.serving_helpers import (
    free_port,
    register_copy,
    running_server,
    server_env,
    set_champion,
)
from tests.workspaces import copy_workspace_to

pytestmark = pytest.mark.slow

KEY = "s3cret-key-for-tests"


def _example(http: httpx.Client) -> dict[str, Any]:
    return dict(http.get("/v1/model").json()["feature_schema"]["example"])


def test_api_keys_guard_every_route_but_health_and_ready(adult_workspace: Path, tmp_path: Path) -> None:
    with running_server(
        adult_workspace, tmp_path / "serve.log", "--poll-interval", "0", KEEL_API_KEYS=f"other,{KEY}"
    ) as server:
        with server.client() as anonymous:
            assert anonymous.get("/health").status_code == 200
            assert anonymous.get("/ready").status_code == 200
            for method, path in [
                ("GET", "/v1/model"),
                ("POST", "/v1/predict"),
                ("GET", "/metrics"),
                ("POST", "/v1/admin/reload"),
                ("GET", "/docs"),
            ]:
                response = anonymous.request(method, path, json={})
                assert response.status_code == 401, (path, response.text)
                assert "API key" in response.json()["error"]
            wrong = anonymous.get("/v1/model", headers={"Authorization": "Bearer not-the-key"})
            assert wrong.status_code == 401
        with server.client(headers={"Authorization": f"Bearer {KEY}"}) as bearer:
            example = _example(bearer)
            assert bearer.post("/v1/predict", json=example).status_code == 200
            assert bearer.post("/v1/admin/reload").json()["status"] == "unchanged"
        with server.client(headers={"X-API-Key": "other"}) as header:
            assert header.post("/v1/predict", json=example).status_code == 200
            assert header.get("/metrics").status_code == 200
    log = server.output()
    assert KEY not in log
    assert "not-the-key" not in log
    assert example["occupation"] not in log  # request bodies are never logged


def test_without_keys_no_authentication_is_needed(adult_workspace: Path, tmp_path: Path) -> None:
    with (
        running_server(adult_workspace, tmp_path / "serve.log", "--poll-interval", "0") as server,
        server.client() as http,
    ):
        assert http.post("/v1/predict", json=_example(http)).status_code == 200
        assert http.get("/metrics").status_code == 200


def test_hot_swap_under_load_drops_nothing_and_refuses_a_tampered_version(
    adult_workspace: Path, tmp_path: Path
) -> None:
    workspace = copy_workspace_to(adult_workspace, tmp_path / "workspace")
    with running_server(workspace, tmp_path / "serve.log", "--poll-interval", "0.3") as server:
        with server.client() as http:
            example = _example(http)
        statuses: Counter[int] = Counter()
        versions: Counter[int] = Counter()
        stop = threading.Event()

        def stream() -> None:
            with server.client() as http:
                while not stop.is_set():
                    response = http.post("/v1/predict", json={"records": [example, example]})
                    statuses[response.status_code] += 1
                    if response.status_code == 200:
                        versions[response.json()["version"]] += 1

        workers = [threading.Thread(target=stream) for _ in range(2)]
        for worker in workers:
            worker.start()
        try:
            time.sleep(1)
            version, _ = register_copy(workspace)
            set_champion(workspace, version)
            deadline = time.monotonic() + 60
            with server.client() as http:
                while http.get("/ready").json()["version"] != version:
                    assert time.monotonic() < deadline, server.output()
                    time.sleep(0.2)
            time.sleep(1)
        finally:
            stop.set()
            for worker in workers:
                worker.join()
        assert set(statuses) == {200}, statuses
        assert versions[1] > 0
        assert versions[version] > 0

        # A version whose artifact was changed after registration is refused; the current one keeps serving.
        tampered, directory = register_copy(workspace)
        model_file = directory / "model.lgb.txt"
        model_file.write_text(model_file.read_text(encoding="utf-8").replace("learning_rate", "learning_rat3", 1))
        set_champion(workspace, tampered)
        with server.client() as http:
            reload = http.post("/v1/admin/reload")
            assert reload.status_code == 409
            assert reload.json()["status"] == "refused"
            assert "model.lgb.txt" in reload.json()["reason"]
            assert http.get("/ready").json()["version"] == version
            answer = http.post("/v1/predict", json=example)
            assert answer.status_code == 200
            assert answer.json()["version"] == version
            time.sleep(1)  # the poller sees the same alias and keeps refusing without swapping
            assert http.get("/v1/model").json()["version"] == version
            metrics = http.get("/metrics").text
        info = next(f for f in text_string_to_metric_families(metrics) if f.name == "keel_model_info")
        assert [(s.labels["version"], s.value) for s in info.samples] == [(str(version), 1.0)]
    assert "model.lgb.txt" in server.output()


def test_a_tampered_champion_is_refused_at_start(adult_workspace: Path, tmp_path: Path) -> None:
    workspace = copy_workspace_to(adult_workspace, tmp_path / "workspace")
    model_file = next(workspace.rglob("model.lgb.txt"))
    model_file.write_bytes(model_file.read_bytes() + b"\n")
    port = free_port()
    result = subprocess.run(
        [sys.executable, "-m", "keel", "serve", "--port", str(port)],
        env=server_env(workspace),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 3, result.stderr
    assert "model.lgb.txt" in result.stderr
    assert "does not match" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_exported_version_is_served_without_a_registry(adult_workspace: Path, tmp_path: Path) -> None:
    from keel.application.models import export_version
    from keel.io.registry import Registry

    folder = export_version(Registry.open(adult_workspace), "adult-income@champion", tmp_path / "export").directory
    empty = tmp_path / "no-registry"
    with running_server(empty, tmp_path / "serve.log", "--model-dir", str(folder)) as server, server.client() as http:
        answer = http.post("/v1/predict", json=_example(http))
        assert answer.status_code == 200
        assert (answer.json()["model"], answer.json()["version"]) == ("adult-income", 1)
        assert http.post("/v1/admin/reload").json()["status"] == "unchanged"
    assert not empty.exists()
