"""The hot-path predictor: JSON records in, predictions out, with no DataFrame and no pipeline call per request.

A fitted ordinal ``ColumnTransformer`` (categories → integer codes, numbers passed through) is compiled once into a
plan of per-column dict lookups; a request's records are written straight into a float64 matrix that goes to the
model's own ``predict`` (a bare LightGBM booster, or a scikit-learn estimator's ``predict_proba``). The matrix is
bit-for-bit the one the training-time pipeline produces, so predictions are identical to ``keel predict``.

Pipelines the compiler does not understand (one-hot encoding, text, dates) fall back to the batch path
(:func:`~keel.domain.validation.coerce_features` and the fitted pipeline): slower, equally correct.

A blend (:class:`~keel.domain.blend.BlendedModel`) is scored by one predictor per member, each on this same path
(members with the same compiled encoding share one matrix), and the members' outputs are averaged with the blend
weights; its contributions are the members' added with the same weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import TYPE_CHECKING, Any

from keel.domain.blend import BlendedModel, BlendMatrix, sharing
from keel.domain.model import FittedModel
from keel.serving.single_row import SingleRow, single_row

if TYPE_CHECKING:
    import numpy as np

NAN = math.nan
DEFAULT_TOP_CONTRIBUTIONS = 5
Record = Mapping[str, Any]


VECTOR_CHECKS_FROM_ROWS = 32
"""Requests with at least this many records find out-of-range values with vector comparisons first."""
ALL_CORES_FROM_ROWS = 256
"""Requests with at least this many records let LightGBM use every core (0 = OpenMP's default)."""


@dataclass(frozen=True)
class _Check:
    """What the training data looked like for one feature, to warn about values outside it.

    Attributes:
        name: Feature name.
        known: Categories the model knows (categorical features).
        low: Smallest training value (numeric features).
        high: Largest training value (numeric features).
    """

    name: str
    known: frozenset[Any] | None = None
    low: float | None = None
    high: float | None = None


class Predictor:
    """Scores JSON-like records with a fitted model.

    Args:
        model: The fitted model.
        threads: Threads LightGBM may use per call (1 keeps the latency of small requests low and leaves the other
            cores to other requests and workers).

    Attributes:
        compiled: Whether the preprocessor was compiled (otherwise each request runs the fitted pipeline).
    """

    def __init__(self, model: FittedModel, *, threads: int = 1) -> None:
        self.model = model
        self.threads = threads
        self.schema = model.schema
        self.feature_names = model.schema.feature_names
        self.id_names = model.schema.id_names
        self.task = model.task
        self.classes = model.classes
        self.class_keys = [str(c) for c in self.classes]
        self._plan = model.encoding
        self._members: list[Predictor] = []
        self._weights: list[float] = []
        self._shared: list[int] = []
        if isinstance(model, BlendedModel):
            self._members = [Predictor(member, threads=threads) for member in model.members]
            self._weights = list(model.weights)
            self._shared = sharing([member.encoding for member in model.members])
        self.compiled: bool = self._plan is not None or bool(self._members and all(p.compiled for p in self._members))
        # A blend checks values as its first member does (every member saw the same training rows).
        self._checks: list[_Check] = self._members[0]._checks if self._members else self._make_checks()
        self._plan_positions = {column.name: j for j, column in enumerate(self._plan)} if self._plan is not None else {}
        self._contribution_names = list(model.feature_names) or (
            [c.name for c in self._plan] if self._plan else list(self.feature_names)
        )
        self._single_row: SingleRow | None = None  # prepared on the first one-row request
        self._single_row_tried = False

    @property
    def can_explain(self) -> bool:
        """Whether per-feature contributions are available (LightGBM models, blends of LightGBM models)."""
        return self.model.explainable

    def _make_checks(self) -> list[_Check]:
        known: dict[str, set[Any]] = {}
        for column in self._plan or []:
            if column.codes is not None:
                known[column.name] = set(column.codes)
        checks = []
        for feature in self.schema.features:
            if feature.type == "categorical" and (feature.categories or feature.name in known):
                categories = known.get(feature.name, set()) | set(feature.categories or [])
                checks.append(_Check(feature.name, known=frozenset(categories)))
            elif feature.type == "numeric" and feature.min is not None and feature.max is not None:
                checks.append(_Check(feature.name, low=feature.min, high=feature.max))
        return checks

    # -- encoding ----------------------------------------------------------------------------------------------

    def encode(self, records: Sequence[Record], columns: Mapping[str, Sequence[Any]] | None = None) -> Any:
        """The model's input matrix for ``records`` (what the fitted preprocessor would produce).

        Args:
            records: Validated records.
            columns: The same records as columns (feature → values, ``None`` where missing), when the caller
                already has them (see :class:`keel.serving.contract.BatchAcceptor`).
        """
        import numpy as np

        if self._members:
            return self._blend_matrix(lambda member: member.encode(records, columns))
        plan = self._plan
        if plan is not None and len(records) == 1 and columns is None:
            record = records[0]
            row = [
                (NAN if (value := record.get(column.name)) is None else value)
                if column.codes is None
                else column.codes.get(record.get(column.name), NAN)
                for column in plan
            ]
            return np.array([row], dtype=np.float64)
        if columns is None:
            columns = {name: [record.get(name) for record in records] for name in self.feature_names}
        return self.encode_columns(columns, len(records))

    def encode_columns(self, columns: Mapping[str, Sequence[Any]], count: int) -> Any:
        """The model's input matrix for ``count`` records given as columns (an absent column is all missing)."""
        import numpy as np

        if self._members:
            return self._blend_matrix(lambda member: member.encode_columns(columns, count))
        plan = self._plan
        if plan is None:
            return self._encode_with_pipeline(columns, count)
        matrix = np.empty((count, len(plan)), dtype=np.float64)
        for j, column in enumerate(plan):
            values = columns.get(column.name)
            if values is None:
                matrix[:, j] = NAN
            elif column.codes is None:
                matrix[:, j] = values  # numpy turns None into NaN
            else:
                matrix[:, j] = list(map(column.codes.get, values, repeat(NAN)))
        return matrix

    def _blend_matrix(self, encode: Callable[[Predictor], Any]) -> BlendMatrix:
        parts: list[Any] = []
        for i, member in enumerate(self._members):
            source = self._shared[i]
            parts.append(parts[source] if source != i else encode(member))
        return BlendMatrix(tuple(parts))

    def _encode_with_pipeline(self, columns: Mapping[str, Sequence[Any]], count: int) -> Any:
        import pandas as pd

        from keel.domain.validation import coerce_features

        frame = pd.DataFrame(
            {name: list(columns.get(name) or [None] * count) for name in self.feature_names},
            columns=self.feature_names,
            index=range(count),
        )
        coerced = coerce_features(frame, self.schema, label="request")
        return self.model.transform(coerced.frame)

    # -- scoring -----------------------------------------------------------------------------------------------

    def raw(self, matrix: Any) -> np.ndarray:
        """Class probabilities (classification) or values (regression) for an encoded matrix."""
        import numpy as np

        if self._members:
            if all(p.model.is_booster for p in self._members):
                # Boosters' outputs are averaged as LightGBM gives them (one column for binary), then shaped once.
                outputs = [p._booster_output(part) for p, part in zip(self._members, matrix.parts, strict=True)]
                return self._shaped(self._average(outputs))
            return self._average([p.raw(part) for p, part in zip(self._members, matrix.parts, strict=True)])
        if self.model.is_booster:
            return self._shaped(self._booster_output(matrix))
        model = self.model
        if self.task == "regression":
            return np.asarray(model.estimator.predict(matrix), dtype=np.float64)
        return np.asarray(model.estimator.predict_proba(matrix))

    def _booster_output(self, matrix: Any) -> np.ndarray:
        import numpy as np

        # Small requests stay on one thread (no OpenMP start-up per call, the other cores serve other requests); a
        # large batch is worth every core.
        threads = self.threads if matrix.shape[0] < ALL_CORES_FROM_ROWS else 0
        single = self._single_row_scorer() if matrix.shape[0] == 1 else None
        if single is not None:
            return single.predict(matrix[0])
        return np.asarray(self.model.estimator.predict(matrix, num_threads=threads))

    def _shaped(self, output: np.ndarray) -> np.ndarray:
        """A booster's output as class probabilities (binary: one column becomes two) or float64 values."""
        import numpy as np

        if self.task == "regression":
            return output.astype(np.float64, copy=False)
        if output.ndim > 1:
            return output
        both = np.empty((len(output), 2))  # [1 - p, p], as np.column_stack builds it at a third of its cost
        np.subtract(1.0, output, out=both[:, 0])
        both[:, 1] = output
        return both

    def _average(self, outputs: list[np.ndarray]) -> np.ndarray:
        total = outputs[0] * self._weights[0]
        for weight, output in zip(self._weights[1:], outputs[1:], strict=True):
            total += weight * output
        return total

    def contributions(self, matrix: Any) -> np.ndarray:
        """LightGBM's contributions for an encoded matrix (a blend's: its members' added with the weights)."""
        import numpy as np

        if self._members:
            return self._average([p.contributions(part) for p, part in zip(self._members, matrix.parts, strict=True)])
        return np.asarray(self.model.estimator.predict(matrix, pred_contrib=True, num_threads=self.threads))

    def _single_row_scorer(self) -> SingleRow | None:
        """LightGBM's prepared single-row prediction for this booster (same answer as ``Booster.predict``)."""
        if not self._single_row_tried:
            self._single_row = single_row(self.model.estimator, threads=self.threads)
            self._single_row_tried = True
        return self._single_row

    def predict(
        self,
        records: Sequence[Record],
        *,
        columns: Mapping[str, Sequence[Any]] | None = None,
        explain: bool = False,
        top: int = DEFAULT_TOP_CONTRIBUTIONS,
    ) -> list[dict[str, Any]]:
        """Predict every record.

        Args:
            records: Validated records (feature name → value; missing or ``None`` for a missing value).
            columns: The records as columns, when the caller has them (saves reading each record again).
            explain: Add the ``top`` largest feature contributions of each record (LightGBM models).
            top: How many contributions to report.

        Returns:
            One dict per record: ``label`` and ``probabilities`` (classification) or ``value`` (regression),
            ``warnings`` (values outside what the model saw in training), ``ids`` when the schema has id columns,
            and ``explanation`` when asked for.
        """
        matrix = self.encode(records, columns)
        output = self.raw(matrix)
        results: list[dict[str, Any]]
        if self.task == "regression":
            results = [{"value": value, "warnings": []} for value in output.tolist()]
        else:
            classes, keys = self.classes, self.class_keys
            labels = [classes[b] for b in output.argmax(axis=1).tolist()]
            rows = output.tolist()
            if len(keys) == 2:
                first, second = keys
                results = [
                    {"label": label, "probabilities": {first: p, second: q}, "warnings": []}
                    for label, (p, q) in zip(labels, rows, strict=True)
                ]
            else:
                results = [
                    {"label": label, "probabilities": dict(zip(keys, row, strict=True)), "warnings": []}
                    for label, row in zip(labels, rows, strict=True)
                ]
        for i, found in self.warnings(records, matrix).items():
            results[i]["warnings"] = found
        if self.id_names:
            for record, result in zip(records, results, strict=True):
                result["ids"] = {name: record.get(name) for name in self.id_names}
        if explain and self.can_explain:
            for result, explanation in zip(results, self.explain(records, matrix, output, top), strict=True):
                result["explanation"] = explanation
        return results

    def predict_columns(
        self,
        columns: Mapping[str, Sequence[Any]],
        count: int,
        *,
        explain: bool = False,
        top: int = DEFAULT_TOP_CONTRIBUTIONS,
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Predict ``count`` records sent as columns, and answer in columns.

        Args:
            columns: Validated columns (feature → one value per record; an absent optional column is all missing).
            count: Records in every column.
            explain: Add each record's ``top`` largest feature contributions (LightGBM models).
            top: How many contributions to report.

        Returns:
            The predictions: ``label`` (one per record) and ``probabilities`` (class → one per record) for a
            classifier, ``value`` for a regressor, ``ids`` (id column → values) when the schema has id columns and
            ``explanations`` (one per record) when asked for; and the warnings, each naming its ``record`` (index),
            ``field`` and ``problem``, in record order.
        """
        matrix = self.encode_columns(columns, count)
        output = self.raw(matrix)
        predictions: dict[str, Any]
        if self.task == "regression":
            predictions = {"value": output.tolist()}
        else:
            classes = self.classes
            predictions = {
                "label": [classes[b] for b in output.argmax(axis=1).tolist()],
                "probabilities": {key: output[:, j].tolist() for j, key in enumerate(self.class_keys)},
            }
        if self.id_names:
            predictions["ids"] = {name: list(columns.get(name) or [None] * count) for name in self.id_names}

        def value_of(i: int, name: str) -> Any:
            return columns[name][i] if name in columns else None

        if explain and self.can_explain:
            predictions["explanations"] = self._explain(count, value_of, matrix, output, top)
        found = self._warnings(count, value_of, matrix)
        warnings = [{"record": i, **warning} for i in sorted(found) for warning in found[i]]
        return predictions, warnings

    def warnings(self, records: Sequence[Record], matrix: Any = None) -> dict[int, list[dict[str, str]]]:
        """Per record index, the fields whose value lies outside the training data (unseen category, range).

        With the compiled plan's ``matrix``, only the rows it flags are looked at (a missing category code, a
        number outside the range), so a large batch of ordinary records costs a few vector comparisons.
        """
        return self._warnings(len(records), lambda i, name: records[i].get(name), matrix)

    def _warnings(
        self, count: int, value_of: Callable[[int, str], Any], matrix: Any
    ) -> dict[int, list[dict[str, str]]]:
        found: dict[int, list[dict[str, str]]] = {}
        every_row = count < VECTOR_CHECKS_FROM_ROWS  # a few records: looking at each beats numpy's per-call cost
        for check in self._checks:
            name = check.name
            rows = range(count) if every_row else self._flagged_rows(check, matrix, count)
            if check.known is not None:
                known = check.known
                for i in rows:
                    value = value_of(i, name)
                    if value is not None and value not in known:
                        found.setdefault(i, []).append(
                            {
                                "field": name,
                                "problem": f"category {value!r} was not seen in training; it was scored as missing",
                            }
                        )
            else:
                low, high = check.low, check.high
                assert low is not None  # noqa: S101 - numeric checks always have both bounds
                assert high is not None  # noqa: S101
                for i in rows:
                    value = value_of(i, name)
                    if value is None or low <= value <= high:
                        continue
                    side, bound = (
                        ("below the training minimum", low) if value < low else ("above the training maximum", high)
                    )
                    found.setdefault(i, []).append(
                        {
                            "field": name,
                            "problem": f"{_number(value)} is {side} {_number(bound)}; the prediction may be poor",
                        }
                    )
        return found

    def _flagged_rows(self, check: _Check, matrix: Any, count: int) -> Sequence[int]:
        """Rows that may break ``check``: every row, or those the compiled matrix flags."""
        import numpy as np

        if self._members and isinstance(matrix, BlendMatrix):
            return self._members[0]._flagged_rows(check, matrix.parts[0], count)
        position = self._plan_positions.get(check.name)
        if count < VECTOR_CHECKS_FROM_ROWS or matrix is None or position is None or not isinstance(matrix, np.ndarray):
            return range(count)  # a few records: looking at each is cheaper than numpy's per-call overhead
        column = matrix[:, position]
        if check.known is not None:
            return np.flatnonzero(np.isnan(column)).tolist()  # unseen (or missing) categories have no code
        assert check.low is not None  # noqa: S101 - numeric checks always have both bounds
        assert check.high is not None  # noqa: S101
        return np.flatnonzero((column < check.low) | (column > check.high)).tolist()

    def explain(self, records: Sequence[Record], matrix: Any, output: np.ndarray, top: int) -> list[dict[str, Any]]:
        """The ``top`` largest feature contributions (LightGBM's SHAP values, in raw-score units) of each record.

        For a multiclass model the contributions are those towards the predicted class.
        """
        return self._explain(len(records), lambda i, name: records[i].get(name), matrix, output, top)

    def _explain(
        self, count: int, value_of: Callable[[int, str], Any], matrix: Any, output: np.ndarray, top: int
    ) -> list[dict[str, Any]]:
        import numpy as np

        contributions = self.contributions(matrix)
        width = len(self._contribution_names) + 1
        if self.task == "multiclass":
            per_class = contributions.reshape(count, len(self.classes), width)
            contributions = per_class[np.arange(count), output.argmax(axis=1)]
        unit = "log-odds" if self.task != "regression" else "target units"
        if self.task == "regression" and self.model.raw_link == "log":
            unit = "log of the predicted value"
        names = self._contribution_names
        explanations = []
        for i, row in enumerate(contributions):
            values = row[:-1]
            order = np.argsort(-np.abs(values), kind="stable")[:top]
            explanations.append(
                {
                    "base_value": float(row[-1]),
                    "unit": unit,
                    "contributions": [
                        {"feature": names[k], "value": value_of(i, names[k]), "contribution": float(values[k])}
                        for k in order.tolist()
                    ],
                }
            )
        return explanations


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
