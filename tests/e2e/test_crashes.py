"""kill -9 of `keel train` at each step, and two runs at once: the registry stays truthful and usable."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from keel.application.models import list_versions, load_version
from keel.io.registry import Registry

pytestmark = pytest.mark.slow

# Lines the progress display prints on stderr when a step ends; killing right after one lands in the next step.
POINTS = {
    "during data load": None,
    "during fit": "✓ Splitting and validating",
    "during artifact writing": "✓ Evaluating on the test data",
    "during registration": "✓ Writing artifacts",
}


def start_train(extra: list[str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "keel", "train", *(extra or [])],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )


def kill_after(process: subprocess.Popen[str], marker: str | None, timeout: float = 600) -> bool:
    """SIGKILL the process right after ``marker`` appears on its stderr (or after 1.5 s without one).

    Returns whether the process was still running when killed.
    """
    assert process.stderr is not None
    if marker is None:
        time.sleep(1.5)
    else:
        deadline = time.monotonic() + timeout
        for line in process.stderr:
            if marker in line:
                break
            if time.monotonic() > deadline:  # pragma: no cover - a hung run fails the test below
                break
    alive = process.poll() is None
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    return alive


def test_kill_minus_nine_at_each_step_leaves_no_false_version(copy_workspace: Path) -> None:
    """Version 1 is the session's Adult model (champion); each killed run would have been version 2."""
    workspace = copy_workspace
    fast = ["model.params.n_estimators=80", "~model.early_stopping_rounds"]
    registry = Registry.open(workspace)
    assert registry.alias_version("adult-income", "champion") == 1
    for point, marker in POINTS.items():
        # A different model each time, so a finished run would be a real challenger and a different version.
        killed = kill_after(start_train([*fast, "model.params.num_leaves=15"]), marker)
        assert killed, f"the run finished before it could be killed {point}"
        versions = list_versions(registry, "adult-income")
        assert registry.alias_version("adult-income", "champion") == 1, point
        for info in versions:
            if info.complete:
                load_version(registry, f"adult-income:{info.version}")  # complete means loadable and verified
            else:
                assert "champion" not in info.aliases
    after = subprocess.run(
        [sys.executable, "-m", "keel", "train", "--json", *fast], capture_output=True, text=True, check=True
    )
    result = json.loads(after.stdout)
    assert result["version"] > 1
    assert not list(workspace.glob("staging-*")), "the next run removes folders abandoned by killed runs"
    listed = subprocess.run(
        [sys.executable, "-m", "keel", "models", "list", "--json"], capture_output=True, text=True, check=True
    )
    statuses = {v["version"]: v["status"] for v in json.loads(listed.stdout)}
    assert statuses[1] == "complete"
    assert statuses[result["version"]] == "complete"


def test_two_runs_at_once_register_distinct_versions_and_one_champion(workspace: Path) -> None:
    fast = ["--json", "model.params.n_estimators=60", "~model.early_stopping_rounds"]
    outputs: dict[str, subprocess.CompletedProcess[str]] = {}

    def run(name: str) -> None:
        outputs[name] = subprocess.run(
            [sys.executable, "-m", "keel", "train", *fast], capture_output=True, text=True, env=os.environ.copy()
        )

    threads = [threading.Thread(target=run, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=900)
    for name, output in outputs.items():
        assert output.returncode == 0, f"run {name} failed:\n{output.stderr}"
        assert "Traceback" not in output.stderr
        assert "locked" not in output.stderr
    results = [json.loads(o.stdout) for o in outputs.values()]
    assert sorted(r["version"] for r in results) == [1, 2]
    assert sum(r["champion"] for r in results) == 1, "identical models: only the first to decide becomes champion"
    champion = next(r["version"] for r in results if r["champion"])
    assert Registry.open(workspace).alias_version("adult-income", "champion") == champion
