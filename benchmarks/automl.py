"""Strong models without hand-tuning: each example project's hand-tuned config beside keel's defaults and auto.

Run: uv run python benchmarks/automl.py [--projects adult covertype bikes] [--budget SECONDS] [--no-auto]

Per project, in one run and on the same split, it trains (with `keel train --json`, a fresh workspace each):
- hand-tuned: the config as shipped in configs/;
- defaults: the same config with `model.params` and `model.early_stopping_rounds` removed (only `n_jobs` kept, so
  the run uses the same threads), i.e. what a user without tuning gets;
- auto: the defaults config with `model.estimator: auto` and `--time-budget`/`model.time_budget` SECONDS.
It prints the promotion metric of each, the ratio to the hand-tuned figure, the goal, and the fit seconds.
The example data come from the data directory (KEEL_DATA_DIR); the machine may be shared, so `uptime` is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent

GOALS: dict[str, tuple[str, float]] = {
    # project: (metric, the goal for auto = the hand-tuned config's reference figure)
    "adult": ("roc_auc", 0.9273),
    "covertype": ("accuracy", 0.905),
    "bikes": ("rmse", 55.8),
    "tennis": ("log_loss", 0.6003),
    "tags": ("f1_weighted", 0.921),
}
LOWER_IS_BETTER = {"rmse", "log_loss", "mae"}


def variant(config: dict[str, Any], kind: str, budget: float) -> dict[str, Any]:
    """The config of one variant (``tuned``, ``defaults`` or ``auto``)."""
    config = json.loads(json.dumps(config))
    model = config.setdefault("model", {})
    if kind == "tuned":
        return config
    params = model.get("params") or {}
    model["params"] = {key: value for key, value in params.items() if key == "n_jobs"}
    model.pop("early_stopping_rounds", None)
    if kind == "auto":
        model["estimator"] = "auto"
        model["time_budget"] = budget
    elif model.get("estimator") not in ("lightgbm", None):
        model["params"] = {}
    return config


def train(config: dict[str, Any], folder: Path) -> dict[str, Any]:
    path = folder / "config.yaml"
    config.setdefault("registry", {})["workspace"] = str(folder / "workspace")
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    env = {**os.environ, "KEEL_WORKSPACE": str(folder / "workspace")}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "keel", "train", str(path), "--json"], capture_output=True, text=True, env=env
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"keel train failed for {path}:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    result["wall_seconds"] = seconds
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", nargs="+", default=["adult", "covertype", "bikes"], choices=sorted(GOALS))
    parser.add_argument("--budget", type=float, default=300.0, help="auto's time budget per project, in seconds")
    parser.add_argument("--no-auto", action="store_true", help="only the hand-tuned and defaults variants")
    parser.add_argument("--leaderboard", action="store_true", help="also print auto's leaderboard (test figures too)")
    args = parser.parse_args()
    kinds = ["tuned", "defaults"] + ([] if args.no_auto else ["auto"])
    print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    print(f"{'project':<10} {'variant':<9} {'metric':<12} {'value':>9} {'vs tuned':>9} {'goal':>8} {'rounds':>7} "
          f"{'seconds':>8}")  # fmt: skip
    for project in args.projects:
        metric, goal = GOALS[project]
        shipped = yaml.safe_load((ROOT / "configs" / f"{project}.yaml").read_text(encoding="utf-8"))
        tuned_value = None
        for kind in kinds:
            with tempfile.TemporaryDirectory() as folder:
                result = train(variant(shipped, kind, args.budget), Path(folder))
            value = result["metrics"][metric]
            tuned_value = value if kind == "tuned" else tuned_value
            ratio = value / tuned_value if tuned_value else float("nan")
            lower = metric in LOWER_IS_BETTER
            if kind == "defaults":  # the goal for defaults: within 2 % of the hand-tuned figure
                met = value <= 1.02 * (tuned_value or value) if lower else value >= 0.98 * (tuned_value or value)
            else:
                met = value <= goal if lower else value >= goal
            rounds = result.get("best_iteration")
            print(
                f"{project:<10} {kind:<9} {metric:<12} {value:>9.4f} {ratio:>9.4f} {goal:>8} "
                f"{rounds if rounds is not None else '-':>7} {result['wall_seconds']:>8.1f}"
                + (
                    ""
                    if kind == "tuned"
                    else ("  meets " if met else "  misses ") + ("2 % goal" if kind == "defaults" else "goal")
                )
                + "".join(f"  [chose {row['candidate']}]" for row in result.get("leaderboard") or [] if row["chosen"])
            )
            if args.leaderboard:
                board = result.get("leaderboard") or []
                if board:
                    print(f"    scoring: {board[0].get('scoring') or 'validation part'}")
                for row in board:
                    score = row["valid_score"]
                    print(
                        f"    {row['candidate']:<72} valid {score if score is None else round(score, 5)!s:>9} "
                        f"{row['fit_seconds']:>7.1f} s  {row.get('note') or ''}"
                        + (f" {[(m['candidate'], m['weight']) for m in row['members']]}" if row.get("members") else "")
                    )


if __name__ == "__main__":
    main()
