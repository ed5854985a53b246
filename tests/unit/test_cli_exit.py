"""How the ``keel`` command ends: like ``sys.exit``, minus the interpreter freeing every object one by one."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60, check=False
    )


def test_buffered_output_threads_and_atexit_functions_all_finish_before_the_status_is_returned() -> None:
    result = run(
        """
        import atexit, threading, time
        from keel.cli import _leave
        atexit.register(lambda: print("atexit ran"))
        worker = threading.Thread(target=lambda: (time.sleep(0.3), print("thread finished")))
        worker.start()
        print("x" * 200_000)  # more than a pipe holds: buffered, not yet written
        _leave(3)
        """
    )
    assert result.returncode == 3
    lines = result.stdout.splitlines()
    assert lines == ["x" * 200_000, "thread finished", "atexit ran"]


def test_an_exit_message_is_printed_and_ends_with_status_1_as_sys_exit_does() -> None:
    result = run("from keel.cli import _leave; _leave('no such model')")
    assert result.returncode == 1
    assert result.stderr.strip() == "no such model"
    assert run("from keel.cli import _leave; _leave(None)").returncode == 0


def test_the_command_keeps_its_exit_status_and_output() -> None:
    ok = subprocess.run([sys.executable, "-m", "keel", "config", "schema"], capture_output=True, text=True, check=False)
    assert ok.returncode == 0
    assert ok.stdout.rstrip().endswith("}")
    refused = subprocess.run(
        [sys.executable, "-m", "keel", "train", "no-such-config.yaml"], capture_output=True, text=True, check=False
    )
    assert refused.returncode == 2
    assert "no-such-config.yaml" in refused.stderr
