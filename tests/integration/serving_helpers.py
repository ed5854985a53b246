"""Running `keel serve` as a real uvicorn process on a free loopback port, and registry moves for swap tests."""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.processes import stop

STARTUP_SECONDS = 180


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def server_env(workspace: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KEEL_API_KEYS", "MLFLOW_TRACKING_URI")}
    env["KEEL_WORKSPACE"] = str(workspace)
    env.update(extra)
    return env


@contextmanager
def running_server(workspace: Path, log: Path, *args: str, **env: str) -> Iterator[Server]:
    """`keel serve` on a free 127.0.0.1 port, until the block ends (then stopped with SIGTERM)."""
    port = free_port()
    command = [sys.executable, "-m", "keel", "serve", "--port", str(port), "--no-access-log", *args]
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=server_env(workspace, **env), stdout=out, stderr=subprocess.STDOUT)
    server = Server(url=f"http://127.0.0.1:{port}", process=process, log=log)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                raise AssertionError(f"keel serve exited with {process.returncode}:\n{server.output()}")
            try:
                if httpx.get(f"{server.url}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"keel serve did not become ready:\n{server.output()}")
            time.sleep(0.2)
        yield server
    finally:
        stop(process)


def register_copy(workspace: Path, *, name: str = "adult-income", of_version: int = 1) -> tuple[int, Path]:
    """Register the files of an existing version again as a new, complete version (not promoted).

    Returns:
        The new version number and its model directory.
    """
    from keel.domain.refs import ModelRef
    from keel.io.registry import Registry

    registry = Registry.open(workspace)
    info = registry.get(ModelRef(name=name, version=of_version))
    with registry.run("serving-tests", f"copy of {of_version}") as run_id:
        uri = registry.log_model_directory(run_id, registry.local_directory(info))
    version = registry.register(name, uri, run_id)
    assert info.manifest_sha256 is not None
    tags = {k: v for k, v in info.tags.items() if k.startswith("keel.") and k not in ("keel.status",)}
    registry.mark_complete(name, version, info.manifest_sha256, tags)
    new = registry.get(ModelRef(name=name, version=version))
    return version, registry.local_directory(new)


def set_champion(workspace: Path, version: int, *, name: str = "adult-income") -> None:
    """Move the alias directly (as a concurrent `keel train` would), without keel's own checks."""
    from keel.io.registry import Registry

    Registry.open(workspace).set_alias(name, "champion", version)


def as_json_records(frame: Any, features: list[str]) -> list[dict[str, Any]]:
    """Rows as a client would send them: missing values as null, whole numbers as integers."""
    records = []
    for row in frame[features].to_dict("records"):
        record = {}
        for key, value in row.items():
            if hasattr(value, "item"):
                value = value.item()
            if isinstance(value, float) and math.isnan(value):
                value = None
            elif isinstance(value, float) and value.is_integer():
                value = int(value)
            record[key] = value
        records.append(record)
    return records
