"""A blend of fitted models: greedy ensemble selection (Caruana et al. 2004) and the model that scores with it.

``estimator: auto`` fits several candidates. Greedy ensemble selection then builds a weighted average of their
validation outputs: starting from nothing, it adds (with replacement) the candidate whose addition gives the best
validation score, for :data:`BLEND_ROUNDS` steps, and keeps the best ensemble seen along the way. A candidate added
``k`` times out of ``n`` gets weight ``k / n``. Only validation rows are used, so the test part cannot change it.

A :class:`BlendedModel` scores like any :class:`~keel.domain.model.FittedModel`: each member encodes the rows its
own way (members with the same compiled encoding share one matrix) and predicts, and the blend averages the
members' class probabilities (classification) or values (regression) with the weights.

Its explanation is the weighted sum of the members' LightGBM contributions, which is exact for the weighted average
of the members' raw scores (log-odds, or the target for a plain regression). It exists only when every member is a
LightGBM booster reading the same input columns with the same link (a Poisson member's log scale cannot be added to
another member's target units), see :attr:`BlendedModel.explainable`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from keel.domain.encoding import EncodedColumn
from keel.domain.model import FittedModel

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

BLEND = "blend"
"""The estimator name of a blended version (manifest ``estimator``, tag ``keel.estimator``, leaderboard row)."""

BLEND_ROUNDS = 25
"""Greedy selection steps: weights are multiples of 1/25 at the finest."""


def greedy_selection(
    outputs: Sequence[np.ndarray],
    score: Callable[[np.ndarray], float],
    *,
    greater_is_better: bool,
    rounds: int = BLEND_ROUNDS,
) -> tuple[list[float], float]:
    """Weights for a weighted average of ``outputs`` by greedy ensemble selection with replacement.

    Args:
        outputs: Each candidate's validation output (probabilities or values), all of one shape.
        score: The selection metric of an averaged output.
        greater_is_better: Whether a higher score is better.
        rounds: Selection steps.

    Returns:
        One weight per output (they sum to 1; unused candidates get 0), and the score of that blend.

    Raises:
        ValueError: No outputs, or every blend scored NaN.
    """
    import numpy as np

    if not outputs:
        raise ValueError("greedy selection needs at least one candidate output")
    sign = 1.0 if greater_is_better else -1.0

    def better(a: float, b: float | None) -> bool:
        return a == a and (b is None or sign * a > sign * b)  # NaN never wins

    counts = [0] * len(outputs)
    total = np.zeros_like(np.asarray(outputs[0], dtype=np.float64))
    best_counts: list[int] | None = None
    best_score: float | None = None
    for step in range(1, rounds + 1):
        chosen, chosen_score = None, None
        for i, output in enumerate(outputs):
            value = float(score((total + output) / step))
            if better(value, chosen_score):
                chosen, chosen_score = i, value
        if chosen is None or chosen_score is None:
            break
        counts[chosen] += 1
        total += outputs[chosen]
        if better(chosen_score, best_score):
            best_counts, best_score = list(counts), chosen_score
    if best_counts is None or best_score is None:
        raise ValueError("every blend of the candidates scored NaN")
    used = sum(best_counts)
    return [c / used for c in best_counts], best_score


@dataclass(frozen=True)
class BlendMatrix:
    """The encoded rows of a blend: one matrix per member (members with the same encoding share the object).

    Attributes:
        parts: Each member's input matrix, in member order.
    """

    parts: tuple[Any, ...]

    @property
    def shape(self) -> tuple[int, int]:
        """Rows, and the first member's columns."""
        first = self.parts[0]
        return int(first.shape[0]), int(first.shape[1])


def sharing(encodings: Sequence[list[EncodedColumn] | None]) -> list[int]:
    """Per member, the first member whose compiled encoding is the same (itself when none; never for ``None``)."""
    first: list[int] = []
    for i, encoding in enumerate(encodings):
        same = next((j for j in range(i) if encoding is not None and encodings[j] == encoding), i)
        first.append(same)
    return first


