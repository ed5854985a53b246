"""Explanations: LightGBM contributions mapped back to the columns a user sends."""

from __future__ import annotations

import numpy as np
import pytest

from keel.domain.explain import (
    aggregate_to_inputs,
    class_contributions,
    explain_records,
    input_mapping,
    mean_absolute_contributions,
)


def test_output_columns_map_back_to_their_input_column() -> None:
    outputs = ["age", "workclass_Private", "workclass_State-gov", "date_year", "age_band", "ratio"]
    inputs = ["age", "age_band", "workclass", "date"]
    assert input_mapping(outputs, inputs) == ["age", "workclass", "workclass", "date", "age_band", "ratio"]


def test_contributions_of_one_input_are_added_up() -> None:
    names, summed = aggregate_to_inputs(np.array([[1.0, 2.0, 3.0]]), ["a", "b", "a"])
    assert names == ["a", "b"]
    assert summed.tolist() == [[4.0, 2.0]]


def test_explain_records_lists_the_largest_contributions_and_adds_up_to_the_raw_score() -> None:
    contributions = np.array([[0.5, -2.0, 0.1, 0.2, -1.0]])  # four columns, then the expected value
    [explanation] = explain_records(
        contributions,
        ["a", "b", "c", "d"],
        [{"a": 1, "b": "x", "c": 3.5, "d": None}],
        [">50K"],
        rows=[7],
        unit="log-odds",
        top=2,
    )
    assert explanation.row == 7
    assert [c.feature for c in explanation.contributions] == ["b", "a"]
    assert explanation.contributions[0].value == "x"
    assert explanation.rest == pytest.approx(0.3)
    assert explanation.raw_score == pytest.approx(-1.0 + 0.5 - 2.0 + 0.1 + 0.2)
    assert explanation.to_dict()["contributions"][0] == {"feature": "b", "value": "x", "contribution": -2.0}


def test_multiclass_contributions_follow_the_chosen_class() -> None:
    # two rows, three classes, two columns + expected value per class
    row = np.arange(9, dtype=float)
    contributions = np.stack([row, row + 100])
    chosen = class_contributions(contributions, 3, np.array([2, 0]))
    assert chosen.tolist() == [[6.0, 7.0, 8.0], [100.0, 101.0, 102.0]]


def test_mean_absolute_contributions_are_sorted_largest_first() -> None:
    contributions = np.array([[1.0, -3.0, 0.0], [-1.0, 1.0, 0.0]])
    assert mean_absolute_contributions(contributions, ["a", "b"], 0) == {"b": 2.0, "a": 1.0}
