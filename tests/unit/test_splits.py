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


def test_row_draws_follow_the_row_values_not_the_partitioning() -> None:
    from keel.domain.splits import row_draws

    data = table().assign(x=np.linspace(0, 1, 1000))
    whole = row_draws(data, seed=3)
    pieces = np.concatenate([row_draws(data.iloc[i : i + 137], seed=3) for i in range(0, 1000, 137)])
    assert np.array_equal(whole, pieces)
    assert np.array_equal(whole, row_draws(data.copy(), seed=3))
    assert ((whole >= 0) & (whole < 1)).all()
    assert not np.array_equal(whole, row_draws(data, seed=4))
    # The same values give the same draw: a duplicated row can never straddle train and test.
    assert row_draws(pd.concat([data.iloc[[5]], data.iloc[[5]]]), seed=3).tolist() == [whole[5], whole[5]]


def test_per_row_parts_are_disjoint_and_near_the_configured_shares() -> None:
    from keel.domain.splits import TEST, TRAIN, VALID, assign_parts, row_draws, split_shares, training_draws

    data = table(20_000).assign(x=np.arange(20_000))
    test_share, valid_share = split_shares(SplitConfig(test_size=0.2, valid_size=0.1, seed=5), len(data))
    draws = row_draws(data, seed=5)
    parts = assign_parts(draws, test_share, valid_share)
    assert set(np.unique(parts)) == {TRAIN, VALID, TEST}
    assert (parts == TEST).mean() == pytest.approx(0.2, abs=0.01)
    assert (parts == VALID).mean() == pytest.approx(0.8 * 0.1, abs=0.01)
    assert np.array_equal(parts, assign_parts(row_draws(data, seed=5), test_share, valid_share))
    rescaled = training_draws(draws[parts == TRAIN], test_share, valid_share)
    assert ((rescaled >= 0) & (rescaled < 1)).all()
    assert (rescaled < 0.25).mean() == pytest.approx(0.25, abs=0.02)


def test_split_shares_turn_counts_into_shares() -> None:
    from keel.domain.splits import split_shares

    assert split_shares(SplitConfig(test_size=100, valid_size=90), 1000) == (0.1, 0.1)
    assert split_shares(SplitConfig(strategy="explicit", test_size=0.3, valid_size=0.2), 1000) == (0.0, 0.2)
    with pytest.raises(ConfigError, match="test_size"):
        split_shares(SplitConfig(test_size=1000), 1000)
