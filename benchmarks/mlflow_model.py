"""What making every version an MLflow model adds to `keel train`, beside the whole job in the same run.

Run: uv run python benchmarks/mlflow_model.py [--repeats N]

Trains the embedded Adult model once in a fresh workspace (`keel train --json`, the baseline: the whole job), then
times, on that version and store, the work the MLflow model adds to every training: writing `MLmodel` with its
signature, input example and environment files; recording the train and test tables as dataset inputs; and the
three extra version tags (promotion decision, data fingerprint, git commit). Prints the first call (what one
`keel train` pays) and the median of the repeats, and their share of the job. The machine is shared: quote the load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    from keel.application.predict import prediction_columns
    from keel.application.train import combined_fingerprint
    from keel.io import mlmodel, provenance
    from keel.io.artifacts import load_model
    from keel.io.registry import DatasetRecord, Registry

    with tempfile.TemporaryDirectory() as folder:
        workspace = Path(folder) / "workspace"
        env = {**os.environ, "KEEL_WORKSPACE": str(workspace)}
        env.pop("MLFLOW_TRACKING_URI", None)
        started = time.perf_counter()
        output = subprocess.run(
            [sys.executable, "-m", "keel", "train", "--json"], check=True, capture_output=True, env=env, text=True
        ).stdout
        job = time.perf_counter() - started
        result = json.loads(output)
        registry = Registry.open(workspace)
        info = registry.versions("adult-income")[0]
        directory = registry.local_directory(info)
        loaded = load_model(directory)
        schema, packages = loaded.schema, provenance.package_versions()
        kinds = {c.name: ("i" if c.type == "numeric" and c.missing_rate == 0 else "O") for c in schema.features}
        files = loaded.manifest["data_fingerprint"]
        records = [
            DatasetRecord(part, context, part, "local", combined_fingerprint(files)[:16], rows, files)
            for part, context, rows in (
                ("train", "training", result["rows"]["train"]),
                ("test", "testing", result["rows"]["test"]),
            )
        ]
        timings: dict[str, list[float]] = {"MLmodel and its files": [], "dataset inputs": [], "three tags": []}
        with registry.run("benchmark", run_name="mlflow-model") as run_id:
            for _ in range(args.repeats):
                with tempfile.TemporaryDirectory() as target:
                    start = time.perf_counter()
                    mlmodel.write_mlmodel(Path(target), schema, kinds, prediction_columns(loaded.model), packages)
                    timings["MLmodel and its files"].append(time.perf_counter() - start)
                start = time.perf_counter()
                registry.log_datasets(run_id, records)
                timings["dataset inputs"].append(time.perf_counter() - start)
                start = time.perf_counter()
                for key in ("keel.promoted", "keel.data_fingerprint", "keel.git_commit"):
                    registry.set_tag(info.name, info.version, key, combined_fingerprint(files))
                timings["three tags"].append(time.perf_counter() - start)
    first = sum(values[0] for values in timings.values())
    typical = sum(statistics.median(values) for values in timings.values())
    print(f"load average: {os.getloadavg()[0]:.1f}")
    print(f"{'figure':<44} {'ms':>8}")
    for name, values in timings.items():
        print(f"{name + ' (first / median)':<44} {values[0] * 1000:>4.0f} / {statistics.median(values) * 1000:.0f}")
    print(f"{'added by the MLflow model, first call':<44} {first * 1000:>8.0f}")
    print(f"{'added, median of ' + str(args.repeats):<44} {typical * 1000:>8.0f}")
    print(f"{'baseline: the whole keel train job':<44} {job * 1000:>8.0f}")
    print(f"share of the job: {first / job:.2%} (first call), {typical / job:.2%} (median)")


if __name__ == "__main__":
    main()