@dataclass
class BlendedModel(FittedModel):
    """A weighted average of fitted models over the same features and target.

    Build one with :meth:`of`. ``preprocessor`` and ``estimator`` are ``None``; ``feature_names`` are the first
    member's.

    Attributes:
        members: The fitted members.
        weights: One weight per member (positive, summing to 1).
        labels: Each member's candidate name (as on the leaderboard).
    """

    members: list[FittedModel] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, members: Sequence[FittedModel], weights: Sequence[float], labels: Sequence[str]) -> BlendedModel:
        """A blend of ``members`` with ``weights``.

        Raises:
            ValueError: No member, lengths that differ, a weight that is not positive, or members of different
                targets.
        """
        if not members or not len(members) == len(weights) == len(labels):
            raise ValueError("a blend needs one weight and one label per member, and at least one member")
        if any(not w > 0 for w in weights):
            raise ValueError(f"blend weights must be positive, got {list(weights)}")
        first = members[0]
        if any(m.schema.target != first.schema.target for m in members):
            raise ValueError("the members of a blend must predict the same target with the same classes")
        total = float(sum(weights))
        return cls(
            schema=first.schema,
            preprocessor=None,
            estimator=None,
            estimator_name=BLEND,
            feature_names=list(first.feature_names),
            categorical_indices=list(first.categorical_indices),
            members=list(members),
            weights=[float(w) / total for w in weights],
            labels=list(labels),
        )

    @cached_property
    def encoding(self) -> list[EncodedColumn] | None:
        """A blend has no single encoding: each member has its own."""
        return None

    @cached_property
    def shared(self) -> list[int]:
        """Per member, the member whose matrix it reuses (see :func:`sharing`)."""
        return sharing([m.encoding for m in self.members])

    def transform(self, features: pd.DataFrame) -> BlendMatrix:
        """Each member's input matrix for coerced feature columns."""
        parts: list[Any] = []
        for i, member in enumerate(self.members):
            source = self.shared[i]
            parts.append(parts[source] if source != i else member.transform(features))
        return BlendMatrix(tuple(parts))

    def proba_from_matrix(self, matrix: Any) -> np.ndarray:
        """The weighted average of the members' class probabilities."""
        if self.task == "regression":
            raise TypeError("a regression model has no class probabilities; use predict_value")
        return self._average([m.proba_from_matrix(p) for m, p in zip(self.members, matrix.parts, strict=True)])

    def value_from_matrix(self, matrix: Any) -> np.ndarray:
        """The weighted average of the members' predicted values."""
        return self._average([m.value_from_matrix(p) for m, p in zip(self.members, matrix.parts, strict=True)])

    def _average(self, outputs: list[np.ndarray]) -> np.ndarray:
        total = outputs[0] * self.weights[0]
        for weight, output in zip(self.weights[1:], outputs[1:], strict=True):
            total = total + weight * output
        return total

    @property
    def raw_link(self) -> str:
        """The first member's raw-score link (every member's, when the blend is :attr:`explainable`)."""
        return self.members[0].raw_link

    @property
    def explainable(self) -> bool:
        """Whether every member is a LightGBM booster over the same input columns with the same raw-score link."""
        first = self.members[0]
        return all(
            m.is_booster and m.feature_names == first.feature_names and m.raw_link == first.raw_link
            for m in self.members
        )

    def contributions(self, features: pd.DataFrame) -> np.ndarray | None:
        """The members' contributions added with the blend weights, or ``None`` when not :attr:`explainable`."""
        if not self.explainable:
            return None
        parts = [m.contributions(features) for m in self.members]
        return self._average([p for p in parts if p is not None])

    def feature_importance(self) -> dict[str, float] | None:
        """Each member's importance scaled to sum to 1, added with the blend weights (by model input column)."""
        combined: dict[str, float] = {}
        for weight, member in zip(self.weights, self.members, strict=True):
            importance = member.feature_importance()
            if not importance:
                return None
            total = sum(importance.values()) or 1.0
            for name, value in importance.items():
                combined[name] = combined.get(name, 0.0) + weight * value / total
        return combined
