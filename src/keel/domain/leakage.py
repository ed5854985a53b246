"""Target leakage: features that reproduce the target exactly or nearly.

A column that is part of the answer (bike rentals split into ``casual`` and ``registered``, which sum to the
target ``cnt``; a status that is only set after the outcome) makes a model look perfect on held-out data and fail
in production, where the column is not known yet. Training refuses such features unless the user says otherwise.

Checks, on the training rows:

- a numeric feature whose correlation with a numeric target is at least :data:`CORRELATION_LIMIT`;
- a numeric feature that alone separates the two classes of a binary target (ROC AUC at least
  :data:`AUC_LIMIT`);
- a feature with repeated values whose value almost determines the target (the target's variance explained by
  the feature's groups, or the share of rows whose class is their group's majority, at least
  :data:`MAPPING_LIMIT`, clearly above what the target's own distribution gives);
- two numeric features that together reproduce a numeric target linearly (R² at least :data:`PAIR_LIMIT`), such
  as a sum.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from keel.domain.schema import FeatureSchema

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

CORRELATION_LIMIT = 0.99
AUC_LIMIT = 0.995
MAPPING_LIMIT = 0.99
PAIR_LIMIT = 0.999
WARN_AUC = 0.95
"""A numeric feature that alone reaches this ROC AUC on a binary target is a near-leak: warned, never promoted."""
WARN_R2 = 0.90
"""A numeric feature whose correlation with a numeric target, squared, reaches this is a near-leak."""
WARN_MAPPING = 0.95
"""A feature whose value fixes the class for this share of rows (or explains this share of variance) is a near-leak."""
PAIR_CANDIDATES = 8
"""Pairs are tried among this many numeric features most correlated with the target."""
SAMPLE_ROWS = 20_000
"""Checks run on at most this many rows (a seeded sample), so they stay fast on big tables."""


@dataclass(frozen=True)
class Leak:
    """Features that reproduce the target.

    Attributes:
        columns: The feature column(s).
        reason: How they reproduce it, with the measured value.
    """

    columns: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class Measured:
    """How strongly each feature alone follows the target, measured once for the refusal and the warning.

    Attributes:
        correlation: Per numeric feature of a regression target, its correlation with the target.
        auc: Per numeric feature of a binary target, the ROC AUC it reaches alone.
        mapping: Per feature with repeated values: the share its value determines (the target's variance its
            groups explain, or the share of rows whose class is their group's majority) and the majority class's
            share (``None`` for regression).
    """

    correlation: dict[str, float]
    auc: dict[str, float]
    mapping: dict[str, tuple[float, float | None]]


def measure(features: pd.DataFrame, target: np.ndarray, schema: FeatureSchema) -> Measured:
    """Measure each feature's strength alone on (a seeded sample of) the training rows.

    Args:
        features: Coerced feature columns (numeric as float64, categorical as text).
        target: Encoded target (class indices, or values for regression).
        schema: The feature schema (task and column types).
    """
    import numpy as np

    measured = Measured({}, {}, {})
    if len(features) < 20:
        return measured
    features, target = _sample(features, target)
    task = schema.target.task
    y = np.asarray(target, dtype=np.float64)
    for column in schema.features:
        if column.type in ("text", "datetime"):
            continue
        values = features[column.name]
        if column.type in ("numeric", "boolean"):
            x = values.to_numpy(dtype=np.float64)
            present = ~np.isnan(x)
            if present.sum() < 20 or np.nanstd(x) == 0:
                continue
            if task == "regression":
                measured.correlation[column.name] = float(np.corrcoef(x[present], y[present])[0, 1])
            elif task == "binary":
                auc = _auc(x[present], y[present])
                measured.auc[column.name] = max(auc, 1 - auc)
        mapping = _mapping_share(values, y, task)
        if mapping is not None:
            measured.mapping[column.name] = mapping
    return measured


def find_leaks(
    features: pd.DataFrame, target: np.ndarray, schema: FeatureSchema, *, measured: Measured | None = None
) -> list[Leak]:
    """Features of the training rows that reproduce the target exactly or nearly.

    Args:
        features: Coerced feature columns (numeric as float64, categorical as text).
        target: Encoded target (class indices, or values for regression).
        schema: The feature schema (task and column types).
        measured: :func:`measure` of the same rows, when taken already.

    Returns:
        The leaks found, strongest evidence first per column; empty when there are none.
    """
    import numpy as np

    if len(features) < 20:
        return []
    measured = measured or measure(features, target, schema)
    leaks: list[Leak] = []
    for column in schema.feature_names:
        r = measured.correlation.get(column)
        auc = measured.auc.get(column)
        if r is not None and abs(r) >= CORRELATION_LIMIT:
            leaks.append(Leak((column,), f"correlation with the target is {r:.3f}"))
        elif auc is not None and auc >= AUC_LIMIT:
            leaks.append(Leak((column,), f"alone it separates the classes (ROC AUC {auc:.3f})"))
        elif (reason := _mapping_reason(measured.mapping.get(column), MAPPING_LIMIT)) is not None:
            leaks.append(Leak((column,), reason))
    if schema.target.task == "regression":
        features, target = _sample(features, target)
        y = np.asarray(target, dtype=np.float64)
        flagged = {c for leak in leaks for c in leak.columns}
        ranked = sorted(measured.correlation.items(), key=lambda kv: -abs(kv[1]))
        candidates = [c for c, _ in ranked if c not in flagged]
        order = {name: i for i, name in enumerate(schema.feature_names)}
        top = sorted(candidates[:PAIR_CANDIDATES], key=order.__getitem__)
        for first, second in itertools.combinations(top, 2):
            r2 = _pair_r2(features[first].to_numpy(np.float64), features[second].to_numpy(np.float64), y)
            if r2 >= PAIR_LIMIT:
                leaks.append(Leak((first, second), f"together they reproduce the target (R² {r2:.4f}, e.g. a sum)"))
    return leaks


def find_near_leaks(
    features: pd.DataFrame,
    target: np.ndarray,
    schema: FeatureSchema,
    *,
    known: set[str] | frozenset[str] = frozenset(),
    measured: Measured | None = None,
) -> list[Leak]:
    """Features strong enough alone to be suspect, below the refusal limits of :func:`find_leaks`.

    A feature that alone reaches ROC AUC :data:`WARN_AUC`, R² :data:`WARN_R2`, or whose value fixes the class for
    :data:`WARN_MAPPING` of rows is often known only after the outcome. It is not refused (it may be a genuinely
    strong, legitimate feature), but the version is not promoted on its own strength.

    Args:
        features: Coerced feature columns of the training rows.
        target: Encoded target.
        schema: The feature schema.
        known: Columns the user vouches are known in advance (``data.known_in_advance``); never warned about.
        measured: :func:`measure` of the same rows, when taken already.

    Returns:
        One warning per suspect column, in schema order.
    """
    if len(features) < 20:
        return []
    measured = measured or measure(features, target, schema)
    found: list[Leak] = []
    for column in schema.feature_names:
        if column in known:
            continue
        r = measured.correlation.get(column)
        auc = measured.auc.get(column)
        if r is not None and r**2 >= WARN_R2:
            found.append(Leak((column,), f"alone it explains R² {r**2:.3f} of the target"))
        elif auc is not None and auc >= WARN_AUC:
            found.append(Leak((column,), f"alone it reaches ROC AUC {auc:.3f}"))
        elif (reason := _mapping_reason(measured.mapping.get(column), WARN_MAPPING)) is not None:
            found.append(Leak((column,), reason))
    return found


def near_leak_warning(leak: Leak) -> str:
    """One line naming a suspect feature, why, and how to vouch for it."""
    column = leak.columns[0]
    return (
        f"feature {column!r} may leak the target: {leak.reason}. If it is known before the outcome, list it in "
        f"`data.known_in_advance` ([{column}]); otherwise add it to `data.ignore`."
    )


def leakage_message(leaks: list[Leak], target: str) -> str:
    """The error shown when leaks are found: which columns, why, and what to do."""
    lines = [f"{' + '.join(repr(c) for c in leak.columns)}: {leak.reason}" for leak in leaks]
    columns = sorted({c for leak in leaks for c in leak.columns})
    return (
        f"target leakage: feature(s) reproduce the target {target!r} exactly or nearly, so a model using them "
        "would look perfect in testing and fail in production, where they are not known in advance:\n  "
        + "\n  ".join(lines)
        + f"\nList them in `data.ignore` (data.ignore: [{', '.join(columns)}]); if they truly are known before the "
        "target, set `data.leakage_check: false`."
    )


def _sample(features: pd.DataFrame, target: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """At most ``SAMPLE_ROWS`` rows, drawn with a fixed seed (the same rows for the refusal and the warning)."""
    import numpy as np

    rows = len(features)
    if rows <= SAMPLE_ROWS:
        return features, target
    keep = np.sort(np.random.default_rng(0).choice(rows, SAMPLE_ROWS, replace=False))
    return features.iloc[keep].reset_index(drop=True), target[keep]


def _auc(x: np.ndarray, y: np.ndarray) -> float:
    import numpy as np
    from scipy.stats import rankdata

    positives = y == 1
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if n_pos == 0 or n_neg == 0:
        return 0.5
    ranks = rankdata(x)
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)) if len(x) else float(np.nan)


def _mapping_share(values: pd.Series, y: np.ndarray, task: str) -> tuple[float, float | None] | None:
    """How far the feature's value determines the target, and the majority class's share; ``None`` for no evidence.

    For regression, the share of the target's variance the feature's groups explain; for classification, the
    share of rows whose class is their group's majority class. Missing values form a group of their own.
    """
    import numpy as np
    import pandas as pd

    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    codes = np.where(codes < 0, len(uniques), codes)
    sizes = np.bincount(codes)
    groups = int((sizes > 0).sum())
    # Every row its own group "determines" anything; only a value shared by many rows is evidence.
    if groups > len(codes) / 10 or groups < 2:
        return None
    if task == "regression":
        total = float(np.var(y))
        if total == 0:
            return None
        means = np.bincount(codes, weights=y, minlength=len(sizes)) / np.maximum(sizes, 1)
        within = float(np.mean((y - means[codes]) ** 2))
        return 1 - within / total, None
    classes = y.astype(np.int64)
    width = int(classes.max()) + 1
    counts = np.bincount(codes * width + classes, minlength=len(sizes) * width).reshape(len(sizes), width)
    purity = float(counts.max(axis=1).sum() / len(codes))
    return purity, float(np.bincount(classes).max() / len(codes))


def _mapping_reason(share: tuple[float, float | None] | None, limit: float) -> str | None:
    """A reason when a :func:`_mapping_share` reaches ``limit`` (for classes, clearly above the majority's share)."""
    if share is None:
        return None
    value, majority = share
    if majority is None:
        if value >= limit:
            return f"its value determines the target ({value:.1%} of the target's variance explained)"
        return None
    if value >= limit and value - majority >= (1 - majority) / 2:
        return f"its value determines the class for {value:.1%} of rows (the majority class alone: {majority:.1%})"
    return None


def _pair_r2(a: np.ndarray, b: np.ndarray, y: np.ndarray) -> float:
    import numpy as np

    present = ~(np.isnan(a) | np.isnan(b) | np.isnan(y))
    if present.sum() < 20:
        return 0.0
    design = np.column_stack([np.ones(int(present.sum())), a[present], b[present]])
    target = y[present]
    coef, *_ = np.linalg.lstsq(design, target, rcond=None)
    residual = target - design @ coef
    total = float(((target - target.mean()) ** 2).sum())
    return 0.0 if total == 0 else 1 - float((residual**2).sum()) / total
