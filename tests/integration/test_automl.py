"""`model.estimator: auto`: candidates ranked on the validation part, the best one stored and served like any other."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from keel.application.models import load_version
from keel.application.train import train
from keel.config import load_config
from keel.errors import ConfigError
from keel.io.registry import Registry

from .conftest import ProjectFactory, synthetic

pytestmark = pytest.mark.timeout(900)

_AUTO = {"estimator": "auto", "params": {"n_jobs": 1}, "time_budget": 120}


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
        boards.append([(row["candidate"], row["valid_score"], row["chosen"]) for row in result.leaderboard])
        predictions.append(result.evaluation.metrics["roc_auc"])
    assert boards[0] == boards[1], "validation scores and the choice do not depend on the test rows"
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
