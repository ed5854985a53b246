"""Drift: how far recent inputs and predictions are from what the model saw at training time.

The reference is computed once, at training time, from the training split (features) and the test split
(predictions), and stored with the version as ``reference.json``. Numbers are binned at the training split's deciles,
categories keep their most frequent values plus an ``(other)`` bucket (rarer training categories and categories never
seen in training), and every feature has a ``(missing)`` bucket. The population stability index (PSI) compares the
current shares with the reference shares over those buckets:

    PSI = Σ (current − reference) · ln(current / reference)

A PSI of 0.1 is usually read as a small shift and 0.2 or more as a significant one (the default threshold).
Everything here is pure: values in, numbers out.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict

from keel.defaults import DRIFT_THRESHOLD
from keel.domain.schema import FeatureSchema

if TYPE_CHECKING:
    import numpy as np

DEFAULT_THRESHOLD = DRIFT_THRESHOLD
"""PSI at or above which a feature is marked as drifting."""
DEFAULT_BINS = 10
MAX_CATEGORIES = 20
"""Categories kept as their own bucket; rarer ones share ``(other)``."""
SMOOTHING = 1e-4
"""Added to every share before the logarithm, so an empty bucket gives a large but finite PSI."""
MISSING = "(missing)"
OTHER = "(other)"
PREDICTION = "prediction"

Kind = Literal["numeric", "categorical"]


class Distribution(BaseModel):
    """Shares of values per bucket.

    Attributes:
        kind: ``numeric`` (bins between ``edges``) or ``categorical`` (one bucket per listed category).
        edges: Inner bin edges (numeric): bucket ``i`` holds values in ``(edges[i-1], edges[i]]``, the first
            everything up to ``edges[0]`` and the last everything above ``edges[-1]``.
        categories: Categories with their own bucket (categorical), most frequent first.
        known: Every category seen in training (categorical), to tell unseen values from rare ones.
        shares: Share of values per bucket: the bins or categories, then ``(other)`` for categorical, then
            ``(missing)`` last.
        rows: Values the shares were computed on.
        measure: ``value`` (the values themselves) or ``length`` (a text column's length in characters).
    """

    model_config = ConfigDict(extra="forbid")

    kind: Kind
    measure: Literal["value", "length"] = "value"
    edges: list[float] | None = None
    categories: list[str] | None = None
    known: list[str] | None = None
    shares: list[float]
    rows: int

    @property
    def labels(self) -> list[str]:
        """A readable name per bucket, in ``shares`` order."""
        if self.kind == "numeric":
            edges = self.edges or []
            if not edges:
                return ["all values", MISSING]
            labels = [f"≤ {_fmt(edges[0])}"]
            labels += [f"{_fmt(low)} – {_fmt(high)}" for low, high in itertools.pairwise(edges)]
            labels.append(f"> {_fmt(edges[-1])}")
            return [*labels, MISSING]
        return [*(self.categories or []), OTHER, MISSING]

    @property
    def missing_share(self) -> float:
        """Share of missing values."""
        return self.shares[-1]


class DriftReference(BaseModel):
    """The reference distributions stored with a model version.

    Attributes:
        features: Feature name → its training-split distribution (numeric, boolean and categorical features).
        prediction: The test split's predicted class (classification) or value (regression) distribution.
        score: The test split's positive-class probability distribution (binary classification only).
        skipped: Features not monitored (dates), with why.
    """

    model_config = ConfigDict(extra="forbid")

    features: dict[str, Distribution]
    prediction: Distribution
    score: Distribution | None = None
    skipped: dict[str, str] = {}


class FeatureDrift(BaseModel):
    """One feature (or the prediction) compared with its reference.

    Attributes:
        name: Feature name (``prediction`` / ``score`` for the model's output).
        kind: ``numeric`` or ``categorical``.
        measure: ``value``, or ``length`` for a text column (its length in characters is compared).
        psi: Population stability index against the reference (NaN without current values).
        drifting: Whether ``psi`` is at or above the threshold.
        missing_reference: Share of missing values in the reference.
        missing_current: Share of missing values now.
        unseen_current: Share of values in a category never seen in training (categorical).
        labels: Bucket names.
        reference: Reference share per bucket.
        current: Current share per bucket.
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    kind: Kind
    measure: Literal["value", "length"] = "value"
    psi: float
    drifting: bool
    missing_reference: float
    missing_current: float
    unseen_current: float | None = None
    labels: list[str]
    reference: list[float]
    current: list[float]


class DriftReport(BaseModel):
    """Every monitored feature and the prediction compared with the reference.

    Attributes:
        rows: Records compared.
        threshold: PSI at or above which a feature is drifting.
        features: Per feature, most drifting first.
        prediction: The predicted class / value distribution.
        score: The positive-class probability distribution (binary classification).
        drifting: Names of the drifting features, most drifting first.
    """

    model_config = ConfigDict(extra="forbid")

    rows: int
    threshold: float
    features: list[FeatureDrift]
    prediction: FeatureDrift | None = None
    score: FeatureDrift | None = None
    drifting: list[str]


def psi(reference: Sequence[float], current: Sequence[float], smoothing: float = SMOOTHING) -> float:
    """Population stability index between two share vectors over the same buckets.

    Args:
        reference: Reference shares (summing to 1).
        current: Current shares (summing to 1).
        smoothing: Added to every share so an empty bucket does not give an infinite value.

    Returns:
        The PSI (0 for identical distributions, larger for larger shifts).

    Raises:
        ValueError: The vectors have different lengths.
    """
    if len(reference) != len(current):
        raise ValueError(f"PSI needs shares over the same buckets; got {len(reference)} and {len(current)}")
    total = 0.0
    for ref, cur in zip(reference, current, strict=True):
        r, c = ref + smoothing, cur + smoothing
        total += (c - r) * math.log(c / r)
    return total


def numeric_reference(values: Sequence[Any] | np.ndarray, bins: int = DEFAULT_BINS) -> Distribution:
    """Bin numbers at their quantiles (missing values get their own bucket).

    Args:
        values: The training values (``None``/NaN for missing).
        bins: Buckets wanted; fewer when values repeat (a 0/1 column gets two).
    """
    import numpy as np

    numbers = _floats(values)
    finite = numbers[np.isfinite(numbers)]
    edges: list[float] = []
    if finite.size:
        # Edges are values that occur (no interpolation), so a column of a few distinct values gets one bucket each.
        quantiles = np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1], method="inverted_cdf")
        edges = sorted({float(q) for q in quantiles})
        # The top edge must leave values above it, otherwise the last bucket is always empty.
        if edges and edges[-1] >= float(finite.max()):
            edges = edges[:-1]
        if not edges and finite.min() < finite.max():
            edges = [float(np.median(finite))]
        if not edges:
            edges = [float(finite[0])]
    distribution = Distribution(kind="numeric", edges=edges, shares=[], rows=len(numbers))
    distribution.shares = _numeric_shares(numbers, edges)
    return distribution


