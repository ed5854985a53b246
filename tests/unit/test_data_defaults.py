"""The defaults a LightGBM fit takes from its data: a log link with a growing level kept apart, and the refit on the
latest rows, only where a chronological split makes the model a forecast and the user left them to keel."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from keel.config import KeelConfig
from keel.domain.data_defaults import DataDefaults, data_defaults
from keel.domain.schema import infer_schema
from keel.domain.training import encode_target


def _sales(rows: int = 400, *, shift: float = 0.0) -> pd.DataFrame:
    """Units sold per day, growing by half from one year to the next, on a weekly pattern."""
    rng = np.random.default_rng(3)
    day = np.arange(rows)
    year = (day >= rows // 2).astype(int)
    weekday = day % 7
    sales = rng.poisson(np.exp(3 + 0.2 * weekday + np.log(1.5) * year)) + shift
    return pd.DataFrame({"day": day, "year": year, "weekday": weekday, "shop": rng.choice(["a", "b"], rows),
                         "sales": sales})  # fmt: skip


def _defaults(frame: pd.DataFrame, *, has_valid: bool = True, **settings: Any) -> DataDefaults:
    config = KeelConfig.model_validate(
        {
            "project": "sales",
            "data": {"train": {"path": "sales.csv"}, "target": "sales", "task": "regression", "ignore": ["day"]},
            "split": settings.pop("split", {"strategy": "chronological", "time_column": "day"}),
            "model": {"estimator": "lightgbm", **settings},
        }
    )
    schema = infer_schema(frame, config.data)
    x = frame[schema.feature_names]
    return data_defaults(
        config, schema, train_x=x, train_y=encode_target(frame["sales"], schema), train_frame=frame,
        has_valid=has_valid,
    )  # fmt: skip


def test_a_growing_count_gets_a_log_link_with_the_year_kept_apart_and_a_note() -> None:
    found = _defaults(_sales())
    assert found.params == {"objective": "poisson", "interaction_constraints": [["year"], ["weekday", "shop"]]}
    assert found.refit
    assert any("year follow(s) day" in note and "objective poisson" in note for note in found.notes)
    assert any("fitted again on the training and validation rows" in note for note in found.notes)


@pytest.mark.parametrize(
    ("frame", "settings"),
    [
        (_sales(shift=-100.0), {}),  # negative values: no log link
        (_sales(shift=0.5), {}),  # nor for amounts that are not counts
        (_sales(), {"params": {"objective": "regression"}}),  # the user's objective is kept
        (_sales(), {"params": {"loss": "huber"}}),  # under any of its names
        (_sales(), {"params": {"interaction_constraints": [["year", "weekday"]]}}),  # and the user's constraints
        (_sales().drop(columns="year"), {}),  # nothing follows time
    ],
)
def test_no_log_link_where_the_data_or_the_user_decides_otherwise(frame: pd.DataFrame, settings: dict) -> None:
    found = _defaults(frame, **settings)
    assert found.params == {}
    assert not any("objective poisson" in note for note in found.notes)


def test_only_a_chronological_split_with_default_rounds_and_validation_rows_is_refitted() -> None:
    assert not _defaults(_sales(), params={"n_estimators": 300}).refit  # the user's rounds, on the training part
    assert not _defaults(_sales(), has_valid=False).refit
    shuffled = _defaults(_sales(), split={"strategy": "random", "valid_size": 0.1})
    assert shuffled == DataDefaults()  # rows of every period in every part: nothing to forecast
    assert _defaults(_sales(), estimator="hist_gradient_boosting") == DataDefaults()


def test_the_defaults_are_added_to_the_users_params() -> None:
    from keel.config import ModelConfig

    found = _defaults(_sales(), params={"learning_rate": 0.05})
    model = found.model(ModelConfig(params={"learning_rate": 0.05}))
    assert model.params["learning_rate"] == 0.05
    assert model.params["objective"] == "poisson"
