"""The container image, built and run as a user would, without a container engine (opt-in: KEEL_IMAGE_TEST=1).

scripts/build-image.sh builds the image with podman (chroot isolation) from a local Debian base, baking in a model
exported with ``keel models export``. Containers cannot be started here (no cgroups), so the test mounts the built
image's filesystem and runs its own ENTRYPOINT, environment, user and working folder under ``chroot``, in a private
mount namespace, on a loopback port; then it asks the service for its health and a prediction.
Needs root, podman and debootstrap (the script installs them on Debian) and the package index; takes minutes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO

pytestmark = [
    pytest.mark.image,
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("KEEL_IMAGE_TEST") != "1", reason="set KEEL_IMAGE_TEST=1 to build the image"),
    pytest.mark.timeout(3600),
]

TAG = os.environ.get("KEEL_IMAGE_TEST_TAG", "localhost/keel:image-test")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _get(url: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


@pytest.fixture(scope="module")
def image(adult_workspace: Path) -> str:
    """The image built by scripts/build-image.sh with the session's Adult champion baked in."""
    from keel.application.models import export_version
    from keel.io.registry import Registry

    if os.geteuid() != 0:
        pytest.skip("building and chroot-running the image needs root")
    export = REPO / "models" / f".image-test-{os.getpid()}"
    try:
        export_version(Registry.open(adult_workspace), "adult-income@champion", export)
        build = subprocess.run(
            ["bash", str(REPO / "scripts" / "build-image.sh"), "--tag", TAG, "--model", str(export)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=3000,
            check=False,
        )
    finally:
        shutil.rmtree(export, ignore_errors=True)
        with contextlib.suppress(OSError):
            export.parent.rmdir()  # only when empty: the folder is the user's too
    assert build.returncode == 0, f"image build failed:\n{build.stdout[-4000:]}\n{build.stderr[-4000:]}"
    assert "baked adult-income:1" in build.stdout + build.stderr
    return TAG


@pytest.fixture(scope="module")
def served(image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The image's entrypoint serving on a loopback port under chroot; yields the base URL."""
    config = json.loads(
        subprocess.run(
            ["podman", "image", "inspect", "--format", "{{json .Config}}", image],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert config["Entrypoint"] == ["keel"]
    assert config["Cmd"][0] == "serve"
    assert config["User"] not in ("", "0", "root")
    assert "8000/tcp" in config["ExposedPorts"]
    root = subprocess.run(["podman", "image", "mount", image], capture_output=True, text=True, check=True).stdout
    root = root.strip()
    port = _free_port()
    # The image's CMD, with the host and port moved to a free loopback port.
    command = [*config["Entrypoint"], "serve", "--host", "127.0.0.1", "--port", str(port)]
    env = dict(item.split("=", 1) for item in config["Env"])
    env["HOME"] = config.get("WorkingDir") or "/"
    inner = f"cd {shlex.quote(config.get('WorkingDir') or '/')} && exec " + shlex.join(command)
    # The image's filesystem is mounted read-only; /tmp and the working folder get private tmpfs mounts, as a
    # container runtime would give writable layers. All mounts live in this namespace only and vanish with it.
    script = " && ".join(
        [
            f"mount --rbind /dev {root}/dev",
            f"mount -t proc proc {root}/proc",
            f"mount -t tmpfs -o mode=1777 tmpfs {root}/tmp",
            f"mount -t tmpfs -o mode=1777 tmpfs {root}/{(config.get('WorkingDir') or '/var/lib/keel').lstrip('/')}",
            "exec chroot --userspec="
            + shlex.quote(config["User"])
            + f" {root} /usr/bin/env -i "
            + " ".join(shlex.quote(f"{k}={v}") for k, v in env.items())
            + " /bin/sh -c "
            + shlex.quote(inner),
        ]
    )
    log = tmp_path_factory.mktemp("served") / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(["unshare", "--mount", "--fork", "sh", "-c", script], stdout=out, stderr=out)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"keel serve exited with {process.returncode}:\n{log.read_text()[-4000:]}")
            with contextlib.suppress(OSError):
                if _get(f"{base}/health")[0] == 200:
                    break
            time.sleep(1)
        else:
            pytest.fail(f"keel serve did not become healthy in 180 s:\n{log.read_text()[-4000:]}")
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
        subprocess.run(["podman", "image", "unmount", image], capture_output=True, check=False)


def test_the_image_serves_predictions_from_the_baked_model(served: str, adult_workspace: Path) -> None:
    status, health = _get(f"{served}/health")
    assert status == 200, health

    # Find the prediction route in the service's own OpenAPI document rather than assuming its path.
    status, openapi = _get(f"{served}/openapi.json")
    assert status == 200
    routes = [p for p, ops in openapi["paths"].items() if "post" in ops and "predict" in p and "{" not in p]
    assert routes, f"no prediction route in {sorted(openapi['paths'])}"
    schema = json.loads(
        next(adult_workspace.rglob("schema.json")).read_text(encoding="utf-8"),
    )
    record = {k: v for k, v in schema["example"].items() if k != schema.get("target", {}).get("name")}
    status, answer = _get(f"{served}{routes[0]}", record)
    assert status == 200, answer
    assert answer["model"] == "adult-income"
    assert answer["version"] == 1
    assert answer["label"] in {"<=50K", ">50K"}
    assert abs(sum(answer["probabilities"].values()) - 1) < 1e-6
