"""Helpers for the reliability tests: a second, non-Adult project trained into its own workspace."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

SECOND_MODEL = "synthetic-value"
"""A regression model with an id column and a numeric feature that has missing values (so it is optional)."""


def synthetic_regression(rows: int = 800, seed: int = 7) -> pd.DataFrame:
    """A learnable regression table: two numeric features (one with gaps), a categorical and a row id."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=rows)
    x2 = rng.uniform(0, 10, size=rows)
    colour = rng.choice(["red", "green", "blue"], size=rows)
    value = 20 * x1 + 3 * x2 + np.where(colour == "red", 15.0, 0.0) + rng.normal(scale=3, size=rows)
    x2[rng.random(rows) < 0.1] = np.nan
    return pd.DataFrame({"row_id": np.arange(rows), "x1": x1, "x2": x2, "colour": colour, "value": value})


def train_second_model(folder: Path, environment: dict[str, str] | None = None) -> Path:
    """Train :data:`SECOND_MODEL` (small LightGBM regression) into the workspace ``folder`` and return it.

    The keel environment variables are cleared for the call so nothing leaks in from the developer's shell, then
    ``environment`` is set for it (e.g. API keys, to check they never reach the registry).
    """
    from keel.application.train import train
    from keel.config import load_config

    folder.mkdir(parents=True, exist_ok=True)
    data_file = folder.parent / f"{SECOND_MODEL}.csv"
    synthetic_regression().to_csv(data_file, index=False)
    config = {
        "project": {"name": SECOND_MODEL},
        "data": {"train": {"path": str(data_file)}, "target": "value", "id_columns": ["row_id"]},
        "split": {"test_size": 0.25, "seed": 1},
        "model": {"estimator": "lightgbm", "params": {"n_estimators": 30, "num_leaves": 7}},
        "registry": {"workspace": str(folder)},
    }
    config_file = folder.parent / f"{SECOND_MODEL}.yaml"
    config_file.write_text(yaml.safe_dump(config), encoding="utf-8")
    scrubbed = ("KEEL_WORKSPACE", "MLFLOW_TRACKING_URI", "KEEL_API_KEYS", "KEEL_API_KEYS_FILE")
    saved = {name: os.environ.pop(name, None) for name in {*scrubbed, *(environment or {})}}
    os.environ.update(environment or {})
    try:
        train(load_config([config_file]))
    finally:
        for name, value in saved.items():
            os.environ.pop(name, None)
            if value is not None:
                os.environ[name] = value
    return folder
