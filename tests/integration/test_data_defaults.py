"""A user's forecast with LightGBM at its defaults: growth the data shows reaches the months it has not shown yet."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from keel.application.models import load_version
from keel.application.train import train
from keel.config import load_config
from keel.io.registry import Registry

_COLUMNS = ["date", "store", "year", "month", "weekday", "temperature", "promo", "units"]


def _units(days: int, seed: int) -> pd.DataFrame:
    """Units a shop sells per day over two years: the second year sells 70 % more on the same seasonal, weekly and
    promotion pattern. The test part is the last quarter of the rows, months the second year has not shown yet."""
    rng = np.random.default_rng(seed)
    date = pd.Timestamp("2021-01-01") + pd.to_timedelta(np.arange(days), unit="D")
    year = date.year - 2021
    season = np.sin(2 * np.pi * (date.day_of_year - 100) / 365)
    temperature = 12 + 10 * season + rng.normal(scale=3, size=days)
    promo = rng.random(days) < 0.15
    level = 4 + 0.3 * season + np.where(date.day_of_week >= 5, 0.4, 0.0) + 0.5 * promo + np.log(1.7) * year
    frame = pd.DataFrame(
        {"date": date.strftime("%Y-%m-%d"), "store": "north", "year": year, "month": date.month,
         "weekday": date.day_of_week, "temperature": temperature.round(1).astype(object),
         "promo": np.where(promo, "yes", "no"), "units": rng.poisson(np.exp(level))}
    )  # fmt: skip
    frame.loc[rng.random(days) < 0.04, "temperature"] = "?"
    return frame


@pytest.fixture
def units_project(tmp_path: Path, module_workspace: Path) -> Path:
    """A headerless CSV with ``?`` for missing values, an id column, and LightGBM left at its defaults."""
    data = tmp_path / "units.csv"
    _units(730, seed=5)[_COLUMNS].to_csv(data, index=False, header=False)
    config = {
        "project": {"name": "units"},
        "data": {
            "train": {"path": str(data), "csv": {"header": False, "names": _COLUMNS, "na_values": ["?"]}},
            "target": "units", "task": "regression", "id_columns": ["store"], "ignore": ["date"],
        },
        "split": {"strategy": "chronological", "time_column": "date", "test_size": 0.25, "seed": 1},
        "model": {"params": {"n_jobs": 1}},
        "evaluation": {"metrics": ["rmse"], "promotion": {"metric": "rmse"}},
        "registry": {"workspace": str(module_workspace)},
    }  # fmt: skip
    path = tmp_path / "units.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_default_lightgbm_carries_the_growth_into_the_forecast_says_so_and_yields_to_the_users_objective(
    units_project: Path, module_workspace: Path
) -> None:
    result = train(load_config([units_project]))
    growth = [note for note in result.notes if note.startswith("defaults: year follow(s) date")]
    assert growth, result.notes
    assert "objective poisson" in growth[0]
    assert "set model.params.objective" in growth[0]
    assert any("fitted again on the training and validation rows" in note for note in result.notes)
    handle = load_version(Registry.open(module_workspace), f"units:{result.version}")
    model = handle.loaded.model
    assert "objective=poisson" in model.estimator.model_to_string()
    # The version keeps what was chosen for its data: in its metrics file, its report, and `keel train --json`.
    assert growth[0] in json.loads((handle.loaded.directory / "metrics.json").read_text(encoding="utf-8"))["notes"]
    assert html.escape(growth[0]) in (handle.loaded.directory / "report.html").read_text(encoding="utf-8")
    assert growth[0] in result.to_dict()["notes"]
    assert model.estimator.current_iteration() == result.best_iteration

    # The user's objective is theirs: squared error, no constraint, no note about it.
    theirs = train(load_config([units_project], ["model.params.objective=regression"]))
    assert not any("objective poisson" in note for note in theirs.notes)
    # Squared error ties the second year's level to the months it saw; the log link scales every month by it.
    assert result.evaluation.metrics["rmse"] < 0.8 * theirs.evaluation.metrics["rmse"]
