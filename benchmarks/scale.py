"""Batch scoring at scale: in-process chunked scoring vs Dask LocalCluster (1 and 2 workers) vs the bare booster.

The Adult test rows are replicated to 2 and 10 million rows (Parquet, part files of 500,000 rows) and scored by:

- ``in-process``: ``keel.application.predict.predict_file`` (50,000-row chunks, Parquet output);
- ``dask-1`` / ``dask-2``: ``keel.application.dask_predict.predict_dask`` on a LocalCluster of 1 / 2 single-threaded
  worker processes (cluster start-up included: it is what a user waits for);
- ``ceiling``: the model's ``lightgbm.Booster.predict`` on one in-memory numpy array of the already transformed
  rows (no reading, validation, feature pipeline or writing): what scoring cannot beat.

Each measurement runs in a fresh process so peak RSS is its own (for Dask: the client plus the sum of the workers'
peaks). Goals (issue 6): in-process ≥ 80 % of the ceiling's rows/s; 2 workers ≥ 1.6x 1 worker; peak RSS within
20 % from 2 to 10 million rows.

Usage::

    uv run python benchmarks/scale.py                 # 2M and 10M rows, every engine
    uv run python benchmarks/scale.py --rows 200000   # a quick run
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PART_ROWS = 500_000
MODES = ("ceiling", "in-process", "dask-1", "dask-2")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _adult_rows():
    from keel.config import load_config
    from keel.io.sources import resolve_source
    from keel.io.tables import read_table

    config = load_config().config
    frame = read_table(resolve_source(config.data.test).path, csv=config.data.test.csv)
    frame["income"] = frame["income"].str.rstrip(".")
    return frame


def make_dataset(folder: Path, rows: int) -> Path:
    """Replicate the Adult test rows to ``rows`` rows in Parquet parts (an ``id`` column keeps rows apart)."""
    import numpy as np
    import pandas as pd

    target = folder / f"adult-{rows}"
    if target.is_dir():
        return target
    base = _adult_rows()
    staging = folder / f".adult-{rows}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    repeats = -(-PART_ROWS // len(base))
    block = pd.concat([base] * repeats, ignore_index=True)
    for index, start in enumerate(range(0, rows, PART_ROWS)):
        count = min(PART_ROWS, rows - start)
        part = block.iloc[:count].copy()
        part.insert(0, "id", np.arange(start, start + count, dtype=np.int64))
        part.to_parquet(staging / f"part-{index:05d}.parquet", index=False)
    staging.rename(target)
    return target


def train_model(workspace: Path) -> None:
    """Train the packaged Adult model into ``workspace`` (once)."""
    from keel.application.train import train
    from keel.config import load_config

    if (workspace / "mlflow.db").is_file():
        return
    train(load_config(overrides=[f"registry.workspace={workspace}"]))


def measure(mode: str, data: Path, workspace: Path, out: Path) -> dict[str, float]:
    """One measurement (runs in its own process)."""
    from keel.application.models import load_version
    from keel.io.registry import Registry

    handle = load_version(Registry.open(workspace), "adult-income@champion")
    if mode == "ceiling":
        import numpy as np

        from keel.domain.validation import coerce_features
        from keel.io.tables import iter_table

        model = handle.loaded.model
        matrices = [
            model.transform(coerce_features(c, model.schema, label="x").frame)
            for c in iter_table(data, chunk_rows=PART_ROWS)
        ]
        matrix = np.ascontiguousarray(np.vstack(matrices), dtype=np.float64)
        del matrices
        rows = len(matrix)
        started = time.perf_counter()
        model.estimator.predict(matrix)
        seconds = time.perf_counter() - started
        return {"rows": rows, "seconds": seconds, "rss_mb": _peak_rss_mb()}
    if mode == "in-process":
        from keel.application.predict import predict_file

        started = time.perf_counter()
        result = predict_file(handle, data, out / "predictions.parquet", chunk_rows=50_000)
        seconds = time.perf_counter() - started
        return {"rows": result.rows, "seconds": seconds, "rss_mb": _peak_rss_mb()}
    from keel.application import dask_predict

    workers = int(mode.split("-")[1])
    peaks: list[float] = []
    original = dask_predict.dask_client

    # Wrap the cluster so the workers' peak RSS is read before it shuts down.
    import contextlib

    @contextlib.contextmanager
    def measured_client(*args, **kwargs):
        with original(*args, **kwargs) as client:
            yield client
            reports = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
            peaks.extend(reports.values())

    dask_predict.dask_client = measured_client
    started = time.perf_counter()
    result = dask_predict.predict_dask(handle, data, out / "predictions", chunk_rows=50_000, workers=workers)
    seconds = time.perf_counter() - started
    return {"rows": result.rows, "seconds": seconds, "rss_mb": _peak_rss_mb() + sum(peaks)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[2_000_000, 10_000_000])
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()) / "keel-bench-scale")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="OpenMP threads for in-process scoring and the ceiling (Dask workers always use 1 each) "
        "[default: the machine's]",
    )
    parser.add_argument("--measure", nargs=2, metavar=("MODE", "DATA"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    workspace = args.folder / "workspace"
    if args.measure:
        out = Path(tempfile.mkdtemp(dir=args.folder, prefix="out-"))
        try:
            print(json.dumps(measure(args.measure[0], Path(args.measure[1]), workspace, out)))
        finally:
            shutil.rmtree(out, ignore_errors=True)
        return
    args.folder.mkdir(parents=True, exist_ok=True)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} (shared machines are noisy)")
    print(f"OpenMP threads in-process and for the ceiling: {args.threads or 'default'}; Dask workers: 1 each")
    print("training the Adult model …", flush=True)
    train_model(workspace)
    results: dict[tuple[int, str], dict[str, float]] = {}
    for rows in args.rows:
        print(f"writing {rows:,} rows …", flush=True)
        data = make_dataset(args.folder, rows)
        for mode in args.modes:
            command = [sys.executable, __file__, "--folder", str(args.folder), "--measure", mode, str(data)]
            env = dict(os.environ)
            if args.threads:
                env["OMP_NUM_THREADS"] = str(args.threads)
            done = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
            measured = json.loads(done.stdout.strip().splitlines()[-1])
            results[(rows, mode)] = measured
            print(
                f"  {mode:<11} {measured['rows'] / measured['seconds']:>12,.0f} rows/s  "
                f"peak RSS {measured['rss_mb']:>8,.0f} MB  ({measured['seconds']:.1f}s)",
                flush=True,
            )
    print()
    print(f"{'rows':>12} {'engine':<11} {'rows/s':>12} {'vs ceiling':>10} {'peak RSS MB':>12}")
    for (rows, mode), measured in results.items():
        speed = measured["rows"] / measured["seconds"]
        ceiling = results.get((rows, "ceiling"))
        ratio = speed / (ceiling["rows"] / ceiling["seconds"]) if ceiling else float("nan")
        print(f"{rows:>12,} {mode:<11} {speed:>12,.0f} {ratio:>10.2f} {measured['rss_mb']:>12,.0f}")
    print()
    for rows in args.rows:
        speed = {m: r["rows"] / r["seconds"] for (n, m), r in results.items() if n == rows}
        if "in-process" in speed and "ceiling" in speed:
            ratio = speed["in-process"] / speed["ceiling"]
            print(f"{rows:,} rows: in-process / ceiling = {ratio:.2f} (goal ≥ 0.80)")
        if "dask-1" in speed and "dask-2" in speed:
            print(f"{rows:,} rows: dask-2 / dask-1 = {speed['dask-2'] / speed['dask-1']:.2f} (goal ≥ 1.6)")
    if len(args.rows) >= 2:
        small, large = min(args.rows), max(args.rows)
        for mode in args.modes:
            if (small, mode) in results and (large, mode) in results and mode != "ceiling":
                growth = results[(large, mode)]["rss_mb"] / results[(small, mode)]["rss_mb"]
                print(f"peak RSS {mode} {large:,} / {small:,} rows = {growth:.2f} (goal ≤ 1.20)")


if __name__ == "__main__":
    main()
