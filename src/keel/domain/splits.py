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


TRAIN, VALID, TEST = 0, 1, 2
"""Part codes of :func:`assign_parts`."""


def split_shares(config: SplitConfig, rows: int) -> tuple[float, float]:
    """The shares of rows a per-row random split sends to test and to validation.

    Counts (``test_size`` or ``valid_size`` ≥ 1) become shares of ``rows``; ``valid_size`` is, as in
    :func:`split_rows`, a share of the rows left after the test part.

    Args:
        config: The split section (``explicit`` takes no test rows).
        rows: How many rows the table holds (an estimate is fine).

    Returns:
        ``(test_share, valid_share)``, where ``valid_share`` is of the rows that are not test rows.

    Raises:
        ConfigError: A size leaves no rows to train on.
    """
    test = 0.0 if config.strategy == "explicit" else _share(config.test_size, rows, "test_size")
    valid = _share(config.valid_size, max(1, round(rows * (1 - test))), "valid_size") if config.valid_size else 0.0
    return test, valid


def _share(size: float, rows: int, key: str) -> float:
    share = size if size < 1 else size / max(rows, 1)
    if share >= 1:
        raise ConfigError(f"`split.{key}` ({size}) leaves no rows to train on out of about {rows:,}")
    return share


def row_draws(frame: pd.DataFrame, seed: int) -> np.ndarray:
    """A seeded number in [0, 1) for each row, computed from the row's values alone.

    The same row gets the same number whatever partition or position it is in, so a per-partition split is the
    same however the table is cut into files, and identical rows always land in the same part.
    """
    import hashlib

    import numpy as np
    import pandas as pd

    key = hashlib.blake2b(str(seed).encode(), digest_size=8).hexdigest()
    hashes = pd.util.hash_pandas_object(frame, index=False, hash_key=key).to_numpy(dtype=np.uint64)
    # The top 53 bits make an exactly representable float in [0, 1).
    draws: np.ndarray = (hashes >> np.uint64(11)).astype(np.float64) * 2.0**-53
    return draws


def assign_parts(draws: np.ndarray, test_share: float, valid_share: float) -> np.ndarray:
    """The part (:data:`TRAIN`, :data:`VALID` or :data:`TEST`) of each row, from its :func:`row_draws` number.

    Rows below ``test_share`` are test rows, the next ``valid_share`` of the rest validation rows, the others
    training rows: a random (not stratified) split, reproducible from the seed.
    """
    import numpy as np

    valid_end = test_share + valid_share * (1 - test_share)
    parts = np.full(len(draws), TRAIN, dtype=np.int8)
    parts[draws < valid_end] = VALID
    parts[draws < test_share] = TEST
    return parts


def training_draws(draws: np.ndarray, test_share: float, valid_share: float) -> np.ndarray:
    """The :func:`row_draws` numbers of training rows rescaled to [0, 1), for drawing a uniform sample of them."""
    valid_end = test_share + valid_share * (1 - test_share)
    rescaled: np.ndarray = (draws - valid_end) / (1 - valid_end)
    return rescaled
