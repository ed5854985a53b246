"""The service outlives its registry: a real `keel serve` keeps its loaded model when the store vanishes or the served
version is deleted, `/ready` says what is wrong (once, in the log too), and recovers when the store is back.
A tampered artifact is refused by `keel evaluate`, naming the file (serve and hot swap: test_serving_ops.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.integration.serving_helpers import Server, running_server
from tests.workspaces import copy_workspace_to

pytestmark = pytest.mark.slow

POLL = "0.3"


def wait_for(server: Server, predicate: Any, what: str, timeout: float = 60) -> dict[str, Any]:
    """Poll ``/ready`` until ``predicate(document)`` holds."""
    deadline = time.monotonic() + timeout
    with server.client() as http:
        while True:
            document = http.get("/ready").json()
            if predicate(document):
                return dict(document)
            assert time.monotonic() < deadline, f"{what}: /ready is {document}\n{server.output()}"
            time.sleep(0.2)


def still_serving(server: Server, example: dict[str, Any], version: int = 1) -> None:
    with server.client() as http:
        answer = http.post("/v1/predict", json=example)
        assert answer.status_code == 200, answer.text
        assert answer.json()["version"] == version
        assert http.get("/v1/model").json()["version"] == version
        assert http.get("/health").status_code == 200
        assert http.get("/").status_code < 500


def test_the_registry_disappearing_and_the_version_being_deleted_keep_the_model_serving(
    adult_workspace: Path, tmp_path: Path
) -> None:
    workspace = copy_workspace_to(adult_workspace, tmp_path / "workspace")
    store = workspace / "mlflow.db"
    with running_server(workspace, tmp_path / "serve.log", "--poll-interval", POLL) as server:
        with server.client() as http:
            example = dict(http.get("/v1/model").json()["feature_schema"]["example"])
            assert "problem" not in http.get("/ready").json()

        # 1. The store disappears (moved away, a volume unmounted).
        store.rename(tmp_path / "mlflow.db.away")
        ready = wait_for(server, lambda d: "problem" in d, "the missing registry is reported")
        assert ready["status"] == "ready"
        assert ready["version"] == 1
        assert "adult-income@champion" in ready["problem"]
        assert "no model registry" in ready["problem"]
        still_serving(server, example)
        with server.client() as http:
            reload = http.post("/v1/admin/reload")
        assert reload.status_code == 503
        assert "could not check the registry" in reload.json()["error"]
        time.sleep(1.5)  # several polls fail meanwhile; the log says it once, not once per poll
        assert server.output().count("cannot read the model registry; still serving adult-income version 1") == 1

        # 2. It comes back: the problem clears, and the log says so.
        (tmp_path / "mlflow.db.away").rename(store)
        wait_for(server, lambda d: "problem" not in d, "the registry being back is noticed")
        assert "the model registry can be read again" in server.output()

        # 3. The served version is deleted from the registry, its files with it.
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=f"sqlite:///{store}")
        directory = Path(client.get_model_version("adult-income", "1").source.removeprefix("file://"))
        client.delete_model_version("adult-income", "1")
        shutil.rmtree(directory)
        ready = wait_for(server, lambda d: "problem" in d, "the deleted version is reported")
        assert "no version with alias 'champion'" in ready["problem"]
        still_serving(server, example)
    output = server.output()
    assert "Traceback" not in output, output
    assert output.count("cannot read the model registry") == 2


def test_evaluate_refuses_a_tampered_artifact_naming_the_file(
    keel_command: list[str], copy_workspace: Path, adult_rows: pd.DataFrame, tmp_path: Path
) -> None:
    [schema] = list(copy_workspace.rglob("schema.json"))
    data = bytearray(schema.read_bytes())
    data[len(data) // 2] ^= 0x01
    schema.write_bytes(bytes(data))
    source = tmp_path / "labelled.csv"
    adult_rows.head(50).to_csv(source, index=False)
    result = subprocess.run(
        [*keel_command, "evaluate", "-m", "adult-income:1", "-d", str(source)],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=300,
        check=False,
    )
    assert result.returncode == 3, result.stdout + result.stderr
    assert "schema.json" in result.stderr
    assert "does not match" in result.stderr
    assert "Traceback" not in result.stderr
