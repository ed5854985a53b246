"""Serving a blend: single-record in-process latency against the sum of its members' bare boosters.

Run: uv run python benchmarks/blend.py [--config configs/adult.yaml] [--members 2] [--calls 3000]

On the project's data (Adult by default; KEEL_DATA_DIR), it fits ``--members`` LightGBM candidates of
``model.estimator: auto`` in its order (LightGBM with early stopping, then the portfolio's settings: learning rate
0.03, extra trees, 64 leaves with half the features, regularised, large, 128 leaves; then reseeded subsampled copies,
as the follow-ups add them) on the training part, weighs them by greedy ensemble selection on the validation part
(the weights ``auto`` would give them), stores the blend as a version stores it (members + ``blend.json``, manifest)
and loads it back, as the service does. ``auto``'s blends have 6 to 10 members on the example projects. Then, one
record at a time (cycling over 500 test records), median of ``--calls`` calls each, measured in alternating rounds
of 100:

- blend: keel's predictor on the blend (validated dict → each member's compiled encoding and booster → weighted
  average, with warnings), what ``POST /v1/predict`` runs in-process for one record;
- members' bare boosters: each member's ``lightgbm.Booster.predict`` on an already prepared numpy row with
  ``num_threads=1`` (how keel calls it for one record), each timed alone and summed over the members (also shown:
  the members' boosters called one after the other, as one measurement);
- for reference, the predictor on the best member alone.

Goal (issue 17): blend ≤ 2x the sum of the members' bare boosters. The machine may be shared: `uptime` is printed.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any


def records_of(frame: Any, names: list[str], count: int) -> list[dict[str, Any]]:
    """Rows as validated JSON gives them: ``None`` for missing, Python scalars."""
    import math

    return [
        {
            k: None if isinstance(v, float) and math.isnan(v) else getattr(v, "item", lambda v=v: v)()
            for k, v in r.items()
        }
        for r in frame[names].head(count).to_dict("records")
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(Path(__file__).resolve().parent.parent / "configs" / "adult.yaml"))
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--members", type=int, default=2, help="LightGBM members of the blend (2 to 12)")
    args = parser.parse_args()
    if not 2 <= args.members <= 12:
        parser.error(f"--members takes 2 to 12, got {args.members}")
    print("load:", subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip())

    from keel.application.automl import output_score, validation_output
    from keel.application.prepare import prepare
    from keel.application.progress import SilentReporter
    from keel.config import ModelConfig, load_config
    from keel.domain.automl import LIGHTGBM_SETTINGS
    from keel.domain.blend import BlendedModel, greedy_selection
    from keel.domain.metrics import GREATER_IS_BETTER
    from keel.domain.training import fit_model
    from keel.io import artifacts
    from keel.serving.predictor import Predictor

    loaded = load_config([Path(args.config)], overrides=["~model.params", "~model.early_stopping_rounds"])
    config = loaded.config
    prepared = prepare(loaded, SilentReporter())
    metric = config.tuning.metric or prepared.promotion_metric
    assert prepared.valid_x is not None
    assert prepared.valid_y is not None
    members, labels, outputs = [], [], []
    settings: list[tuple[str, dict[str, Any]]] = [("lightgbm", {})]
    settings += [(f"lightgbm {suffix}", params) for suffix, params in LIGHTGBM_SETTINGS]
    copies = {"subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.8}
    settings += [(f"lightgbm seed {k}", {**copies, "random_state": k}) for k in range(1, 13)]
    for label, params in settings[: args.members]:
        params = {"n_jobs": 1, **params}
        model, report = fit_model(
            prepared.schema, config.features, ModelConfig(estimator="lightgbm", params=params), seed=config.split.seed,
            train_x=prepared.train_x, train_y=prepared.train_y, valid_x=prepared.valid_x, valid_y=prepared.valid_y,
        )  # fmt: skip
        members.append(model)
        labels.append(label)
        outputs.append(validation_output(model, prepared.valid_x))
        score = output_score(model, outputs[-1], prepared.valid_y, metric)
        print(f"member {label}: {report.best_iteration} rounds, validation {metric} {score:.5f}")
    weights, blend_score = greedy_selection(
        outputs,
        lambda output: output_score(members[0], output, prepared.valid_y, metric),  # type: ignore[arg-type]
        greater_is_better=GREATER_IS_BETTER.get(metric, True),
    )
    # The benchmark measures a blend of every member, whatever selection chose: an even mix if one weight is 0.
    weights = [w if all(x > 0 for x in weights) else 1 / len(weights) for w in weights]
    print(f"blend weights {[round(w, 3) for w in weights]}, validation {metric} {blend_score:.5f}")
    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder) / "version"
        artifacts.save_model(directory, BlendedModel.of(members, weights, labels))
        artifacts.write_manifest(directory, {"estimator": "blend"})
        blend = artifacts.load_model(directory).model
    assert isinstance(blend, BlendedModel)

    test = prepared.parts.test
    records = records_of(test, blend.schema.feature_names, 500)
    predictor = Predictor(blend)
    alone = Predictor(blend.members[0])
    # Each record's prepared numpy row per member: what the bare boosters get, with nothing left to do.
    rows = [[Predictor(m).encode([record]) for m in blend.members] for record in records]
    boosters = [m.estimator for m in blend.members]
    cycle = len(records)

    def served(p: Predictor) -> Any:
        return lambda i: p.predict([records[i % cycle]])

    def bare(k: int) -> Any:
        return lambda i: boosters[k].predict(rows[i % cycle][k], num_threads=1)

    def both(i: int) -> None:
        for k, booster in enumerate(boosters):
            booster.predict(rows[i % cycle][k], num_threads=1)

    # Alternating rounds, so a change in the machine's load falls on every measurement alike.
    calls = {"blend": served(predictor), "alone": served(alone), "sum": both}
    calls.update({f"bare{k}": bare(k) for k in range(len(boosters))})
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for call in calls.values():
        for i in range(50):
            call(i)
    per_round = 100
    for start in range(0, args.calls, per_round):
        for name, call in calls.items():
            for i in range(start, start + per_round):
                began = time.perf_counter()
                call(i)
                samples[name].append(time.perf_counter() - began)
    median = {name: statistics.median(values) for name, values in samples.items()}
    blend_s, alone_s, sum_s = median["blend"], median["alone"], median["sum"]
    bare_s = [median[f"bare{k}"] for k in range(len(boosters))]
    print()
    print(f"{'single record, in-process':<52} {'median µs':>10}")
    print(f"{'blend (keel predictor, ' + str(len(boosters)) + ' members)':<52} {blend_s * 1e6:>10.1f}")
    for label, seconds in zip(blend.labels, bare_s, strict=True):
        print(f"{'  bare booster: ' + label:<52} {seconds * 1e6:>10.1f}")
    print(f"{'sum of the members bare boosters (added)':<52} {sum(bare_s) * 1e6:>10.1f}")
    print(f"{'members bare boosters, one after the other':<52} {sum_s * 1e6:>10.1f}")
    print(f"{'first member alone (keel predictor)':<52} {alone_s * 1e6:>10.1f}")
    ratio = blend_s / sum(bare_s)
    print(f"\nblend / sum of bare boosters: {ratio:.2f}x (goal <= 2x: {'met' if ratio <= 2 else 'NOT met'})")
    print("load:", subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip())


if __name__ == "__main__":
    main()
