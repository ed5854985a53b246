"""Out-of-fold scoring for `estimator: auto`: which rows each fold fits on and predicts, and when it is used."""

from __future__ import annotations

import numpy as np
import pytest

from keel.domain.folds import (
    OOF_MAX_SHARE,
    OOF_MAX_VALID_ROWS,
    OOF_TINY_MAX_SHARE,
    OOF_TINY_VALID_ROWS,
    dealt_folds,
    mean_rounds,
    missing_classes,
    out_of_fold_reason,
    time_ordered_folds,
)


def test_time_ordered_folds_fit_only_on_rows_before_the_block_they_predict() -> None:
    rng = np.random.default_rng(0)
    times = rng.permutation(600)  # rows in file order, not in time order
    folds = time_ordered_folds(times, 5)
    assert folds.kind == "time-ordered"
    assert len(folds.splits) == 5
    for fit, scored in folds.splits:
        assert times[fit].max() < times[scored].min(), "a fold never sees a later row than one it predicts"
    sizes = [len(scored) for _, scored in folds.splits]
    assert sizes == [100] * 5, "equal blocks of time"
    assert [len(fit) for fit, _ in folds.splits] == [100, 200, 300, 400, 500], "an expanding window"
    earliest = set(np.flatnonzero(times < 100).tolist())
    assert earliest.isdisjoint(folds.scored.tolist()), "the first block of time is only ever fitted on"
    assert len(folds.scored) == 500
    assert folds.rows == 600
    assert folds.fitted_rows == 1500
    assert "5 time-ordered folds" in folds.describe()
    assert "500 of them predicted" in folds.describe()


def test_time_ordered_folds_keep_rows_of_one_moment_together() -> None:
    times = np.repeat(np.array(["2021", "2022", "2023", "2024"], dtype=object), [50, 60, 70, 80])
    folds = time_ordered_folds(times, 5)
    assert len(folds.splits) == 3, "four seasons make three forward folds, whatever k asks"
    for fit, scored in folds.splits:
        assert set(times[fit].tolist()).isdisjoint(times[scored].tolist())
    with pytest.raises(ValueError, match="two distinct times"):
        time_ordered_folds(np.zeros(10), 5)


def test_dealt_folds_stratify_cover_every_row_once_and_follow_the_seed() -> None:
    labels = np.array([0] * 90 + [1] * 30 + [2] * 7)
    folds = dealt_folds(len(labels), labels, 5, seed=1)
    assert folds.kind == "stratified"
    scored = np.concatenate([s for _, s in folds.splits])
    assert sorted(scored.tolist()) == list(range(len(labels))), "every row is predicted exactly once"
    for fit, scored_rows in folds.splits:
        assert set(fit.tolist()).isdisjoint(scored_rows.tolist())
        counts = np.bincount(labels[scored_rows], minlength=3)
        assert counts.tolist()[:2] == [18, 6], "each class spread evenly"
        assert counts[2] in (1, 2)
    again = dealt_folds(len(labels), labels, 5, seed=1)
    other = dealt_folds(len(labels), labels, 5, seed=2)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds.splits, again.splits, strict=True))
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(folds.splits, other.splits, strict=True))
    assert missing_classes(folds, labels) == []


def test_dealt_folds_spread_the_weight_of_each_class_not_only_its_count() -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, size=400)
    weight = np.where(rng.random(400) < 0.05, 50.0, 1.0)  # a few rows weigh fifty times more
    folds = dealt_folds(len(labels), labels, 5, seed=0, weight=weight)
    for c in (0, 1):
        totals = [weight[s][labels[s] == c].sum() for _, s in folds.splits]
        assert max(totals) - min(totals) <= 50.0, f"class {c}: fold weights {totals}"
    plain = dealt_folds(len(labels), labels, 5, seed=0)
    spread = [max(t) - min(t) for t in ([weight[s].sum() for _, s in plain.splits],)]
    assert spread[0] > 50.0, "without the weights the heavy rows bunch up (the test would prove nothing otherwise)"


def test_dealt_folds_for_regression_shuffle_all_rows_as_one_group() -> None:
    folds = dealt_folds(103, None, 5, seed=0)
    assert folds.kind == "shuffled"
    assert sorted(len(s) for _, s in folds.splits) == [20, 20, 21, 21, 21]
    assert sorted(folds.scored.tolist()) == list(range(103))


def test_a_class_some_fold_cannot_fit_on_is_named() -> None:
    labels = np.array([0] * 20 + [1] * 20 + [2])
    assert missing_classes(dealt_folds(len(labels), labels, 5, seed=0), labels) == [2]
    times = np.arange(41)
    assert 2 in missing_classes(time_ordered_folds(times, 5), np.array([1] * 20 + [0] * 20 + [2]))


def test_out_of_fold_only_for_a_small_validation_part_and_an_affordable_first_candidate() -> None:
    assert out_of_fold_reason(77, 19.0, 300.0) == ""
    assert "enough to choose on" in out_of_fold_reason(OOF_MAX_VALID_ROWS, 1.0, 300.0)
    expensive = out_of_fold_reason(OOF_TINY_VALID_ROWS, OOF_MAX_SHARE * 300.0 + 1, 300.0)
    assert "over 10% of the 300 s budget" in expensive
    assert mean_rounds([100, None, 200]) == 150
    assert mean_rounds([None, None]) is None


def test_a_tiny_validation_part_is_scored_out_of_fold_even_when_a_busy_machine_slows_the_first_fit() -> None:
    # 76 validation rows: the first fit took 3 s on an idle machine (13 s over the folds) and 11 s on a busy one
    # (49 s over the folds); both must score out of fold, or the load decides how candidates are ranked.
    assert out_of_fold_reason(76, 13.0, 300.0) == ""
    assert out_of_fold_reason(76, 49.0, 300.0) == ""
    assert out_of_fold_reason(OOF_TINY_VALID_ROWS - 1, OOF_TINY_MAX_SHARE * 300.0, 300.0) == ""
    # ... but not when the folds would leave too little of the budget for the other candidates ...
    assert "over 50% of the 300 s budget" in out_of_fold_reason(76, OOF_TINY_MAX_SHARE * 300.0 + 1, 300.0)
    # ... and a validation part of a thousand rows keeps the stricter share.
    assert "over 10% of the 300 s budget" in out_of_fold_reason(1000, 49.0, 300.0)
