from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from keel.config import SplitConfig
from keel.domain.splits import split_rows
from keel.errors import ConfigError, DataError


def table(rows: int = 1000) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame({"t": np.arange(rows)[::-1], "y": rng.choice(["a", "b"], size=rows, p=[0.8, 0.2])})


def test_stratified_split_is_seeded_disjoint_and_keeps_class_shares() -> None:
    data = table()
    config = SplitConfig(test_size=0.2, valid_size=0.1, seed=5)
    first = split_rows(data, "y", config, classification=True)
    second = split_rows(data, "y", config, classification=True)
    assert np.array_equal(first.test, second.test)
    assert len(first.test) == 200
    assert len(first.valid) == 80
    assert len(set(first.train) | set(first.valid) | set(first.test)) == 1000
    assert not set(first.train) & set(first.test)
    share = (data["y"].iloc[first.test] == "b").mean()
    assert share == pytest.approx((data["y"] == "b").mean(), abs=0.01)
    other = split_rows(data, "y", SplitConfig(test_size=0.2, seed=6), classification=True)
    assert not np.array_equal(first.test, other.test)


def test_explicit_split_keeps_every_row_for_training_and_validation() -> None:
    parts = split_rows(table(), "y", SplitConfig(strategy="explicit", valid_size=0.1), classification=True)
    assert len(parts.test) == 0
    assert len(parts.train) + len(parts.valid) == 1000


def test_chronological_split_by_count_puts_the_latest_rows_last() -> None:
    data = table()
    config = SplitConfig(strategy="chronological", time_column="t", test_size=100, valid_size=50)
    parts = split_rows(data, "y", config, classification=True)
    assert data["t"].iloc[parts.test].min() > data["t"].iloc[parts.valid].max()
    assert data["t"].iloc[parts.valid].min() > data["t"].iloc[parts.train].max()
    assert len(parts.test) == 100


def test_chronological_split_by_start_values() -> None:
    data = pd.DataFrame({"year": [2021, 2022, 2023, 2024] * 25, "y": ["a", "b"] * 50})
    config = SplitConfig(strategy="chronological", time_column="year", test_start=2024, valid_start=2023)
    parts = split_rows(data, "y", config, classification=True)
    assert set(data["year"].iloc[parts.test]) == {2024}
    assert set(data["year"].iloc[parts.valid]) == {2023}
    assert set(data["year"].iloc[parts.train]) == {2021, 2022}


def test_sizes_that_leave_nothing_to_train_on_are_refused() -> None:
    with pytest.raises(ConfigError, match="test_size"):
        split_rows(table(10), "y", SplitConfig(test_size=10), classification=True)


def test_chronological_split_needs_complete_times() -> None:
    data = pd.DataFrame({"t": [1, None, 3] * 10, "y": ["a", "b", "a"] * 10})
    with pytest.raises(DataError, match="missing"):
        split_rows(data, "y", SplitConfig(strategy="chronological", time_column="t"), classification=True)
