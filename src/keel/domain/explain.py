"""Explanations: LightGBM's per-feature contributions (SHAP values), mapped back to the input columns.

LightGBM's ``pred_contrib`` output has one column per model input column plus the expected value. The model's input
columns are the feature pipeline's outputs; with one-hot encoding or date parts one input column becomes several, so
their contributions are added back up to the column a user sent. Derived columns (``features.derived``) keep their
own name: they are computed from several inputs and their effect cannot be split honestly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class Contribution:
    """One input column's contribution to one prediction.

    Attributes:
        feature: The input column (or derived column).
        value: The value the record holds for it (``None`` for a derived column).
        contribution: Its contribution to the raw score (log-odds for classifiers, target units for regression).
    """

    feature: str
    value: Any
    contribution: float


@dataclass(frozen=True)
class RecordExplanation:
    """Why one record got its prediction.

    Attributes:
        row: The record's position in the input (0-based).
        prediction: The predicted class or value.
        base_value: The model's expected raw score (where every explanation starts).
        raw_score: ``base_value`` plus every contribution: the record's raw score.
        unit: ``log-odds`` or ``target units``.
        contributions: The largest contributions by absolute value, largest first.
        rest: The sum of the contributions not listed.
    """

    row: int
    prediction: Any
    base_value: float
    raw_score: float
    unit: str
    contributions: list[Contribution]
    rest: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "row": self.row,
            "prediction": self.prediction,
            "base_value": self.base_value,
            "raw_score": self.raw_score,
            "unit": self.unit,
            "contributions": [
                {"feature": c.feature, "value": c.value, "contribution": c.contribution} for c in self.contributions
            ],
            "rest": self.rest,
        }


def input_mapping(
    output_names: Sequence[str],
    input_names: Sequence[str],
    groups: Sequence[tuple[int, int, Sequence[str]]] = (),
) -> list[str]:
    """The input column each model input column comes from.

    Args:
        output_names: The feature pipeline's output column names.
        input_names: The feature columns a user sends.
        groups: The pipeline's steps as ``(first output, end, input columns)``: a step that reads one input column
            (a text vectorizer, date parts) gives it all its outputs; a step with one output per input column
            (ordinal codes, numbers passed through) maps them in order.

    Returns:
        Per output column, its input column. Otherwise an output column named like an input column (``age``) or
        prefixed by one and an underscore (``workclass_Private``) maps to it, the longest name winning; any other
        (a derived column) keeps its own name.
    """
    by_length = sorted(input_names, key=len, reverse=True)
    mapped = []
    for index, output in enumerate(output_names):
        group = next((g for g in groups if g[0] <= index < g[1]), None)
        if group is not None and len(group[2]) == 1 and group[2][0] in input_names:
            mapped.append(group[2][0])
            continue
        if group is not None and len(group[2]) == group[1] - group[0] and group[2][index - group[0]] in input_names:
            mapped.append(group[2][index - group[0]])
            continue
        match = next((name for name in by_length if output == name or output.startswith(f"{name}_")), None)
        mapped.append(match or output)
    return mapped


def class_contributions(contributions: np.ndarray, n_classes: int, classes_chosen: np.ndarray | None) -> np.ndarray:
    """Reduce LightGBM's contribution matrix to one row of ``(columns + 1)`` per record.

    Args:
        contributions: ``pred_contrib`` output: ``(rows, columns + 1)``, or ``(rows, classes * (columns + 1))``
            for a multiclass model.
        n_classes: Number of classes (0 or 2 when there is a single score).
        classes_chosen: Per record, the class to explain (multiclass only; usually the predicted one).
    """
    import numpy as np

    if n_classes <= 2:
        return contributions
    rows = contributions.shape[0]
    per_class = contributions.reshape(rows, n_classes, -1)
    chosen = np.zeros(rows, dtype=int) if classes_chosen is None else classes_chosen
    return np.asarray(per_class[np.arange(rows), chosen])


def aggregate_to_inputs(matrix: np.ndarray, mapping: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Add up contribution columns that come from the same input column.

    Args:
        matrix: ``(rows, columns)`` contributions (without the expected-value column).
        mapping: Per column, its input column (from :func:`input_mapping`).

    Returns:
        The input column names (in first-seen order) and the ``(rows, inputs)`` summed contributions.
    """
    import numpy as np

    names: list[str] = []
    index: dict[str, int] = {}
    for name in mapping:
        if name not in index:
            index[name] = len(names)
            names.append(name)
    summed = np.zeros((matrix.shape[0], len(names)), dtype=np.float64)
    for column, name in enumerate(mapping):
        summed[:, index[name]] += matrix[:, column]
    return names, summed


def explain_records(
    contributions: np.ndarray,
    mapping: Sequence[str],
    records: Sequence[dict[str, Any]],
    predictions: Sequence[Any],
    *,
    rows: Sequence[int],
    unit: str,
    top: int = 8,
) -> list[RecordExplanation]:
    """Per record, the ``top`` input columns with the largest contributions.

    Args:
        contributions: One row of ``(columns + 1)`` per record (see :func:`class_contributions`).
        mapping: Per model input column, its input column.
        records: Per record, input column → value.
        predictions: Per record, the predicted class or value.
        rows: Per record, its position in the user's input.
        unit: ``log-odds`` or ``target units``.
        top: Contributions listed per record.
    """
    import numpy as np

    names, summed = aggregate_to_inputs(contributions[:, :-1], mapping)
    explanations = []
    for i, record in enumerate(records):
        values = summed[i]
        order = np.argsort(-np.abs(values), kind="stable")
        shown = order[:top].tolist()
        listed = [Contribution(names[k], record.get(names[k]), float(values[k])) for k in shown]
        base = float(contributions[i, -1])
        explanations.append(
            RecordExplanation(
                row=int(rows[i]),
                prediction=predictions[i],
                base_value=base,
                raw_score=base + float(values.sum()),
                unit=unit,
                contributions=listed,
                rest=float(values[order[top:]].sum()) if len(order) > top else 0.0,
            )
        )
    return explanations


def mean_absolute_contributions(contributions: np.ndarray, mapping: Sequence[str], n_classes: int) -> dict[str, float]:
    """Global importance: the mean absolute contribution per input column, largest first.

    For a multiclass model, the mean over classes of each class's mean absolute contribution.
    """
    import numpy as np

    if n_classes > 2:
        rows = contributions.shape[0]
        per_class = contributions.reshape(rows, n_classes, -1)[:, :, :-1]
        blocks = [aggregate_to_inputs(per_class[:, k, :], mapping) for k in range(n_classes)]
        names = blocks[0][0]
        means = np.mean([np.abs(block).mean(axis=0) for _, block in blocks], axis=0)
    else:
        names, summed = aggregate_to_inputs(contributions[:, :-1], mapping)
        means = np.abs(summed).mean(axis=0)
    pairs = sorted(zip(names, means.tolist(), strict=True), key=lambda item: -item[1])
    return {name: float(value) for name, value in pairs}