def categorical_reference(values: Sequence[Any] | np.ndarray, max_categories: int = MAX_CATEGORIES) -> Distribution:
    """Shares of the most frequent categories, ``(other)`` and ``(missing)``.

    Args:
        values: The training values (``None``/NaN for missing).
        max_categories: Categories given their own bucket.
    """
    counts, missing = _text_counts(values)
    ordered = sorted(counts, key=lambda c: (-counts[c], c))
    distribution = Distribution(
        kind="categorical",
        categories=ordered[:max_categories],
        known=ordered,
        shares=[],
        rows=counts.total() + missing,
    )
    distribution.shares = _categorical_shares(counts, missing, distribution.categories or [])
    return distribution


def build_reference(
    columns: Mapping[str, Sequence[Any] | np.ndarray],
    schema: FeatureSchema,
    predictions: Sequence[Any] | np.ndarray,
    *,
    scores: Sequence[float] | np.ndarray | None = None,
    bins: int = DEFAULT_BINS,
    max_categories: int = MAX_CATEGORIES,
) -> DriftReference:
    """The reference distributions of a model version.

    Args:
        columns: Feature name → training-split values (coerced to the schema's types).
        schema: The feature schema.
        predictions: The test split's predicted labels (classification) or values (regression).
        scores: The test split's positive-class probabilities (binary classification).
        bins: Bins per numeric feature.
        max_categories: Categories kept per categorical feature.
    """
    features: dict[str, Distribution] = {}
    skipped: dict[str, str] = {}
    for column in schema.features:
        if column.type in ("numeric", "boolean"):
            features[column.name] = numeric_reference(columns[column.name], bins)
        elif column.type == "categorical":
            features[column.name] = categorical_reference(columns[column.name], max_categories)
        elif column.type == "text":
            lengths = numeric_reference(text_lengths(columns[column.name]), bins)
            features[column.name] = lengths.model_copy(update={"measure": "length"})
        else:
            skipped[column.name] = f"{column.type} columns are not monitored"
    if schema.target.task == "regression":
        prediction = numeric_reference(predictions, bins)
    else:
        prediction = categorical_reference([str(p) for p in predictions], max_categories=1000)
    score = None if scores is None else numeric_reference(scores, bins)
    return DriftReference(features=features, prediction=prediction, score=score, skipped=skipped)


