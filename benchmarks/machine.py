"""What the benchmarks say about the machine, and the environment their timed commands run in.

A user's interpreter caches each module's bytecode the first time it imports it. Some machines (CI runners,
containers) set ``PYTHONDONTWRITEBYTECODE``: there, without ``uv sync --compile-bytecode``, every command compiles
pandas, scikit-learn and MLflow from source again (seconds, more than keel's own work), and start-up figures
measure the compiler. The timed commands therefore run without that variable, as on a user's machine after the
first run, and :func:`bytecode_note` says whether the installed packages were compiled.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path


def user_env(**extra: str) -> dict[str, str]:
    """This environment without ``PYTHONDONTWRITEBYTECODE`` (so keel's own modules are cached once), plus ``extra``."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    env.update(extra)
    return env


def bytecode_note() -> str:
    """One sentence: whether the environment's packages hold compiled bytecode."""
    spec = importlib.util.find_spec("pandas")
    origin = Path(spec.origin) if spec and spec.origin else None
    cached = origin is not None and any((origin.parent / "__pycache__").glob("__init__.*.pyc"))
    if cached:
        return "installed packages byte-compiled"
    return (
        "WARNING: installed packages are not byte-compiled (run `uv sync --compile-bytecode`): imports compile "
        "from source and the start-up figures measure the compiler"
    )
