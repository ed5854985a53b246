"""Time a text model's training, size its version, and time its start-up against the Adult model's.

Run: uv run python benchmarks/text.py [--rows 25000] [--adult-workspace DIR]

The problem is generated here: a binary review-like table with two text columns (a title and a body, joined into
one document), sentences drawn from a fixed vocabulary of made-up words with a few class-dependent words, TF-IDF
over word 1-2 and character 2-5 n-grams with max_features 50,000 each, and logistic regression. It prints, from one
`keel train --json` in a fresh workspace:
- the artifact step against the fit (goal: ≤ 25 %);
- the version's size on disk (goal: ≤ 15 MB) and its largest files;
and, each the median of three fresh processes in the same run, `keel serve` readiness (GET /ready) and
`keel predict` on 3 rows for the text model and for the Adult model (goal: ≤ 2× Adult's).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import bytecode_note, user_env
from startup import serve_ready, workspace_with_champion

CONFIG = """\
project:
  name: reviews
  description: A generated review-text problem (benchmarks/text.py)
data:
  train:
    path: {path}
  target: sentiment
  types:
    title: text
    body: text
features:
  text:
    word_ngrams: [1, 2]
    char_ngrams: [2, 5]
    max_features: 50000
    min_df: 1
    join: true
split:
  strategy: random
  test_size: 0.2
  valid_size: 0.0
  seed: 7
model:
  estimator: logistic_regression
  params:
    C: 4.0
    max_iter: 500
evaluation:
  metrics: [accuracy, roc_auc]
  promotion:
    metric: roc_auc
"""


def generate(rows: int, path: Path) -> None:
    """Write the review table: made-up words from syllables, a few of them more frequent in each class."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(13)
    syllables = ["ka", "lo", "mi", "ner", "po", "sta", "vi", "dro", "qua", "ze", "fen", "gul", "tri", "bo", "shi"]
    words = sorted({"".join(rng.choice(syllables, size=rng.integers(2, 5))) for _ in range(12_000)})
    vocabulary = np.asarray(words)
    positive, negative = vocabulary[:150], vocabulary[150:300]
    weights = 1.0 / np.arange(1, len(vocabulary) + 1)  # Zipf-like word frequencies
    weights /= weights.sum()
    labels = rng.choice(["positive", "negative"], size=rows, p=[0.55, 0.45])

    def sentence(label: str, length: int) -> str:
        chosen = rng.choice(vocabulary, size=length, p=weights)
        marked = rng.random(length) < 0.12
        pool = positive if label == "positive" else negative
        chosen[marked] = rng.choice(pool, size=int(marked.sum()))
        return " ".join(chosen)

    frame = pd.DataFrame(
        {
            "title": [sentence(label, int(rng.integers(4, 10))) for label in labels],
            "body": [sentence(label, int(rng.integers(30, 90))) for label in labels],
            "sentiment": labels,
        }
    )
    frame.to_csv(path, index=False)


def median_of(measure: object, runs: int = 3) -> float:
    return statistics.median(measure() for _ in range(runs))  # type: ignore[operator]


def predict_seconds(env: dict[str, str], reference: str, rows: Path, out: Path) -> float:
    started = time.perf_counter()
    command = [sys.executable, "-m", "keel", "predict", "-m", reference, "-i", str(rows), "-o", str(out)]
    subprocess.run(command, check=True, capture_output=True, env=env)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=25_000, help="rows of the generated table")
    parser.add_argument("--adult-workspace", help="a workspace holding an Adult champion [default: train one]")
    args = parser.parse_args()
    adult_workspace, adult_temporary = workspace_with_champion(args.adult_workspace)
    folder = Path(tempfile.mkdtemp(prefix="keel-bench-text-"))
    try:
        table, config = folder / "reviews.csv", folder / "reviews.yaml"
        generate(args.rows, table)
        config.write_text(CONFIG.format(path=table), encoding="utf-8")
        workspace = folder / "workspace"
        env = user_env(KEEL_WORKSPACE=str(workspace))
        env.pop("MLFLOW_TRACKING_URI", None)
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "keel", "train", str(config), "--json"], env=env, check=True, capture_output=True
        )
        job = time.perf_counter() - started
        document = json.loads(result.stdout)
        steps = {step["step"]: step["seconds"] for step in document["steps"]}
        fit, artifacts = steps["Training logistic_regression"], steps["Writing artifacts"]
        version_dir = next(p.parent for p in (workspace / "artifacts").rglob("manifest.json"))
        sizes = {str(p.relative_to(version_dir)): p.stat().st_size for p in version_dir.rglob("*") if p.is_file()}
        size = sum(sizes.values())

        rows = folder / "three.csv"
        import pandas as pd

        pd.read_csv(table, nrows=3).drop(columns=["sentiment"]).to_csv(rows, index=False)
        adult_rows = folder / "adult.csv"
        from startup import ROWS

        adult_rows.write_text(ROWS, encoding="utf-8")
        adult_env = user_env(KEEL_WORKSPACE=str(adult_workspace))
        adult_env.pop("MLFLOW_TRACKING_URI", None)
        out = folder / "out.csv"
        text_predict = median_of(lambda: predict_seconds(env, "reviews@champion", rows, out))
        adult_predict = median_of(lambda: predict_seconds(adult_env, "adult-income@champion", adult_rows, out))
        text_ready = median_of(lambda: serve_ready(env, "reviews@champion"))
        adult_ready = median_of(lambda: serve_ready(adult_env, "adult-income@champion"))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if adult_temporary is not None:
            shutil.rmtree(adult_temporary, ignore_errors=True)
    print(f"generated {args.rows:,} rows; keel train took {job:.1f} s; metrics {document['metrics']}")
    print(f"{'figure':<34}{'value':>10}  {'baseline':<24}{'value':>10}{'ratio':>8}  goal")
    table_rows = [
        ("artifact step (s)", artifacts, "fit (s)", fit, "≤ 0.25"),
        ("keel predict, 3 rows (s)", text_predict, "same for Adult (s)", adult_predict, "≤ 2×"),
        ("keel serve → /ready (s)", text_ready, "same for Adult (s)", adult_ready, "≤ 2×"),
    ]
    for name, value, base_name, base, goal in table_rows:
        print(f"{name:<34}{value:>10.2f}  {base_name:<24}{base:>10.2f}{value / base:>8.2f}  {goal}")
    print(f"{'version size (MB)':<34}{size / 1e6:>10.2f}  {'':<24}{'':>10}{'':>8}  ≤ 15 MB")
    for name, bytes_ in sorted(sizes.items(), key=lambda item: -item[1])[:5]:
        print(f"  {name:<40}{bytes_ / 1e6:>8.2f} MB")
    print("steps: " + ", ".join(f"{title} {seconds:.1f} s" for title, seconds in steps.items()))
    print(f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f} at the end; {bytecode_note()}")


if __name__ == "__main__":
    main()