def compare(
    reference: Distribution, values: Sequence[Any] | np.ndarray, *, name: str, threshold: float = DEFAULT_THRESHOLD
) -> FeatureDrift:
    """Compare current values with one reference distribution.

    Args:
        reference: The stored reference.
        values: Current values (``None``/NaN for missing).
        name: Feature name, for the result.
        threshold: PSI at or above which the feature is drifting.
    """
    unseen: float | None = None
    if reference.kind == "numeric":
        numbers = _floats(values)
        shares = _numeric_shares(numbers, reference.edges or [])
        rows = len(numbers)
    else:
        counts, missing = _text_counts(values)
        shares = _categorical_shares(counts, missing, reference.categories or [])
        rows = counts.total() + missing
        known = set(reference.known or [])
        unseen = sum(n for text, n in counts.items() if text not in known) / rows if rows else 0.0
    value = psi(reference.shares, shares) if rows else math.nan
    return FeatureDrift(
        name=name,
        kind=reference.kind,
        measure=reference.measure,
        psi=value,
        drifting=bool(rows) and value >= threshold,
        missing_reference=reference.missing_share,
        missing_current=shares[-1],
        unseen_current=unseen,
        labels=reference.labels,
        reference=list(reference.shares),
        current=shares,
    )


def drift_report(
    reference: DriftReference,
    columns: Mapping[str, Sequence[Any] | np.ndarray],
    *,
    predictions: Sequence[Any] | np.ndarray | None = None,
    scores: Sequence[float] | np.ndarray | None = None,
    threshold: float = DEFAULT_THRESHOLD,
) -> DriftReport:
    """Compare current features (and predictions) with a version's reference.

    Args:
        reference: The version's stored reference.
        columns: Feature name → current values; features absent here are left out.
        predictions: Current predicted labels or values.
        scores: Current positive-class probabilities (binary classification).
        threshold: PSI at or above which a feature is drifting.

    Returns:
        Per-feature drift, most drifting first, and the prediction's.
    """
    features = [
        compare(
            distribution,
            text_lengths(columns[name]) if distribution.measure == "length" else columns[name],
            name=name,
            threshold=threshold,
        )
        for name, distribution in reference.features.items()
        if name in columns
    ]
    features.sort(key=lambda f: -1.0 if math.isnan(f.psi) else -f.psi)
    rows = max((len(values) for values in columns.values()), default=0 if predictions is None else len(predictions))
    prediction = None
    if predictions is not None:
        values = predictions if reference.prediction.kind == "numeric" else [str(p) for p in predictions]
        prediction = compare(reference.prediction, values, name=PREDICTION, threshold=threshold)
    score = None
    if scores is not None and reference.score is not None:
        score = compare(reference.score, scores, name="score", threshold=threshold)
    return DriftReport(
        rows=rows,
        threshold=threshold,
        features=features,
        prediction=prediction,
        score=score,
        drifting=[f.name for f in features if f.drifting],
    )


def text_lengths(values: Sequence[Any] | np.ndarray) -> list[float]:
    """Length in characters of each text (NaN for a missing or empty text)."""
    lengths = []
    for value in values:
        if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
            lengths.append(math.nan)
        else:
            lengths.append(float(len(str(value))))
    return lengths


def _floats(values: Sequence[Any] | np.ndarray) -> np.ndarray:
    import numpy as np

    if isinstance(values, np.ndarray) and values.dtype.kind in "fiub":
        return values.astype(np.float64, copy=False)
    return np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)


def _numeric_shares(numbers: np.ndarray, edges: Sequence[float]) -> list[float]:
    import numpy as np

    total = len(numbers)
    buckets = len(edges) + 2
    if total == 0:
        return [0.0] * buckets
    missing = np.isnan(numbers)
    present = numbers[~missing]
    which = np.searchsorted(np.asarray(edges, dtype=np.float64), present, side="left")
    counts = np.bincount(which, minlength=len(edges) + 1).astype(np.float64)
    return [*(counts / total).tolist(), float(missing.sum()) / total]


def _text_counts(values: Sequence[Any] | np.ndarray) -> tuple[Counter[str], int]:
    """How often each present value occurs, as text, and how many were missing.

    Values are counted as they are first (in C), then each distinct value is turned into text once: a column of a
    few categories over many rows costs one pass, not one Python call per row.
    """
    texts: Counter[str] = Counter()
    missing = 0
    for value, n in Counter(values).items():
        if value is None or (isinstance(value, float) and math.isnan(value)):
            missing += n
        else:
            texts[_text(value)] += n
    return texts, missing


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _categorical_shares(counts: Mapping[str, int], missing: int, categories: Sequence[str]) -> list[float]:
    """Shares of each category, of every other present value, and of missing values (in that order)."""
    present = sum(counts.values())
    total = present + missing
    if not total:
        return [0.0] * (len(categories) + 2)
    kept = [counts.get(c, 0) for c in categories]
    return [*(n / total for n in kept), (present - sum(kept)) / total, missing / total]


def _fmt(value: float) -> str:
    return f"{value:,.4g}" if abs(value) < 1e6 else f"{value:.3g}"
