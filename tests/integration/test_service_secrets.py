"""Secrets and exposure of a real `keel serve`: API keys come only from the environment (or a file it names), are
never logged, echoed or stored with a model; request bodies are never logged; the service binds 127.0.0.1 unless
told otherwise and says so; no CORS headers are sent.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.reliability_helpers import train_second_model
from tests.integration.serving_helpers import free_port, running_server, server_env

pytestmark = pytest.mark.slow

KEY = f"file-key-{secrets.token_hex(12)}"
ENV_KEY = f"env-key-{secrets.token_hex(12)}"
WRONG = f"wrong-key-{secrets.token_hex(12)}"
MARKER = f"body-marker-{secrets.token_hex(8)}"


def _listening_addresses(port: int) -> set[str]:
    """Local addresses of listening TCP sockets on ``port``, from /proc (no traffic is sent anywhere)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if int(hex_port, 16) == port and state == "0A":  # 0A: LISTEN
                found.add(address)
    return found


def test_keys_from_a_file_and_the_environment_are_never_logged_or_echoed_and_no_cors(
    adult_workspace: Path, tmp_path: Path
) -> None:
    key_file = tmp_path / "keys"
    key_file.write_text(f"# keys of the scoring service\n{KEY}\n", encoding="utf-8")
    with running_server(
        adult_workspace,
        tmp_path / "serve.log",
        "--poll-interval",
        "0",
        "--access-log",  # the request lines are logged; keys and bodies must still not be
        KEEL_API_KEYS_FILE=str(key_file),
        KEEL_API_KEYS=ENV_KEY,
    ) as server:
        port = int(server.url.rsplit(":", 1)[1])
        with server.client() as http:
            example = dict(http.get("/v1/model", headers={"X-API-Key": KEY}).json()["feature_schema"]["example"])
            secret_body = {**example, "occupation": MARKER}
            for headers in ({}, {"Authorization": f"Bearer {WRONG}"}, {"X-API-Key": WRONG}):
                refused = http.post("/v1/predict", json=secret_body, headers=headers)
                assert refused.status_code == 401
                assert WRONG not in refused.text
                assert KEY not in refused.text
            for headers in ({"Authorization": f"Bearer {KEY}"}, {"X-API-Key": KEY}, {"X-API-Key": ENV_KEY}):
                accepted = http.post("/v1/predict", json=secret_body, params={"explain": "true"}, headers=headers)
                assert accepted.status_code == 200, accepted.text
            invalid = http.post("/v1/predict", json={**secret_body, "age": MARKER}, headers={"X-API-Key": KEY})
            assert invalid.status_code == 422
            assert KEY not in invalid.text

            # CORS is off: no browser on another origin is told it may read the answers.
            preflight = http.options(
                "/v1/predict",
                headers={
                    "Origin": "https://elsewhere.example",
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "content-type, x-api-key",
                },
            )
            assert preflight.status_code in (401, 405)
            for response in (preflight, accepted, http.get("/health", headers={"Origin": "https://elsewhere.example"})):
                assert not any(name.lower().startswith("access-control-") for name in response.headers)

        # It listens on loopback only, and said so when it started.
        assert _listening_addresses(port) == {"0100007F"}  # 127.0.0.1
    log = server.output()
    assert f"on http://127.0.0.1:{port} (this machine only" in log
    assert "POST /v1/predict" in log  # the access log was on
    for secret in (KEY, ENV_KEY, WRONG, MARKER):
        assert secret not in log, secret


@pytest.mark.parametrize("content", [None, "# no keys here\n"], ids=["missing-file", "empty-file"])
def test_an_unusable_key_file_stops_the_service_before_it_listens(
    adult_workspace: Path, tmp_path: Path, content: str | None
) -> None:
    key_file = tmp_path / "keys"
    if content is not None:
        key_file.write_text(content, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "keel", "serve", "--port", str(free_port()), "--poll-interval", "0"],
        env=server_env(adult_workspace, KEEL_API_KEYS_FILE=str(key_file)),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode != 0
    assert f"KEEL_API_KEYS_FILE={key_file}" in result.stderr
    assert "Traceback" not in result.stderr
    assert "Uvicorn running" not in result.stdout + result.stderr


def test_api_keys_in_the_environment_never_reach_the_registry(tmp_path: Path) -> None:
    key_file = tmp_path / "keys"
    key_file.write_text(KEY, encoding="utf-8")
    workspace = train_second_model(
        tmp_path / "workspace", environment={"KEEL_API_KEYS": ENV_KEY, "KEEL_API_KEYS_FILE": str(key_file)}
    )
    files = [path for path in workspace.rglob("*") if path.is_file()]
    assert any(path.name == "mlflow.db" for path in files)
    assert any(path.name == "manifest.json" for path in files)
    for path in files:  # MLflow params, tags and artifacts, the manifest's environment record, the config copy
        data = path.read_bytes()
        assert ENV_KEY.encode() not in data, path
        assert KEY.encode() not in data, path
