"""A throwaway PostgreSQL server on 127.0.0.1 for tests of shared storages (Debian's server binaries)."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def server_binaries() -> tuple[str, str] | None:
    """``initdb`` and ``pg_ctl``, from PATH or Debian's ``/usr/lib/postgresql/N/bin``; ``None`` when absent."""
    for folder in [None, *sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]:
        initdb, pg_ctl = shutil.which("initdb", path=folder), shutil.which("pg_ctl", path=folder)
        if initdb and pg_ctl:
            return initdb, pg_ctl
    return None


@contextmanager
def running_postgres() -> Iterator[str]:
    """Start a PostgreSQL server on a free loopback port; yield its URL (user ``keel``, trust auth, db ``postgres``).

    PostgreSQL refuses to run as root, so under root the server runs as the ``postgres`` user. The data folder is
    deleted when the block ends.
    """
    binaries = server_binaries()
    if binaries is None:
        raise RuntimeError("PostgreSQL's server binaries (initdb, pg_ctl) are not installed")
    initdb, pg_ctl = binaries
    root = Path(tempfile.mkdtemp(prefix="keel-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, user="postgres", group="postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data = root / "data"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    subprocess.run(
        [*as_user, initdb, "-D", str(data), "-U", "keel", "--auth=trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -h 127.0.0.1 -k {root}"
    subprocess.run(
        [*as_user, pg_ctl, "-D", str(data), "-l", str(root / "server.log"), "-o", options, "-w", "-t", "60", "start"],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://keel@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"], check=False, capture_output=True
        )
        shutil.rmtree(root, ignore_errors=True)
