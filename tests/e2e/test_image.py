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
from tests.processes import stop
from tests.workspaces import copy_workspace_to

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


def _image_config(image: str) -> dict[str, Any]:
    done = subprocess.run(
        ["podman", "image", "inspect", "--format", "{{json .Config}}", image],
        capture_output=True,
        text=True,
        check=True,
    )
    config: dict[str, Any] = json.loads(done.stdout)
    return config


@contextlib.contextmanager
def _serving(
    image: str, log: Path, *, env: dict[str, str] | None = None, binds: tuple[Path, ...] = ()
) -> Iterator[str]:
    """Run the image's entrypoint and serve command under chroot on a free loopback port; yield the base URL.

    The image's own user, environment and working folder are used. Its filesystem is mounted read-only, so /tmp and
    the working folder get private tmpfs mounts, as a container runtime would give writable layers; ``binds`` are
    host folders mounted at the same path. All mounts live in a private mount namespace and vanish with it.
    """
    config = _image_config(image)
    root = subprocess.run(["podman", "image", "mount", image], capture_output=True, text=True, check=True)
    rootfs = root.stdout.strip()
    workdir = config.get("WorkingDir") or "/"
    port = _free_port()
    # The image's CMD with the host and port moved to a free loopback port.
    command = [*config["Entrypoint"], *config["Cmd"], "--host", "127.0.0.1", "--port", str(port)]
    variables = dict(item.split("=", 1) for item in config["Env"]) | {"HOME": workdir} | (env or {})
    inner = f"cd {shlex.quote(workdir)} && exec {shlex.join(command)}"
    steps = [
        f"mount --rbind /dev {rootfs}/dev",
        f"mount -t proc proc {rootfs}/proc",
        f"mount -t tmpfs -o mode=1777 tmpfs {rootfs}/tmp",
        f"mount -t tmpfs -o mode=1777 tmpfs {rootfs}{workdir}",
    ]
    for folder in binds:
        steps += [f"mkdir -p {rootfs}{folder}", f"mount --bind {folder} {rootfs}{folder}"]
    steps.append(
        f"exec chroot --userspec={shlex.quote(config['User'])} {rootfs} /usr/bin/env -i "
        + " ".join(shlex.quote(f"{k}={v}") for k, v in variables.items())
        + f" /bin/sh -c {shlex.quote(inner)}"
    )
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["unshare", "--mount", "--fork", "--kill-child", "sh", "-c", " && ".join(steps)], stdout=out, stderr=out
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                pytest.fail(f"keel serve exited with {process.returncode}:\n{log.read_text()[-4000:]}")
            with contextlib.suppress(OSError):
                if _get(f"{base}/ready")[0] == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"keel serve was not ready in 180 s:\n{log.read_text()[-4000:]}")
            time.sleep(1)
        yield base
    finally:
        stop(process)
        subprocess.run(["podman", "image", "unmount", image], capture_output=True, check=False)


def _copy_workspace(source: Path, target: Path, owner: str) -> Path:
    """A copy of an embedded workspace (its store's absolute artifact paths rewritten), owned by the image's user."""
    copy_workspace_to(source, target)
    uid, _, gid = owner.partition(":")
    for path in [target, *target.rglob("*")]:
        os.chown(path, int(uid), int(gid or uid))
    return target


def _predict(base: str, workspace: Path) -> dict[str, Any]:
    """One prediction through the route the service's own OpenAPI document names."""
    status, openapi = _get(f"{base}/openapi.json")
    assert status == 200
    routes = [p for p, ops in openapi["paths"].items() if "post" in ops and "predict" in p and "{" not in p]
    assert routes, f"no prediction route in {sorted(openapi['paths'])}"
    schema = json.loads(next(workspace.rglob("schema.json")).read_text(encoding="utf-8"))
    status, answer = _get(f"{base}{routes[0]}", schema["example"])
    assert status == 200, answer
    assert isinstance(answer, dict)
    return answer


def test_the_image_is_a_non_root_keel_service(image: str) -> None:
    config = _image_config(image)
    assert config["Entrypoint"] == ["keel"]
    assert config["Cmd"] == ["serve", "--host", "0.0.0.0"]  # noqa: S104 - the image's documented default
    assert config["User"] not in ("", "0", "root", "0:0")
    assert "8000/tcp" in config["ExposedPorts"]
    assert any(item.startswith("KEEL_MODEL_DIR=/") for item in config["Env"]), "the baked model is not configured"


def test_the_image_serves_a_registry_mounted_at_run_time(image: str, adult_workspace: Path, tmp_path: Path) -> None:
    owner = _image_config(image)["User"]
    workspace = _copy_workspace(adult_workspace, tmp_path / "workspace", owner)
    env = {"KEEL_WORKSPACE": str(workspace), "KEEL_MODEL_DIR": ""}
    with _serving(image, tmp_path / "serve.log", env=env, binds=(workspace,)) as base:
        answer = _predict(base, adult_workspace)
        assert _get(f"{base}/health")[0] == 200
    assert answer["model"] == "adult-income"
    assert answer["version"] == 1
    assert answer["label"] in {"<=50K", ">50K"}
    assert abs(sum(answer["probabilities"].values()) - 1) < 1e-6


def test_the_image_serves_its_baked_model_with_no_registry(image: str, adult_workspace: Path, tmp_path: Path) -> None:
    with _serving(image, tmp_path / "serve.log") as base:
        answer = _predict(base, adult_workspace)
    assert answer["model"] == "adult-income"
    assert answer["version"] == 1
    assert answer["label"] in {"<=50K", ">50K"}
