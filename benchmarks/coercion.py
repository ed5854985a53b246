"""How coerced category columns are held: time and memory of the three ways, and what the encoders then cost.

Run: uv run python benchmarks/coercion.py [--copies N] [--runs N]

Adult's training rows (its eight category columns), copied N times (default 30: about 880,000 rows), held as:

- ``arrow``: pandas 3's default for a Series of strings, the Arrow-backed ``str`` dtype (what coercion gave before);
- ``per row``: Python strings in an object column, a new string object for every row;
- ``shared``: Python strings in an object column, one string object per distinct value (what coercion gives now).

For each it prints the seconds to build the eight columns from the raw ones (median of the runs) and the memory
they hold: Arrow's buffers (``memory_usage(deep=True)``), or for object columns the bytes Python allocated for them
(tracemalloc; pandas' deep count would count a shared string once per row). Then, on Adult's own training rows, the
seconds to fit the main job's feature pipeline (scikit-learn's ``ColumnTransformer``) and to encode the rows with
the compiled encoding, from Arrow-backed columns and from the shared ones.
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from machine import bytecode_note


def arrow(raw: pd.Series) -> pd.Series:
    values = raw.astype("string").to_numpy(dtype=object, na_value=np.nan)
    return pd.Series(values)  # inferred as pandas' Arrow-backed str


def per_row(raw: pd.Series) -> pd.Series:
    return pd.Series(raw.astype("string").to_numpy(dtype=object, na_value=np.nan), dtype=object)


def seconds(action: Callable[[], Any], runs: int) -> float:
    action()
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def held_bytes(build: Callable[[], list[pd.Series]], kind: str) -> float:
    if kind == "arrow":
        return float(sum(column.memory_usage(deep=True, index=False) for column in build()))
    tracemalloc.start()
    columns = build()
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del columns
    return float(held)


def main() -> None:
    from keel.application.prepare import prepare
    from keel.application.progress import SilentReporter
    from keel.config import load_config
    from keel.domain.encoding import compile_plan, encode_frame
    from keel.domain.training import fit_features
    from keel.domain.validation import _to_text as to_text  # what coerce_features does to a category column

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=30, help="copies of Adult's training rows")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    loaded = load_config([], [])
    prepared = prepare(loaded, SilentReporter())
    schema = prepared.schema
    categories = [column.name for column in schema.features if column.type == "categorical"]
    raw = pd.concat([prepared.parts.train[categories]] * args.copies, ignore_index=True)

    ways: dict[str, Callable[[], list[pd.Series]]] = {
        "arrow": lambda: [arrow(raw[name]) for name in categories],
        "per row": lambda: [per_row(raw[name]) for name in categories],
        "shared": lambda: [to_text(raw[name], text=False) for name in categories],
    }
    print(f"{len(raw):,} rows × {len(categories)} category columns")
    print(f"{'held as':<10}{'seconds':>9}{'MB held':>10}")
    for kind, build in ways.items():
        print(f"{kind:<10}{seconds(build, args.runs):>9.3f}{held_bytes(build, kind) / 1e6:>10.0f}")

    shared_x = prepared.train_x
    arrow_x = shared_x.copy()
    for name in categories:
        arrow_x[name] = arrow(shared_x[name])
    config = loaded.config
    fitted, _ = fit_features(schema, config.features, config.model, seed=1, frame=shared_x)
    plan = compile_plan(fitted.preprocessor, schema)
    assert plan is not None, "Adult's LightGBM pipeline compiles"
    print(f"\nAdult's {len(shared_x):,} training rows, median of {args.runs} runs (seconds)")
    print(f"{'':<36}{'arrow':>8}{'shared':>8}")
    for name, action in [
        ("fit the feature pipeline", lambda x: fit_features(schema, config.features, config.model, seed=1, frame=x)),
        ("encode with the compiled encoding", lambda x: encode_frame(plan, x)),
    ]:
        before = seconds(lambda run=action: run(arrow_x), args.runs)
        after = seconds(lambda run=action: run(shared_x), args.runs)
        print(f"{name:<36}{before:>8.3f}{after:>8.3f}  ({after / before:.2f}×)")
    print(f"\n{bytecode_note()}")


if __name__ == "__main__":
    main()
