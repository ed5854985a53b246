"""`model.estimator: auto`: candidates ranked on the validation part, the best one stored and served like any other."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from keel.application.models import load_version
from keel.application.train import train
from keel.config import load_config
from keel.errors import ConfigError, KeelError
from keel.io.registry import Registry

from .conftest import ProjectFactory, synthetic

pytestmark = pytest.mark.timeout(900)

_AUTO = {"estimator": "auto", "params": {"n_jobs": 1}, "time_budget": 120}


@pytest.fixture
def quick_portfolio(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the three quick candidates and no follow-ups: each fits in well under the budget whatever the machine's
    load, so two runs fit the same candidates (a test comparing them cannot depend on timing) and stay fast."""
    import keel.application.automl as automl

    every = automl.candidates
    monkeypatch.setattr(automl, "candidates", lambda *args, **kwargs: every(*args, **kwargs)[:3])
    monkeypatch.setattr(automl, "FOLLOW_UP_ROUNDS", 0)


@pytest.mark.usefixtures("quick_portfolio")
def test_auto_ranks_candidates_on_validation_and_stores_the_best(
    make_project: ProjectFactory, module_workspace: Path
) -> None:
    config = make_project(synthetic("binary", rows=800), "auto-binary", model=_AUTO)
    result = train(load_config([config]))
    board = result.leaderboard
    assert [row["candidate"] for row in board][:3] == ["lightgbm", "logistic_regression", "hist_gradient_boosting"]
    fitted = [row for row in board if row["valid_score"] is not None]
    chosen = [row for row in board if row["chosen"]]
    assert len(chosen) == 1
    assert chosen[0]["valid_score"] == max(row["valid_score"] for row in fitted)
    assert "refitted on the training and validation rows" in chosen[0]["note"]
    assert any(note.startswith("auto: refitted ") for note in result.notes)
    assert all(row["fit_seconds"] > 0 for row in fitted)
    assert result.evaluation.metrics["roc_auc"] > 0.9
    # The version is the chosen estimator, stored and loaded as if it had been named in the config.
    handle = load_version(Registry.open(module_workspace), "auto-binary@champion")
    assert handle.loaded.model.estimator_name == chosen[0]["estimator"]
    assert handle.loaded.manifest["leaderboard"] == board
    report = (handle.loaded.directory / "report.html").read_text(encoding="utf-8")
    assert "Candidates (model.estimator: auto)" in report
    assert all(row["candidate"] in report for row in board)
    assert any("auto: chose" in note for note in result.notes)


@pytest.mark.usefixtures("quick_portfolio")
def test_the_test_rows_cannot_change_the_chosen_model(make_project: ProjectFactory, tmp_path: Path) -> None:
    frame = synthetic("binary", rows=700, seed=3)
    train_rows, test_rows = frame.iloc[:500], frame.iloc[500:].reset_index(drop=True)
    other_test = test_rows.copy()
    # Same columns, different rows and inverted labels: a model chosen on these would be a different one.
    other_test["x1"] = other_test["x1"].to_numpy()[::-1]
    other_test["label"] = np.where(other_test["label"] == "high", "low", "high")
    boards, predictions = [], []
    for name, test in [("auto-test-a", test_rows), ("auto-test-b", other_test)]:
        test_file = tmp_path / f"{name}-test.csv"
        test.to_csv(test_file, index=False)
        config = make_project(
            train_rows, name, model=_AUTO, split={"strategy": "explicit", "valid_size": 0.2, "seed": 1},
            data={"train": {"path": str(tmp_path / f"{name}.csv")}, "test": {"path": str(test_file)},
                  "target": "label", "id_columns": ["row_id"]},
        )  # fmt: skip
        result = train(load_config([config]))
        boards.append(
            [(row["candidate"], row["valid_score"], row["chosen"], row.get("members"), row["scoring"])
             for row in result.leaderboard]
        )  # fmt: skip
        predictions.append(result.evaluation.metrics["roc_auc"])
    assert boards[0] == boards[1], (
        "validation scores, the blend's weights and the choice do not depend on the test rows"
    )
    assert boards[0][-1][0] == "blend", "the blend was tried (weights fitted on the validation part)"
    assert boards[0][0][4].startswith("out of fold: 5 stratified folds over the 500 training and validation rows"), (
        "100 validation rows: scored out of fold over the training and validation rows, never the test rows"
    )
    assert predictions[0] > 0.8 > predictions[1], "the two test parts really differ"


