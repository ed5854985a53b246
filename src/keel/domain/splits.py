"""Dividing rows into train, validation and test parts, seeded and reproducible."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from keel.config import SplitConfig
from keel.errors import ConfigError, DataError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


@dataclass(frozen=True)
class SplitIndices:
    """Row positions of each part.

    Attributes:
        train: Positions of training rows.
        valid: Positions of validation rows (may be empty).
        test: Positions of test rows (empty for ``explicit``, whose test rows come from another table).
    """

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray


def _count(size: float, rows: int, key: str) -> int:
    count = round(size * rows) if size < 1 else int(size)
    if count >= rows:
        raise ConfigError(f"`split.{key}` ({size}) leaves no rows to train on out of {rows:,}")
    return count


def split_rows(frame: pd.DataFrame, target: str, config: SplitConfig, *, classification: bool) -> SplitIndices:
    """Split ``frame``'s rows.

    Args:
        frame: The table (raw columns).
        target: The target column (for stratification).
        config: The split section of the configuration.
        classification: Whether the task is classification (stratify) or regression.

    Returns:
        Row positions of the train, validation and test parts.

    Raises:
        ConfigError: Sizes leave no training rows.
        DataError: The time column cannot be ordered, or a part ends up empty.
    """
    import numpy as np

    rows = len(frame)
    positions = np.arange(rows)
    if config.strategy == "chronological":
        return _chronological(frame, config)
    stratify = frame[target].to_numpy() if classification and config.strategy == "stratified" else None
    if config.strategy == "explicit":
        test = np.array([], dtype=np.int64)
        rest = positions
    else:
        rest, test = _split(positions, _count(config.test_size, rows, "test_size"), config.seed, stratify)
    valid = np.array([], dtype=np.int64)
    if config.valid_size > 0:
        rest_stratify = None if stratify is None else stratify[rest]
        rest, valid = _split(rest, _count(config.valid_size, len(rest), "valid_size"), config.seed + 1, rest_stratify)
    return SplitIndices(train=np.sort(rest), valid=np.sort(valid), test=np.sort(test))


def _split(positions: np.ndarray, count: int, seed: int, stratify: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    if stratify is not None:
        _, counts = _unique_counts(stratify)
        if counts.min() < 2:
            stratify = None  # a class with a single row cannot be stratified; fall back to a plain random split
    kept, held = train_test_split(positions, test_size=count, random_state=seed, stratify=stratify)
    return kept, held


def _unique_counts(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    return np.unique(values.astype(str), return_counts=True)


def _chronological(frame: pd.DataFrame, config: SplitConfig) -> SplitIndices:
    import numpy as np
    import pandas as pd

    if config.time_column is None:  # SplitConfig requires it for this strategy
        raise ConfigError("`split.time_column` is required by the chronological split")
    if config.time_column not in frame.columns:
        raise DataError(f"`split.time_column` {config.time_column!r} is not a column of the data")
    time = frame[config.time_column]
    if time.isna().any():
        raise DataError(
            f"`split.time_column` {config.time_column!r} has {int(time.isna().sum()):,} missing value(s); "
            "chronological splits need a time for every row"
        )
    order = np.argsort(time.to_numpy(), kind="stable")
    rows = len(frame)
    if config.test_start is not None:
        start = _as_time_like(config.test_start, time)
        test_mask = (time >= start).to_numpy()
        if config.valid_start is not None:
            valid_mask = (time >= _as_time_like(config.valid_start, time)) & ~pd.Series(test_mask, index=time.index)
            valid_mask_array = valid_mask.to_numpy()
        else:
            valid_mask_array = np.zeros(rows, dtype=bool)
        train = np.flatnonzero(~test_mask & ~valid_mask_array)
        valid = np.flatnonzero(valid_mask_array)
        test = np.flatnonzero(test_mask)
        if config.valid_start is None and config.valid_size > 0:
            ordered_train = train[np.argsort(time.to_numpy()[train], kind="stable")]
            n_valid = _count(config.valid_size, len(ordered_train), "valid_size")
            train, valid = ordered_train[:-n_valid], ordered_train[-n_valid:]
    else:
        n_test = _count(config.test_size, rows, "test_size")
        test = order[rows - n_test :]
        rest = order[: rows - n_test]
        n_valid = _count(config.valid_size, len(rest), "valid_size") if config.valid_size > 0 else 0
        train, valid = rest[: len(rest) - n_valid], rest[len(rest) - n_valid :]
    for name, part in (("train", train), ("test", test)):
        if len(part) == 0:
            raise DataError(f"the chronological split on {config.time_column!r} leaves the {name} part empty")
    return SplitIndices(train=np.sort(train), valid=np.sort(valid), test=np.sort(test))


def _as_time_like(value: Any, time: pd.Series) -> Any:
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(time):
        return pd.Timestamp(value)
    if pd.api.types.is_numeric_dtype(time) and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"split start {value!r} is not a number, but the time column holds numbers") from None
    return value
