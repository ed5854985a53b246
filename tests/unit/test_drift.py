"""Drift maths: PSI, reference buckets, unseen categories, missing shares and the threshold."""

from __future__ import annotations

import math

import numpy as np
import pytest

from keel.domain.drift import (
    MISSING,
    OTHER,
    DriftReference,
    categorical_reference,
    compare,
    drift_report,
    numeric_reference,
    psi,
)
from keel.domain.schema import ColumnSchema, FeatureSchema, TargetSchema


def test_psi_is_zero_for_identical_shares_and_grows_with_the_shift() -> None:
    reference = [0.25, 0.25, 0.25, 0.25]
    assert psi(reference, reference) == pytest.approx(0.0)
    small = psi(reference, [0.3, 0.2, 0.25, 0.25])
    large = psi(reference, [0.7, 0.1, 0.1, 0.1])
    assert 0 < small < 0.1 < 0.2 < large
    # The textbook value: sum of (c - r) * ln(c / r).
    expected = sum((c - r) * math.log(c / r) for r, c in zip(reference, [0.7, 0.1, 0.1, 0.1], strict=True))
    assert large == pytest.approx(expected, rel=1e-3)


def test_psi_of_an_empty_bucket_is_large_but_finite() -> None:
    assert math.isfinite(psi([0.5, 0.5], [1.0, 0.0]))
    assert psi([0.5, 0.5], [1.0, 0.0]) > 1


def test_psi_refuses_different_buckets() -> None:
    with pytest.raises(ValueError, match="same buckets"):
        psi([0.5, 0.5], [1.0])


def test_numeric_reference_bins_at_deciles_with_a_missing_bucket() -> None:
    values = np.concatenate([np.arange(1000, dtype=float), [np.nan] * 100])
    reference = numeric_reference(values)
    assert len(reference.edges or []) == 9
    assert len(reference.shares) == 11  # ten bins and (missing)
    assert reference.missing_share == pytest.approx(100 / 1100)
    assert sum(reference.shares) == pytest.approx(1.0)
    assert all(share == pytest.approx(100 / 1100, abs=0.002) for share in reference.shares[:-1])
    assert reference.labels[-1] == MISSING


def test_a_binary_column_gets_two_buckets() -> None:
    reference = numeric_reference(np.array([0.0] * 70 + [1.0] * 30))
    assert reference.shares[:-1] == pytest.approx([0.7, 0.3])


def test_categorical_reference_keeps_the_top_categories_and_other() -> None:
    values = ["a"] * 50 + ["b"] * 30 + ["c"] * 15 + ["d"] * 5 + [None] * 10
    reference = categorical_reference(values, max_categories=2)
    assert reference.categories == ["a", "b"]
    assert reference.known == ["a", "b", "c", "d"]
    assert reference.labels == ["a", "b", OTHER, MISSING]
    assert reference.shares == pytest.approx([50 / 110, 30 / 110, 20 / 110, 10 / 110])


def test_unseen_categories_are_counted_apart_from_rare_known_ones() -> None:
    reference = categorical_reference(["a"] * 80 + ["b"] * 19 + ["rare"], max_categories=2)
    drift = compare(reference, ["a"] * 50 + ["rare"] * 10 + ["new"] * 40, name="colour")
    assert drift.unseen_current == pytest.approx(0.4)
    assert drift.current == pytest.approx([0.5, 0.0, 0.5, 0.0])
    assert drift.drifting


def test_a_rise_in_missing_values_is_drift() -> None:
    reference = numeric_reference(np.arange(100, dtype=float))
    drift = compare(reference, [np.nan] * 60 + list(range(40)), name="x")
    assert drift.missing_reference == 0.0
    assert drift.missing_current == pytest.approx(0.6)
    assert drift.drifting


def test_the_threshold_decides_what_drifts() -> None:
    rng = np.random.default_rng(0)
    reference = numeric_reference(rng.normal(size=5000))
    shifted = rng.normal(loc=0.4, size=5000)
    value = compare(reference, shifted, name="x").psi
    assert compare(reference, shifted, name="x", threshold=value + 0.01).drifting is False
    assert compare(reference, shifted, name="x", threshold=value - 0.01).drifting is True


def test_same_distribution_does_not_drift() -> None:
    rng = np.random.default_rng(1)
    reference = numeric_reference(rng.normal(size=5000))
    drift = compare(reference, rng.normal(size=2000), name="x")
    assert drift.psi < 0.05
    assert not drift.drifting


def test_an_empty_window_has_no_psi_and_does_not_drift() -> None:
    reference = numeric_reference(np.arange(10, dtype=float))
    drift = compare(reference, [], name="x")
    assert math.isnan(drift.psi)
    assert not drift.drifting


def test_drift_report_orders_features_and_compares_predictions() -> None:
    import pandas as pd

    from keel.domain.drift import build_reference

    rng = np.random.default_rng(2)
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=2000),
            "colour": rng.choice(["red", "green"], size=2000),
            "label": rng.choice(["yes", "no"], size=2000),
        }
    )
    schema = FeatureSchema(
        columns=[
            ColumnSchema(name="x", role="feature", type="numeric"),
            ColumnSchema(name="colour", role="feature", type="categorical"),
        ],
        target=TargetSchema(name="label", task="binary", classes=["no", "yes"]),
        rows=2000,
    )
    reference = build_reference(
        {"x": frame["x"].to_numpy(), "colour": frame["colour"].to_numpy()},
        schema,
        frame["label"].tolist(),
        scores=rng.uniform(size=2000),
    )
    stored = DriftReference.model_validate_json(reference.model_dump_json())
    report = drift_report(
        stored,
        {"x": rng.normal(loc=3, size=500), "colour": rng.choice(["red", "green"], size=500)},
        predictions=["yes"] * 500,
        scores=rng.uniform(size=500),
    )
    assert [f.name for f in report.features] == ["x", "colour"]
    assert report.drifting == ["x"]
    assert report.rows == 500
    assert report.prediction is not None
    assert report.prediction.drifting
    assert report.score is not None
    assert not report.score.drifting


def test_text_columns_are_watched_through_their_length() -> None:
    from keel.domain.drift import build_reference

    schema = FeatureSchema(
        columns=[ColumnSchema(name="review", role="feature", type="text")],
        target=TargetSchema(name="label", task="binary", classes=["no", "yes"]),
        rows=400,
    )
    texts = [("word " * (i % 20 + 1)).strip() for i in range(400)]
    reference = build_reference({"review": texts}, schema, ["yes"] * 400)
    assert reference.features["review"].measure == "length"
    same = drift_report(reference, {"review": texts[:200]})
    longer = drift_report(reference, {"review": [t * 5 for t in texts[:200]]})
    assert same.drifting == []
    assert longer.drifting == ["review"]
    assert longer.features[0].measure == "length"
    assert longer.rows == 200
