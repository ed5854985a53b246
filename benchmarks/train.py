"""Time the main job (`keel train` on the embedded Adult data) and `keel --help`, beside their baselines.

Run: uv run python benchmarks/train.py [--runs N]

Prints one table: each figure, its baseline, the ratio and the goal. Baselines measured in the same run:
- `keel --help` against `python -c pass` (the interpreter's own start-up) and the 1 s budget;
- the main job (a fresh workspace each run, its store copied from the empty one keel keeps per MLflow version)
  against a bare script that reads the same files with pandas, fits the same LightGBM model, scores the test file
  and saves the booster (no validation, evaluation, artifacts or registry), and against the 30 s goal.
The machine is shared: figures are medians of several runs. Below the table, the median seconds of each step of
`keel train` (from `keel train --json`), so the step that grew is visible.
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

from machine import bytecode_note, user_env

BARE = r"""
import time
started = time.perf_counter()
import lightgbm, numpy as np, pandas as pd
from importlib import resources
names = ["age","workclass","fnlwgt","education","education_num","marital_status","occupation","relationship",
         "race","sex","capital_gain","capital_loss","hours_per_week","native_country","income"]
folder = resources.files("keel") / "data" / "adult"
def read(f, skip):
    return pd.read_csv(folder / f, header=None, names=names, skipinitialspace=True, na_values=["?"], skiprows=skip)
train, test = read("adult.data.gz", 0), read("adult.test.gz", 1)
y, y_test = (train.pop("income") == ">50K").astype(int), test.pop("income").str.startswith(">50K").astype(int)
for column in train.columns:
    if train[column].dtype == object or str(train[column].dtype) == "str":
        kinds = pd.CategoricalDtype(sorted(train[column].dropna().unique()))
        train[column], test[column] = train[column].astype(kinds), test[column].astype(kinds)
model = lightgbm.LGBMClassifier(n_estimators=217, learning_rate=0.05, subsample=0.8, subsample_freq=1,
                                colsample_bytree=0.8, verbose=-1).fit(train, y)
print(f"accuracy={(model.predict(test) == y_test).mean():.4f}")
import tempfile
with tempfile.TemporaryDirectory() as folder:
    model.booster_.save_model(f"{folder}/model.txt")
"""


def timed(command: list[str], env: dict[str, str] | None = None) -> float:
    return timed_output(command, env)[0]


def timed_output(command: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(command, check=True, capture_output=True, env=env or user_env(), text=True)
    return time.perf_counter() - started, result.stdout


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (median reported)")
    args = parser.parse_args()
    python = sys.executable
    interpreter = median([timed([python, "-c", "pass"]) for _ in range(5)])
    help_time = median([timed([python, "-m", "keel", "--help"]) for _ in range(5)])

    def keel_train() -> float:
        with tempfile.TemporaryDirectory() as folder:
            env = user_env(KEEL_WORKSPACE=str(Path(folder) / "ws"))
            env.pop("MLFLOW_TRACKING_URI", None)
            seconds, output = timed_output([python, "-m", "keel", "train", "--json"], env=env)
        for step in json.loads(output)["steps"]:
            steps.setdefault(step["step"], []).append(step["seconds"])
        return seconds

    steps: dict[str, list[float]] = {}
    # A warm-up of each (files in the page cache; keel's empty MLflow store built once, as on a user's machine
    # after the first run), then the two in turn, so a change in the machine's load hits both alike.
    timed([python, "-c", BARE])
    keel_train()
    steps.clear()
    bares, jobs = [], []
    for _ in range(args.runs):
        bares.append(timed([python, "-c", BARE]))
        jobs.append(keel_train())
    bare = median(bares)
    pair_ratio = median([j / b for j, b in zip(jobs, bares, strict=True)])
    job = median(jobs)
    rows = [
        ("keel --help", help_time, "python -c pass", interpreter, "< 1 s"),
        ("keel train (main job)", job, "bare pandas + LightGBM script", bare, "ratio ≤ 2×, ≤ 30 s"),
    ]
    print(f"{'figure':<24}{'seconds':>9}  {'baseline':<31}{'seconds':>9}{'ratio':>8}  goal")
    for name, value, base_name, base, goal in rows:
        print(f"{name:<24}{value:>9.2f}  {base_name:<31}{base:>9.2f}{value / base:>7.2f}×  {goal}")
    print(
        f"\nkeel train, median seconds per step (--json): interpreter start-up and imports before the first step "
        f"and the exit are the rest ({job - sum(median(v) for v in steps.values()):.2f} s)"
    )
    for title, values in steps.items():
        print(f"  {title:<38}{median(values):>7.2f}")
    print(
        f"\n{os.cpu_count()} cores; medians of {args.runs} runs (help: 5), keel train and the bare script in turn "
        f"after a warm-up of each (median of the pairs' ratios: {pair_ratio:.2f}×); each train run starts a fresh "
        f"workspace; load average {os.getloadavg()[0]:.1f} at the end; {bytecode_note()}."
    )


if __name__ == "__main__":
    main()
