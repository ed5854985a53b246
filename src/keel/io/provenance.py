"""Where a model came from: the git commit and the versions of the packages that built it."""

from __future__ import annotations

import shutil
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("keel", "lightgbm", "scikit-learn", "skops", "pandas", "numpy", "pyarrow", "mlflow", "pydantic")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages a model depends on."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def git_commit(folder: Path | None = None) -> str | None:
    """The commit checked out in ``folder`` (``+dirty`` with uncommitted changes), if it is a git work tree."""
    git = shutil.which("git")
    if git is None:
        return None
    cwd = str(folder or Path.cwd())
    try:
        commit = subprocess.run(  # noqa: S603 - fixed arguments, no shell
            [git, "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(  # noqa: S603
            [git, "status", "--porcelain", "--untracked-files=no"], cwd=cwd, capture_output=True, text=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}+dirty" if dirty else commit or None
