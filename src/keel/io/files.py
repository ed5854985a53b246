"""Temporary files and folders that become the user's files: created beside their target, with the user's mode.

``tempfile.mkstemp`` creates files 0600 and ``mkdtemp`` folders 0700 whatever the umask, which is right for scratch
space but wrong for predictions, reports and exports renamed into place afterwards: a colleague (or a service running
as another user) could not read them. These helpers give the temporary file the mode ``open()`` would have given a
new file under the current umask (0644 under umask 022), before anything is written to it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

_lock = threading.Lock()


def current_umask() -> int:
    """The process's umask (read from ``/proc`` where possible, so it is never changed, even for an instant)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _lock:  # elsewhere the only way to read it is to set it and set it back
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def user_file_mode() -> int:
    """The mode a new file gets from ``open()`` under the current umask (0644 under 022)."""
    return 0o666 & ~current_umask()


def user_folder_mode() -> int:
    """The mode a new folder gets from ``mkdir`` under the current umask (0755 under 022)."""
    return 0o777 & ~current_umask()


def temporary_file_for(path: Path) -> tuple[int, Path]:
    """A temporary file beside ``path`` (same folder, so renaming it over ``path`` is atomic), with the user's mode.

    Returns:
        The open descriptor and the temporary file's path; the caller closes the one and renames or removes the other.
    """
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        os.fchmod(handle, user_file_mode())
    except BaseException:
        os.close(handle)
        Path(name).unlink(missing_ok=True)
        raise
    return handle, Path(name)


def temporary_folder_for(path: Path) -> Path:
    """A temporary folder beside ``path``, with the mode a new folder gets under the current umask."""
    folder = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part"))
    folder.chmod(user_folder_mode())
    return folder


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created when missing) for the block, across processes."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
