"""Time the fixed cost of `keel predict`, `keel serve` and `keel models list` against what their libraries need.

Run: uv run python benchmarks/startup.py [--runs N] [--workspace DIR]

The floor, measured in the same run: a script that asks MLflow's own client for the Adult champion's version (the
same SQLite store) and loads its booster with LightGBM, the least any command that scores with the model must do.
Each figure is the wall time of a fresh process:
- `keel models list` (no model is loaded: its floor is the MLflow query alone, printed too);
- `keel predict` on a 3-row CSV;
- `keel serve` until GET /ready answers 200.
A workspace holding an Adult champion is used when given (or in KEEL_WORKSPACE); otherwise one is trained first.
The machine is shared: figures are medians of several runs, each ratio against the floor of the same run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from machine import bytecode_note, user_env

REFERENCE = "adult-income@champion"

QUERY = r"""
import sys
from mlflow import MlflowClient
version = MlflowClient(tracking_uri=sys.argv[1]).get_model_version_by_alias("adult-income", "champion")
print(version.source)
"""

QUERY_AND_BOOSTER = (
    QUERY
    + r"""
from pathlib import Path
from urllib.parse import urlparse, unquote
import lightgbm
booster = lightgbm.Booster(model_file=str(Path(unquote(urlparse(version.source).path)) / "model.lgb.txt"))
print(booster.num_trees())
"""
)

ROWS = """age,workclass,fnlwgt,education,education_num,marital_status,occupation,relationship,race,sex,capital_gain,\
capital_loss,hours_per_week,native_country
25,Private,226802,11th,7,Never-married,Machine-op-inspct,Own-child,Black,Male,0,0,40,United-States
38,Private,89814,HS-grad,9,Married-civ-spouse,Farming-fishing,Husband,White,Male,0,0,50,United-States
28,Local-gov,336951,Assoc-acdm,12,Married-civ-spouse,Protective-serv,Husband,White,Male,0,0,40,United-States
"""


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=env)
    return time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_ready(env: dict[str, str], reference: str = REFERENCE, timeout: float = 180) -> float:
    """Seconds from starting `keel serve` until GET /ready answers 200."""
    port = free_port()
    command = [sys.executable, "-m", "keel", "serve", reference, "--port", str(port), "--no-access-log"]
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - started < timeout:
            if process.poll() is not None:
                raise SystemExit(f"keel serve exited with {process.returncode} before it was ready")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=5) as response:
                    if response.status == 200:
                        return time.perf_counter() - started
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.05)
        raise SystemExit(f"keel serve was not ready after {timeout:.0f} s")
    finally:
        process.terminate()
        process.wait(timeout=30)


def workspace_with_champion(given: str | None) -> tuple[Path, Path | None]:
    """A workspace with an Adult champion, and a temporary folder to delete afterwards (if one was trained)."""
    candidate = given or os.environ.get("KEEL_WORKSPACE")
    if candidate and (Path(candidate) / "mlflow.db").is_file():
        return Path(candidate).absolute(), None
    temporary = Path(tempfile.mkdtemp(prefix="keel-bench-startup-"))
    workspace = temporary / "workspace"
    print(f"training an Adult champion into {workspace} …", file=sys.stderr)
    env = user_env(KEEL_WORKSPACE=str(workspace))
    env.pop("MLFLOW_TRACKING_URI", None)
    subprocess.run([sys.executable, "-m", "keel", "train", "-q"], env=env, check=True, stdout=subprocess.DEVNULL)
    return workspace, temporary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per figure (median reported)")
    parser.add_argument("--workspace", help="a workspace holding an Adult champion [default: train one]")
    args = parser.parse_args()
    workspace, temporary = workspace_with_champion(args.workspace)
    env = user_env(KEEL_WORKSPACE=str(workspace))
    env.pop("MLFLOW_TRACKING_URI", None)
    uri = f"sqlite:///{workspace / 'mlflow.db'}"
    python = sys.executable
    figures: dict[str, list[float]] = {}
    try:
        with tempfile.TemporaryDirectory() as folder:
            rows, out = Path(folder) / "rows.csv", Path(folder) / "out.csv"
            rows.write_text(ROWS, encoding="utf-8")
            # Interleaved, so that a busy moment of the shared machine hits every figure alike.
            for _ in range(args.runs):
                for name, measure in [
                    ("floor: MLflow query", lambda: timed([python, "-c", QUERY, uri], env)),
                    ("floor: query + booster", lambda: timed([python, "-c", QUERY_AND_BOOSTER, uri], env)),
                    ("keel models list", lambda: timed([python, "-m", "keel", "models", "list"], env)),
                    (
                        "keel predict (3 rows)",
                        lambda: timed([python, "-m", "keel", "predict", "-i", str(rows), "-o", str(out)], env),
                    ),
                    ("keel serve → /ready", lambda: serve_ready(env)),
                ]:
                    figures.setdefault(name, []).append(measure())
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
    median = {name: statistics.median(values) for name, values in figures.items()}
    query, floor = median["floor: MLflow query"], median["floor: query + booster"]
    print(f"{'figure':<26}{'seconds':>9}{'vs query':>10}{'vs floor':>10}  goal")
    for name, value in median.items():
        goal = "≤ 1.3× floor" if name.startswith("keel") else ""
        print(f"{name:<26}{value:>9.2f}{value / query:>9.2f}×{value / floor:>9.2f}×  {goal}")
    print(
        f"\nfloor = MLflow's own client reading the champion's version + lightgbm.Booster loading its model file; "
        f"{os.cpu_count()} cores; medians of {args.runs} runs; load average {os.getloadavg()[0]:.1f} at the end; "
        f"{bytecode_note()}."
    )


if __name__ == "__main__":
    main()
