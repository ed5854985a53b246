"""How far the global contributions of a sample of test rows are from those of every test row, and what they cost.

Run: uv run python benchmarks/contributions.py [--samples N]

Fits the main job's Adult model, computes LightGBM's contributions on all 16,281 test rows, then on N random
samples of the size `keel train` uses (at most 60,000 rows × trees) and of the previous size (150,000). For each
size it prints how often the five largest columns are the same five as on every row, the median and worst relative
error of their mean absolute contributions, and the seconds one sample takes on every core.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from machine import bytecode_note


def main() -> None:
    from keel.application.engines import LocalEngine
    from keel.application.insights import CONTRIBUTION_TREE_ROWS
    from keel.application.prepare import prepare
    from keel.application.progress import SilentReporter
    from keel.config import load_config

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20)
    args = parser.parse_args()
    loaded = load_config([], [])
    prepared = prepare(loaded, SilentReporter())
    model, _ = LocalEngine().fit(loaded, prepared)
    booster = model.estimator
    matrix = model.transform(prepared.test_x)
    every = np.abs(booster.predict(matrix, pred_contrib=True)[:, :-1])
    full = every.mean(axis=0)
    top = set(np.argsort(-full)[:5])
    trees = booster.num_trees()
    print(f"{'rows × trees':<14}{'rows':>6}{'same top 5':>12}{'median error':>14}{'worst error':>13}{'seconds':>9}")
    for budget in (CONTRIBUTION_TREE_ROWS, 150_000):
        rows = budget // trees
        same, errors = 0, []
        for seed in range(args.samples):
            chosen = np.random.default_rng(seed).choice(len(every), rows, replace=False)
            means = every[chosen].mean(axis=0)
            same += set(np.argsort(-means)[:5]) == top
            errors.append(float(np.median(np.abs(means - full)[list(top)] / full[list(top)])))
        started = time.perf_counter()
        booster.predict(matrix[:rows], pred_contrib=True)
        seconds = time.perf_counter() - started
        print(
            f"{budget:<14,}{rows:>6}{f'{same}/{args.samples}':>12}{np.median(errors):>13.1%}{max(errors):>12.1%}"
            f"{seconds:>9.2f}"
        )
    print(
        f"\nerror: the five largest columns' mean |contribution| vs all {len(every):,} test rows ({trees} trees); "
        f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}; {bytecode_note()}."
    )


if __name__ == "__main__":
    main()
