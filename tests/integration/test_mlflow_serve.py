"""`mlflow models serve` on a keel version: MLflow's own scoring server, on loopback, answers with keel's numbers."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

from tests.integration.serving_helpers import free_port
from tests.integration.test_mlflow_model import URI, keel_predictions
from tests.processes import stop

pytestmark = pytest.mark.slow
# Two processes import MLflow before the first answer (the CLI, then uvicorn's app): slow on a busy machine.
STARTUP_SECONDS = 600


@pytest.fixture(scope="module")
def mlflow_server(adult_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlflow models serve -m models:/adult-income@champion --env-manager local` on a free 127.0.0.1 port."""
    port = free_port()
    log = tmp_path_factory.mktemp("mlflow-serve") / "server.log"
    env = {k: v for k, v in os.environ.items() if k not in ("KEEL_WORKSPACE", "KEEL_API_KEYS")}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{adult_workspace / 'mlflow.db'}"
    # The scoring server is started as `uvicorn …` from PATH: this environment's, as `uv run` would set it.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", URI, "--env-manager", "local"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        # Its own session: the CLI starts uvicorn as a child, and both are stopped together at the end.
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"mlflow models serve exited with {process.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(f"{url}/ping", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow models serve did not answer within {STARTUP_SECONDS} s:\n{log.read_text()}")
            time.sleep(0.5)
        yield url
    finally:
        stop(process)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)


def _invoke(url: str, body: str) -> httpx.Response:
    return httpx.post(f"{url}/invocations", content=body, headers={"Content-Type": "application/json"}, timeout=60)


@pytest.mark.parametrize("orient", ["split", "records"])
def test_invocations_answer_with_keels_numbers(
    mlflow_server: str, adult_workspace: Path, adult_rows: pd.DataFrame, tmp_path: Path, orient: str
) -> None:
    rows = adult_rows.sample(n=60, random_state=5).reset_index(drop=True)
    payload = rows.to_json(orient="split", index=False) if orient == "split" else rows.to_json(orient="records")
    response = _invoke(mlflow_server, f'{{"dataframe_{orient}": {payload}}}')
    assert response.status_code == 200, response.text
    served = pd.DataFrame(response.json()["predictions"])
    expected = keel_predictions(adult_workspace, rows, tmp_path)
    assert list(served.columns) == list(expected.columns)
    assert served["prediction"].tolist() == expected["prediction"].tolist()
    for column in expected.columns[1:]:
        assert served[column].tolist() == pytest.approx(expected[column].tolist(), rel=1e-12, abs=1e-15)


def test_a_wrongly_typed_column_gets_mlflows_own_error(mlflow_server: str, adult_rows: pd.DataFrame) -> None:
    row = json.loads(adult_rows.head(1).to_json(orient="records"))[0]
    response = _invoke(mlflow_server, json.dumps({"dataframe_records": [{**row, "age": "forty"}]}))
    assert response.status_code == 400
    body = response.json()
    assert body["error_code"] == "BAD_REQUEST"
    # MLflow reads the JSON with the signature's types, so the request fails there, naming the column.
    assert "not compatible with model signature" in body["message"]
    assert "column age" in body["message"]