def test_auto_needs_a_validation_part(make_project: ProjectFactory) -> None:
    config = make_project(synthetic("binary"), "auto-no-valid", model=_AUTO, split={"valid_size": 0})
    with pytest.raises(ConfigError, match="validation score"):
        load_config([config])


def test_auto_refuses_parameters_of_one_estimator(make_project: ProjectFactory) -> None:
    config = make_project(synthetic("binary"), "auto-params", model={"estimator": "auto", "params": {"num_leaves": 7}})
    with pytest.raises(ConfigError, match="num_leaves"):
        train(load_config([config]))


def test_tune_refuses_auto_before_reading_data(make_project: ProjectFactory, tmp_path: Path) -> None:
    from keel.application.tune import tune

    config = make_project(synthetic("binary"), "auto-tune", model=_AUTO)
    (tmp_path / "auto-tune.csv").unlink()  # the data is not even read
    with pytest.raises(ConfigError, match="picks among several"):
        tune(load_config([config]), trials=1)


def _complementary(rows: int, seed: int) -> pd.DataFrame:
    """A regression target with a smooth linear part (a linear model's strength, trees only approximate it in steps)
    and an interaction (a tree's strength, a linear model cannot express it): a blend beats either alone."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=rows), rng.uniform(0, 10, size=rows)
    colour = rng.choice(["red", "green", "blue"], size=rows)
    target = 4 * x1 + 6 * ((colour == "red") & (x2 > 5)) + rng.normal(scale=1.0, size=rows)
    return pd.DataFrame({"row_id": np.arange(rows), "x1": x1, "x2": x2, "colour": colour, "label": target})


@pytest.mark.slow
def test_a_winning_blend_is_stored_loaded_served_and_scored_like_one_model(
    make_project: ProjectFactory, module_workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import keel.application.automl as automl

    # The whole portfolio, without the follow-up rounds (their own test covers them): its blend already beats every
    # candidate on this table, and the rounds took two thirds of the run.
    monkeypatch.setattr(automl, "FOLLOW_UP_ROUNDS", 0)
    from keel.application.dask_predict import predict_dask
    from keel.application.evaluate import evaluate_file
    from keel.application.predict import predict_file
    from keel.domain.blend import BlendedModel

    from .serving_helpers import as_json_records, running_server

    config = make_project(_complementary(1200, seed=5), "auto-blend", model=_AUTO)
    result = train(load_config([config]))
    blend = result.leaderboard[-1]
    assert blend["candidate"] == "blend"
    assert blend["chosen"]
    singles = [row["valid_score"] for row in result.leaderboard[:-1] if row["valid_score"] is not None]
    assert blend["valid_score"] < min(singles), "kept only because it beats every candidate on validation (RMSE)"
    assert len(blend["members"]) >= 2
    assert sum(m["weight"] for m in blend["members"]) == pytest.approx(1.0)
    assert {m["candidate"] for m in blend["members"]} <= {row["candidate"] for row in result.leaderboard}

    handle = load_version(Registry.open(module_workspace), "auto-blend@champion")
    model = handle.loaded.model
    assert isinstance(model, BlendedModel)
    assert model.estimator_name == "blend"
    assert model.labels == [m["candidate"] for m in blend["members"]]
    assert "blend" in (handle.loaded.directory / "report.html").read_text(encoding="utf-8")

    fresh = _complementary(300, seed=6)
    fresh.drop(columns="label").to_parquet(tmp_path / "new.parquet", index=False)
    predict_file(handle, tmp_path / "new.parquet", tmp_path / "scored.parquet")
    scored = pd.read_parquet(tmp_path / "scored.parquet")
    # The weighted average of the members' own predictions, row for row.
    from keel.domain.validation import coerce_features

    features = coerce_features(fresh, model.schema).frame
    expected = sum(w * m.predict_value(features) for w, m in zip(model.weights, model.members, strict=True))
    np.testing.assert_allclose(scored["prediction"], expected, rtol=1e-9)
    fresh.to_parquet(tmp_path / "labelled.parquet", index=False)
    evaluation, _ = evaluate_file(handle, tmp_path / "labelled.parquet")
    assert evaluation.metrics["rmse"] < 1.5

    import mlflow

    # MLflow's loader goes through keel's own (hash-checked, no pickle): the same predictions.
    pyfunc = mlflow.pyfunc.load_model(str(handle.loaded.directory))
    np.testing.assert_allclose(pyfunc.predict(fresh.drop(columns="label"))["prediction"], expected, rtol=1e-9)
    # Explanations: the members' contributions, weighted, when every member is LightGBM (the portfolio usually
    # outbids the ridge for the smooth part); with a ridge member they are refused, saying why.
    from keel.application.insight_jobs import explain_file

    if all(m.estimator_name == "lightgbm" for m in model.members):
        assert model.explainable
        explained = explain_file(handle, tmp_path / "new.parquet", rows=None, top=5, plots=None)
        assert explained.explanations, "rows were explained"
        for explanation in explained.explanations:  # the explained prediction is the blend's
            assert explanation.prediction == pytest.approx(expected[explanation.row], rel=1e-9)
    else:
        assert "ridge" in model.labels
        assert not model.explainable
        with pytest.raises(KeelError, match=r"it is a blend of .*ridge \(no contributions\).*every member is LightGBM"):
            explain_file(handle, tmp_path / "new.parquet", rows=None, top=5, plots=None)

    dask = predict_dask(handle, tmp_path / "new.parquet", tmp_path / "dask", workers=1)
    assert dask.predicted == 300
    np.testing.assert_allclose(pd.read_parquet(tmp_path / "dask")["prediction"], expected, rtol=1e-9)

    records = as_json_records(fresh.head(20), ["x1", "x2", "colour"])
    with (
        running_server(module_workspace, tmp_path / "serve.log", "--model", "auto-blend@champion") as server,
        server.client() as client,
    ):
        batch = client.post("/v1/predict", json={"records": records})
        assert batch.status_code == 200, batch.text
        single = client.post("/v1/predict", json=records[0])
        assert single.status_code == 200, single.text
    values = [p["value"] for p in batch.json()["predictions"]]
    np.testing.assert_allclose(values, expected[:20], rtol=1e-9)
    assert single.json()["value"] == pytest.approx(expected[0], rel=1e-9)


_RENTALS = ["stamp", "shop", "year", "hour", "temperature", "weather", "rentals"]


def _rentals(hours: int, seed: int) -> pd.DataFrame:
    """Hourly counts over two years in a user's shape: demand grows by 80 % in the second year, on the same daily
    and weather pattern; the latest rows (the test part) are months the second year has not shown yet."""
    rng = np.random.default_rng(seed)
    stamp = np.arange(hours)
    year = (stamp >= hours // 2).astype(int)
    hour = stamp % 24
    day = stamp // 24
    season = np.sin(2 * np.pi * (day % 365) / 365)
    temperature = 15 + 10 * season + rng.normal(scale=2, size=hours)
    weather = rng.choice(["clear", "mist", "rain"], size=hours, p=[0.6, 0.3, 0.1])
    level = 2.5 + np.sin(np.pi * hour / 24) + 0.05 * temperature - np.where(weather == "rain", 0.8, 0.0)
    rentals = rng.poisson(np.exp(level + np.log(1.8) * year))
    frame = pd.DataFrame(
        {"stamp": stamp, "shop": "S" + (stamp % 7).astype(str), "year": year, "hour": hour,
         "temperature": temperature.round(1).astype(object), "weather": weather, "rentals": rentals}
    )  # fmt: skip
    frame.loc[rng.random(hours) < 0.03, "temperature"] = "?"
    return frame


def _rentals_project(tmp_path: Path, module_workspace: Path, name: str, budget: float, hours: int = 24 * 600) -> Path:
    import yaml

    data = tmp_path / f"{name}.csv"
    _rentals(hours, seed=11)[_RENTALS].to_csv(data, index=False, header=False)
    config = {
        "project": {"name": name},
        "data": {
            "train": {"path": str(data), "csv": {"header": False, "names": _RENTALS, "na_values": ["?"]}},
            "target": "rentals", "task": "regression", "id_columns": ["shop"], "ignore": ["stamp"],
        },
        "split": {"strategy": "chronological", "time_column": "stamp", "test_size": 0.25, "seed": 1},
        "model": {"estimator": "auto", "params": {"n_jobs": 1}, "time_budget": budget},
        "evaluation": {"metrics": ["rmse"], "promotion": {"metric": "rmse"}},
        "registry": {"workspace": str(module_workspace)},
    }  # fmt: skip
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.fixture
def trend_against_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """Of the candidates auto proposes, only LightGBM's defaults and the one keeping the time trend apart, and no
    follow-ups: the run ends when both are scored, not when the budget does. The candidates are auto's own, so the
    trend candidate must still be proposed for these columns."""
    import keel.application.automl as automl

    every = automl.candidates
    kept = {"lightgbm", "lightgbm poisson time trend alone"}

    def two(*args: Any, **kwargs: Any) -> list[Any]:
        found = [candidate for candidate in every(*args, **kwargs) if candidate.label in kept]
        assert {candidate.label for candidate in found} == kept, "auto proposes both for this table"
        return found

    monkeypatch.setattr(automl, "candidates", two)
    monkeypatch.setattr(automl, "FOLLOW_UP_ROUNDS", 0)


@pytest.mark.slow
@pytest.mark.usefixtures("trend_against_defaults")
def test_auto_keeps_a_feature_that_follows_time_apart_and_scores_it_forward_out_of_fold(
    tmp_path: Path, module_workspace: Path
) -> None:
    result = train(load_config([_rentals_project(tmp_path, module_workspace, "auto-rentals", budget=240)]))
    assert any("auto: year follow(s) stamp" in note for note in result.notes)
    board = {row["candidate"]: row for row in result.leaderboard}
    trend = board["lightgbm poisson time trend alone"]
    assert trend["valid_score"] is not None
    # Kept apart, the year shifts the log of the count: the forecast extrapolates the growth to the months the
    # second year has not shown, where LightGBM's defaults stay near the first year's level.
    assert trend["valid_score"] < 0.9 * board["lightgbm"]["valid_score"]
    # 1,080 validation rows: scored by forward validation over the training and validation hours instead.
    assert trend["scoring"].startswith("out of fold: 5 time-ordered folds")
    assert "over the 10,800 training and validation rows" in trend["scoring"]
    handle = load_version(Registry.open(module_workspace), "auto-rentals@champion")
    assert handle.loaded.manifest["leaderboard"] == result.leaderboard
    # LightGBM's defaults keep the same feature apart now (a count on a chronological split), and refit on the
    # latest rows: auto does at least as well as they do.
    assert result.evaluation.metrics["rmse"] < 1.02 * _defaults_rmse(tmp_path, module_workspace)


def _defaults_rmse(tmp_path: Path, module_workspace: Path) -> float:
    path = _rentals_project(tmp_path, module_workspace, "auto-rentals-defaults", budget=1)
    defaults = load_config([path], overrides=["model.estimator=lightgbm", "~model.time_budget"])
    return float(train(defaults).evaluation.metrics["rmse"])


@pytest.mark.slow
def test_the_time_the_portfolio_leaves_goes_to_follow_ups_of_the_best_lightgbm_candidate(
    make_project: ProjectFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    import keel.application.automl as automl

    every = automl.candidates
    monkeypatch.setattr(automl, "candidates", lambda *args, **kwargs: every(*args, **kwargs)[:2])
    monkeypatch.setattr(automl, "FOLLOW_UP_ROUNDS", 1)  # one round: the run ends with it, not with the budget
    # The run ends with the round: a budget no load can exhaust costs nothing and keeps the test off the clock.
    model = {**_AUTO, "time_budget": 3600}
    config = make_project(synthetic("binary", rows=800, seed=4), "auto-follow-ups", model=model)
    result = train(load_config([config]))
    labels = [row["candidate"] for row in result.leaderboard if row["candidate"] != "blend"]
    assert labels[:2] == ["lightgbm", "logistic_regression"]
    follow_ups = labels[2:]
    # Split seed 1: the reseeded copies are seeds 2 to 5 of the best (here the only) LightGBM candidate.
    assert follow_ups == ["lightgbm learning_rate=0.0333", *(f"lightgbm seed {seed}" for seed in range(2, 6))]
    assert all(row["valid_score"] is not None for row in result.leaderboard), "time was left for every one"


@pytest.mark.slow
def test_out_of_fold_a_short_budget_skips_or_stops_candidates_after_one_fold_and_never_cuts_one_short(
    tmp_path: Path, module_workspace: Path
) -> None:
    # 150 days: 2,700 training and validation rows, whose whole portfolio takes longer than the budget leaves it.
    path = _rentals_project(tmp_path, module_workspace, "auto-rentals-portfolio", budget=45, hours=24 * 150)
    result = train(load_config([path]))
    assert all(row["scoring"].startswith("out of fold: 5 time-ordered folds") for row in result.leaderboard)
    skipped = [row for row in result.leaderboard if row["valid_score"] is None]
    assert skipped, "the budget ended before the portfolio and its follow-ups"
    # A candidate whose folds would not all end in time is not started, or is stopped after its first fold: no
    # time goes to folds whose predictions are never scored.
    assert all(row["note"].startswith(("skipped: ", "stopped after its first fold: ")) for row in skipped)


def test_a_short_budget_skips_the_candidates_that_cannot_finish_and_says_why(
    tmp_path: Path, module_workspace: Path
) -> None:
    result = train(load_config([_rentals_project(tmp_path, module_workspace, "auto-rentals-short", budget=2)]))
    fitted = [row for row in result.leaderboard if row["valid_score"] is not None]
    skipped = [row for row in result.leaderboard if row["valid_score"] is None]
    assert fitted[0]["candidate"] == "lightgbm", "the first candidate always runs"
    assert skipped, "a 2 s budget cannot fit the whole portfolio"
    assert all(row["note"].startswith("skipped: ") and "(budget 2 s)" in row["note"] for row in skipped)
    assert sum(row["fit_seconds"] for row in fitted) < 2 + max(row["fit_seconds"] for row in fitted)


_ORDERS = ["order_id", "basket", "visits", "channel", "weight", "returned"]


@pytest.mark.usefixtures("quick_portfolio")
def test_a_small_validation_part_is_replaced_by_out_of_fold_scores_and_the_leaderboard_says_so(
    tmp_path: Path, module_workspace: Path
) -> None:
    import yaml

    rng = np.random.default_rng(8)
    rows = 500
    basket, visits = rng.gamma(2.0, 30.0, size=rows), rng.poisson(3, size=rows)
    channel = rng.choice(["web", "app", "shop"], size=rows, p=[0.5, 0.3, 0.2])
    chance = 1 / (1 + np.exp(-(0.02 * (basket - 60) - 0.3 * visits + np.where(channel == "web", 1.0, -0.5))))
    frame = pd.DataFrame(
        {"order_id": [f"O{i:05d}" for i in range(rows)], "basket": basket.round(2).astype(object), "visits": visits,
         "channel": channel, "weight": np.where(rng.random(rows) < 0.1, 3.0, 1.0),
         "returned": np.where(rng.random(rows) < chance, "yes", "no")}
    )  # fmt: skip
    frame.loc[rng.random(rows) < 0.05, "basket"] = "?"
    data = tmp_path / "orders.csv"
    frame[_ORDERS].to_csv(data, index=False, header=False)
    config = {
        "project": {"name": "auto-orders"},
        "data": {
            "train": {"path": str(data), "csv": {"header": False, "names": _ORDERS, "na_values": ["?"]}},
            "target": "returned", "id_columns": ["order_id"], "weight": "weight",
        },
        "split": {"test_size": 0.2, "valid_size": 0.15, "seed": 1},
        "model": {"estimator": "auto", "params": {"n_jobs": 1}, "time_budget": 60},
        "registry": {"workspace": str(module_workspace)},
    }  # fmt: skip
    path = tmp_path / "orders.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    result = train(load_config([path]))

    assert result.rows["valid"] == 60
    scoring = {row["scoring"] for row in result.leaderboard}
    assert scoring == {
        "out of fold: 5 stratified folds over the 400 training and validation rows, 400 of them predicted"
    }
    assert any("auto: scoring out of fold" in note and "only 60 rows" in note for note in result.notes)
    assert any("out-of-fold" in note and "auto: chose" in note for note in result.notes)
    chosen = next(row for row in result.leaderboard if row["chosen"])
    assert "refitted on the training and validation rows" in chosen["note"]
    handle = load_version(Registry.open(module_workspace), "auto-orders@champion")
    assert handle.loaded.manifest["leaderboard"] == result.leaderboard
    assert "Scoring: out of fold: 5 stratified folds" in (handle.loaded.directory / "report.html").read_text()


def test_out_of_fold_a_candidate_stops_after_its_first_fold_when_the_others_cannot_end_in_time(
    make_project: ProjectFactory,
) -> None:
    import time

    from keel.application.automl import _fit_folds
    from keel.application.prepare import prepare
    from keel.application.progress import SilentReporter
    from keel.config import ModelConfig
    from keel.domain.automl import Candidate
    from keel.domain.folds import dealt_folds

    loaded = load_config([make_project(synthetic("binary", rows=300), "auto-folds", model=_AUTO)])
    prepared = prepare(loaded, SilentReporter())
    assert prepared.valid_x is not None
    assert prepared.valid_y is not None
    x = pd.concat([prepared.train_x, prepared.valid_x], ignore_index=True)
    y = np.concatenate([prepared.train_y, prepared.valid_y])
    folds = dealt_folds(len(x), y, 5, seed=0)
    candidate = Candidate("lightgbm", ModelConfig(estimator="lightgbm", params={"n_jobs": 1}))
    config, schema = loaded.config, prepared.schema

    output, _model, _report, expected = _fit_folds(config, schema, candidate, folds, (x, y, None), [], time.monotonic())
    assert output is None, "no time left: the other four folds are not fitted"
    assert expected is not None
    assert expected > 0

    output, _model, report, expected = _fit_folds(
        config, schema, candidate, folds, (x, y, None), [], time.monotonic() + 600
    )
    assert expected is None
    assert output is not None
    assert output.shape == (len(x), 2), "every row predicted once, by the fold that did not fit on it"
    assert np.isfinite(output).all()
    assert np.allclose(output.sum(axis=1), 1.0)
    assert report.best_iteration is not None
