"""Private staging folders in the workspace for a version's files, removed whatever happens (even after SIGKILL)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def staging_folder(workspace: Path) -> Iterator[Path]:
    """A private folder for the version's files, removed whatever happens.

    A process killed with SIGKILL cannot clean up; its folder (named after its pid) is removed by the next run
    once that pid is gone, while folders of runs still alive on this machine are left alone.
    """
    workspace.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_staging(workspace)
    folder = Path(tempfile.mkdtemp(prefix=f"staging-{os.getpid()}-", dir=workspace))
    try:
        yield folder / "model"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _remove_abandoned_staging(workspace: Path) -> None:
    for folder in workspace.glob("staging-*"):
        pid = folder.name.split("-")[1]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def process_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (one we may not signal counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
