"""A model with a weak and a strong version, for the production loop's tests (shadow, canary, evidence)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from tests.integration.conftest import synthetic

FEATURES = ["row_id", "x1", "x2", "colour"]
NAME = "live"


def train_live_versions(workspace: Path, folder: Path) -> pd.DataFrame:
    """Train ``live`` version 1 (one stump: weak, champion) and version 2 (60 trees: strong, not champion).

    Returns:
        Held-out traffic (the feature columns, the ``row_id`` id column and the true ``label``).
    """
    from keel.application.train import train
    from keel.config import load_config
    from keel.io.registry import Registry

    table = synthetic("binary", rows=900, seed=3)
    train_part, traffic = table.iloc[:600], table.iloc[600:].reset_index(drop=True)
    data = folder / "train.csv"
    train_part.to_csv(data, index=False)
    for number, params in enumerate(({"n_estimators": 1, "num_leaves": 2}, {"n_estimators": 60, "num_leaves": 7})):
        config = {
            "project": {"name": NAME},
            "data": {"train": {"path": str(data)}, "target": "label", "id_columns": ["row_id"]},
            "split": {"test_size": 0.25, "seed": 1},
            "model": {"estimator": "lightgbm", "params": params},
            "registry": {"workspace": str(workspace)},
        }
        path = folder / f"v{number + 1}.yaml"
        path.write_text(yaml.safe_dump(config))
        train(load_config([path]))
    Registry.open(workspace).set_alias(NAME, "champion", 1)  # version 2 took the alias by the gate; put 1 back
    return traffic
