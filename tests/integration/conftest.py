"""Helpers for integration tests: small real projects (a CSV file and a YAML config) in a shared workspace."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

ProjectFactory = Callable[..., Path]


def synthetic(task: str, rows: int = 600, seed: int = 0) -> pd.DataFrame:
    """A learnable table: two numeric features, a categorical and a row id; the target depends on all three."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=rows)
    x2 = rng.uniform(0, 10, size=rows)
    colour = rng.choice(["red", "green", "blue"], size=rows)
    score = 2 * x1 + 0.3 * x2 + np.where(colour == "red", 1.5, 0.0) + rng.normal(scale=0.3, size=rows)
    frame = pd.DataFrame({"row_id": np.arange(rows), "x1": x1, "x2": x2, "colour": colour})
    if task == "binary":
        frame["label"] = np.where(score > np.median(score), "high", "low")
    elif task == "multiclass":
        frame["label"] = pd.cut(score, 3, labels=["a", "b", "c"]).astype(str)
    else:
        frame["label"] = score * 10
    return frame


@pytest.fixture(scope="module")
def module_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One embedded registry per test module (creating an MLflow store takes seconds)."""
    return tmp_path_factory.mktemp("registry") / "workspace"


@pytest.fixture
def make_project(tmp_path: Path, module_workspace: Path) -> ProjectFactory:
    """Write ``frame`` as CSV plus a config (merged with ``settings``) and return the config's path."""

    def factory(frame: pd.DataFrame, name: str, **settings: Any) -> Path:
        data_file = tmp_path / f"{name}.csv"
        frame.to_csv(data_file, index=False)
        config: dict[str, Any] = {
            "project": {"name": name},
            "data": {"train": {"path": str(data_file)}, "target": "label", "id_columns": ["row_id"]},
            "split": {"test_size": 0.25, "seed": 1},
            "model": {"estimator": "lightgbm", "params": {"n_estimators": 40, "num_leaves": 7}},
            "registry": {"workspace": str(module_workspace)},
        }
        for section, values in settings.items():
            if isinstance(values, dict) and isinstance(config.get(section), dict):
                config[section] = {**config[section], **values}
            else:
                config[section] = values
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    return factory
