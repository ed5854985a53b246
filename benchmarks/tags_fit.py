"""Time the tags project's fit (TF-IDF + logistic regression) beside the issue's 30 s goal.

Run: KEEL_DATA_DIR=../shared/data uv run python benchmarks/tags_fit.py [--runs N]

Prints the median fit time of the shipped configs/tags.yaml on the Made-With-ML training rows, the whole
`keel train` job's other steps excluded, and the ratio to the 30-second budget. Not a test: shared machines are noisy.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from keel.application.dataset import load_data
from keel.application.prepare import features_and_target, split_parts
from keel.config import load_config
from keel.domain.schema import infer_schema
from keel.domain.training import fit_model

REPO = Path(__file__).resolve().parents[1]
GOAL_SECONDS = 30.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    loaded = load_config([REPO / "configs" / "tags.yaml"])
    config = loaded.config
    parts = split_parts(load_data(loaded), loaded)
    schema = infer_schema(parts.train, config.data)
    features, target = features_and_target(parts.train, schema, "training rows")
    times = []
    for _ in range(args.runs):
        started = time.perf_counter()
        fit_model(schema, config.features, config.model, seed=config.split.seed, train_x=features, train_y=target)
        times.append(time.perf_counter() - started)
    median = statistics.median(times)
    print(f"{'figure':<40}{'seconds':>9}{'goal':>8}{'ratio':>8}")
    label = "tags fit (TF-IDF + logistic regression)"
    print(f"{label:<40}{median:>9.1f}{GOAL_SECONDS:>8.0f}{median / GOAL_SECONDS:>7.2f}×")
    print(f"\n{len(parts.train):,} training rows; median of {args.runs} fits")


if __name__ == "__main__":
    main()
