"""The container image's install steps, run without a container engine (cheap enough for every CI run).

The Dockerfile installs the locked runtime dependencies with ``uv sync --locked --no-dev`` and then the project as a
non-editable package; these tests run the same commands into a temporary environment and check that the result is
a working ``keel`` without the dev tools, and that ``.dockerignore`` lets exactly what those steps need through.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.timeout(300)


def _dockerfile_run_steps() -> str:
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    return text.replace("\\\n", " ")


def test_dockerfile_installs_from_the_lock_without_dev_groups() -> None:
    steps = _dockerfile_run_steps()
    assert "uv sync --locked --no-dev --no-install-project" in steps
    assert "uv sync --locked --no-dev --no-editable" in steps
    assert "UV_COMPILE_BYTECODE=1" in steps
    assert 'ENTRYPOINT ["keel"]' in steps
    assert "HEALTHCHECK" in steps
    assert "/health" in steps


def test_the_image_install_steps_give_a_working_keel_without_dev_tools(tmp_path: Path) -> None:
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not on PATH")
    # The same build context the image gets: only what .dockerignore lets through.
    context = tmp_path / "context"
    context.mkdir()
    for name in ("pyproject.toml", "uv.lock", "README.md"):
        shutil.copy2(REPO / name, context / name)
    shutil.copytree(REPO / "src", context / "src", ignore=shutil.ignore_patterns("__pycache__"))
    venv = tmp_path / "venv"
    env = {
        **os.environ,
        "UV_PROJECT_ENVIRONMENT": str(venv),
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_NO_PROGRESS": "1",
    }
    env.pop("VIRTUAL_ENV", None)
    for args in (["--no-install-project"], ["--no-editable"]):
        done = subprocess.run(
            [uv, "sync", "--locked", "--no-dev", *args, "--python", "3.11", "--project", str(context)],
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]

    keel = venv / "bin" / "keel"
    version = subprocess.run([keel, "--version"], capture_output=True, text=True, timeout=120, check=False)
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("keel ")
    # The runtime environment holds the service's dependencies but none of the dev tools.
    python = venv / "bin" / "python"
    probe = subprocess.run(
        [
            python,
            "-c",
            "import importlib.util as u, keel, pathlib; "
            "print(pathlib.Path(keel.__file__).parent); "
            "print(*[m for m in ('fastapi', 'uvicorn', 'lightgbm', 'mlflow') if u.find_spec(m) is None]); "
            "print(*[m for m in ('pytest', 'ruff', 'mypy') if u.find_spec(m) is not None])",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr
    location, missing, dev_tools = [*probe.stdout.splitlines(), "", "", ""][:3]
    assert "site-packages" in location, f"keel is not installed as a package: {location}"
    assert missing.strip() == "", f"runtime dependencies missing: {missing}"
    assert dev_tools.strip() == "", f"dev tools in the runtime environment: {dev_tools}"
    assert (Path(location) / "data" / "adult" / "adult.data.gz").is_file()


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; ``!`` re-includes; a pattern also covers what lies below."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern.lstrip("!").rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(p, body) or fnmatch.fnmatch(p, body.removeprefix("**/")) for p in prefixes):
            ignored = not negate
    return ignored


@pytest.mark.parametrize(
    ("path", "sent"),
    [
        ("pyproject.toml", True),
        ("uv.lock", True),
        ("README.md", True),
        ("src/keel/cli.py", True),
        ("src/keel/data/adult/adult.data.gz", True),
        ("models/adult/manifest.json", True),
        (".venv/bin/python", False),
        (".keel/mlflow.db", False),
        (".git/HEAD", False),
        ("tests/conftest.py", False),
        ("src/keel/__pycache__/cli.cpython-311.pyc", False),
        ("dist/keel-0.1.0-py3-none-any.whl", False),
    ],
)
def test_dockerignore_sends_only_what_the_build_needs(path: str, sent: bool) -> None:
    lines = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert _ignored(path, patterns) is not sent
