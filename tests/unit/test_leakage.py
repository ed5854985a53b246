"""The target-leakage guard: features reproducing the target are found and named; honest features are not."""

from __future__ import annotations

import numpy as np
import pandas as pd

from keel.config import DataConfig, SourceConfig
from keel.domain.leakage import find_leaks, leakage_message
from keel.domain.schema import infer_schema
from keel.domain.training import encode_target
from keel.domain.validation import coerce_features


def leaks_in(frame: pd.DataFrame, target: str, **data: object) -> list[tuple[str, ...]]:
    config = DataConfig(train=SourceConfig(path="x.csv"), target=target, **data)  # type: ignore[arg-type]
    schema = infer_schema(frame, config)
    features = coerce_features(frame, schema).frame
    return [leak.columns for leak in find_leaks(features, encode_target(frame[target], schema), schema)]


def rentals(rows: int = 2000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    hour = rng.integers(0, 24, rows)
    temp = rng.uniform(0, 1, rows)
    casual = rng.poisson(5 + 30 * temp)
    registered = rng.poisson(20 + 10 * (hour % 12) + 50 * temp)
    return pd.DataFrame(
        {"hr": hour, "temp": temp, "casual": casual, "registered": registered, "cnt": casual + registered}
    )


def test_two_columns_summing_to_the_target_are_a_leak() -> None:
    assert leaks_in(rentals(), "cnt") == [("casual", "registered")]


def test_honest_features_are_not_a_leak() -> None:
    assert leaks_in(rentals(), "cnt", ignore=["casual", "registered"]) == []


def test_a_copy_of_a_numeric_target_is_a_leak() -> None:
    frame = rentals().assign(cnt_again=lambda d: d["cnt"] * 2 + 1)
    assert ("cnt_again",) in leaks_in(frame, "cnt", ignore=["casual", "registered"])


def test_a_category_that_determines_the_class_is_a_leak() -> None:
    rng = np.random.default_rng(1)
    label = rng.choice(["yes", "no"], 1000)
    frame = pd.DataFrame(
        {"x": rng.normal(size=1000), "status": np.where(label == "yes", "closed-won", "closed-lost"), "y": label}
    )
    assert leaks_in(frame, "y") == [("status",)]


def test_a_score_that_separates_the_classes_is_a_leak_but_a_useful_one_is_not() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 1000)
    frame = pd.DataFrame(
        {"perfect": y + rng.uniform(0, 0.5, 1000), "useful": y + rng.normal(0, 1, 1000), "y": np.where(y, "a", "b")}
    )
    assert leaks_in(frame, "y") == [("perfect",)]


def test_the_message_names_the_columns_and_the_fix() -> None:
    frame = rentals()
    config = DataConfig(train=SourceConfig(path="x.csv"), target="cnt")
    schema = infer_schema(frame, config)
    leaks = find_leaks(coerce_features(frame, schema).frame, encode_target(frame["cnt"], schema), schema)
    message = leakage_message(leaks, "cnt")
    assert "'casual' + 'registered'" in message
    assert "data.ignore: [casual, registered]" in message
    assert "leakage_check: false" in message


def _near_leak_table(rows: int = 3000, seed: int = 0) -> pd.DataFrame:
    """`settled_days` alone reaches ROC AUC about 0.97 (it is recorded after the outcome); `income` is honest."""
    rng = np.random.default_rng(seed)
    default = rng.integers(0, 2, rows)
    return pd.DataFrame(
        {
            "income": rng.normal(50, 10, rows) - 3 * default,
            "settled_days": rng.normal(0, 1, rows) + 2.7 * default,
            "default": np.where(default == 1, "yes", "no"),
        }
    )


def near_leaks_in(frame: pd.DataFrame, target: str, known: frozenset[str] = frozenset()) -> list[str]:
    from keel.domain.leakage import find_near_leaks

    config = DataConfig(train=SourceConfig(path="x.csv"), target=target)
    schema = infer_schema(frame, config)
    features = coerce_features(frame, schema).frame
    found = find_near_leaks(features, encode_target(frame[target], schema), schema, known=known)
    return [f"{leak.columns[0]}: {leak.reason}" for leak in found]


def test_a_feature_that_alone_nearly_separates_the_classes_is_warned_about_not_refused() -> None:
    frame = _near_leak_table()
    assert leaks_in(frame, "default") == []  # below the refusal limit
    warned = near_leaks_in(frame, "default")
    assert len(warned) == 1
    assert warned[0].startswith("settled_days: alone it reaches ROC AUC 0.9")
    assert near_leaks_in(frame, "default", known=frozenset({"settled_days"})) == []


def test_a_category_that_fixes_the_class_for_most_rows_is_warned_about() -> None:
    rng = np.random.default_rng(1)
    outcome = rng.integers(0, 2, 4000)
    noisy = np.where(rng.uniform(size=4000) < 0.03, 1 - outcome, outcome)
    frame = pd.DataFrame(
        {
            "status": np.where(noisy == 1, "closed", "open"),
            "region": rng.choice(["n", "s", "e", "w"], 4000),
            "churned": np.where(outcome == 1, "yes", "no"),
        }
    )
    assert leaks_in(frame, "churned") == []
    warned = near_leaks_in(frame, "churned")
    assert [w.split(":")[0] for w in warned] == ["status"]


def test_honest_features_raise_no_warning() -> None:
    assert near_leaks_in(rentals().drop(columns=["casual", "registered"]), "cnt") == []
