"""Sample weights on a user's survey table: headerless, `?` for missing, a weight column in the middle of the row.

The files are made here from the packaged Adult data. Its `fnlwgt` column is the census' own sampling weight; here
it is multiplied by 4 for high earners, as a survey that under-sampled them would weigh them, so weighting really
changes what the model learns.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.integration.serving_helpers import running_server

NAMES = [
    "age", "workclass", "survey_weight", "education", "education_num", "marital_status", "occupation",
    "relationship", "race", "sex", "capital_gain", "capital_loss", "hours_per_week", "native_country", "income",
]  # fmt: skip

CONFIG = """\
project: {{name: {name}}}
data:
  train:
    path: {folder}/train.csv
    csv: &csv {{header: false, names: [{names}], na_values: ["?"]}}
  test: {{path: {folder}/test.csv, csv: *csv}}
  target: income
  {weight}
  recode:
    income: {{"<=50K.": "<=50K", ">50K.": ">50K"}}
split: {{strategy: explicit, valid_size: 0.15, seed: 3}}
model:
  params: {{n_estimators: 40, learning_rate: 0.1, num_leaves: 15}}
evaluation:
  metrics: [accuracy, roc_auc, log_loss]
  promotion: {{metric: roc_auc}}
registry: {{workspace: {folder}/workspace}}
"""


def _lines(name: str, count: int) -> list[str]:
    raw = (resources.files("keel") / "data" / "adult" / name).read_bytes()
    lines = [line for line in gzip.decompress(raw).decode("utf-8").splitlines() if line.strip() and "|" not in line]
    return lines[:count]


def _reweighed(line: str) -> str:
    fields = line.split(", ")
    fields[2] = str(int(fields[2]) * (4 if fields[-1].startswith(">50K") else 1))
    return ", ".join(fields)


def _config(folder: Path, name: str, *, weighted: bool) -> Path:
    path = folder / f"{name}.yaml"
    weight = "weight: survey_weight" if weighted else "ignore: [survey_weight]"
    path.write_text(CONFIG.format(name=name, folder=folder, names=", ".join(NAMES), weight=weight))
    return path


@pytest.fixture(scope="module")
def survey(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The survey files, and one version trained with the weights and one without (same rows, same settings)."""
    from keel.application.train import train
    from keel.config import load_config

    folder = tmp_path_factory.mktemp("survey")
    train_lines = [_reweighed(line) for line in _lines("adult.data.gz", 4000)]
    test_lines = [_reweighed(line) for line in _lines("adult.test.gz", 2000)]
    assert any(", ?, " in line for line in train_lines)
    (folder / "train.csv").write_text("\n".join(train_lines) + "\n")
    (folder / "test.csv").write_text("\n".join(test_lines) + "\n")
    weighted = train(load_config([_config(folder, "survey", weighted=True)]))
    plain = train(load_config([_config(folder, "survey-plain", weighted=False)]))
    return {"folder": folder, "weighted": weighted, "plain": plain}


def _tidy_test(folder: Path) -> pd.DataFrame:
    return pd.read_csv(
        folder / "test.csv", header=None, names=NAMES, skipinitialspace=True, na_values=["?"], keep_default_na=False
    )


def _handle(folder: Path, ref: str) -> Any:
    from keel.application.models import load_version
    from keel.io.registry import Registry

    return load_version(Registry.open(folder / "workspace"), ref)


def test_weights_change_the_model_and_its_weighted_metrics_are_reported(survey: dict[str, Any]) -> None:
    from sklearn.metrics import log_loss, roc_auc_score

    folder, weighted, plain = survey["folder"], survey["weighted"], survey["plain"]
    document = weighted.to_dict()
    assert set(document["weighted_metrics"]) == set(document["metrics"]) == {"accuracy", "roc_auc", "log_loss"}
    assert set(document["weighted_baseline"]) == set(document["baseline"])
    assert plain.to_dict()["weighted_metrics"] == {}
    # The gate compares the weighted metric, named as such.
    assert document["promotion"]["metric"] == "weighted_roc_auc"
    assert document["promotion"]["value"] == document["weighted_metrics"]["roc_auc"]

    # The weighted metrics are scikit-learn's with the test rows' weights, on the version's own predictions.
    test = _tidy_test(folder)
    test["income"] = test["income"].str.rstrip(".")
    model = _handle(folder, "survey:1").loaded.model
    from keel.domain.validation import coerce_features

    proba = model.predict_proba(coerce_features(test, model.schema, label="test").frame)
    y = (test["income"] == ">50K").to_numpy()
    weight = test["survey_weight"].to_numpy(dtype=float)
    assert document["weighted_metrics"]["roc_auc"] == pytest.approx(roc_auc_score(y, proba[:, 1], sample_weight=weight))
    assert document["weighted_metrics"]["log_loss"] == pytest.approx(log_loss(y, proba, sample_weight=weight))
    assert document["metrics"]["log_loss"] == pytest.approx(log_loss(y, proba))
    # The weighted baseline predicts the training rows' weighted class shares.
    shares = model.schema.target.weighted_shares
    assert shares is not None
    assert shares[1] > model.schema.target.class_counts[1] / model.schema.rows + 0.1
    assert document["weighted_baseline"]["log_loss"] == pytest.approx(
        log_loss(y, np.tile(shares, (len(y), 1)), sample_weight=weight)
    )

    # High earners weigh four times more: the weighted model predicts them more often, and scores better weighted.
    plain_model = _handle(folder, "survey-plain:1").loaded.model
    plain_proba = plain_model.predict_proba(coerce_features(test, plain_model.schema, label="test").frame)
    assert proba[:, 1].mean() > plain_proba[:, 1].mean() + 0.05
    assert document["weighted_metrics"]["log_loss"] < log_loss(y, plain_proba, sample_weight=weight)

    # The weight is never a feature: not in the schema's features, the model's inputs or the drift reference.
    assert "survey_weight" not in model.schema.feature_names
    assert model.schema.weight_name == "survey_weight"
    assert not any("survey_weight" in name for name in model.feature_names)
    insights = json.loads((_handle(folder, "survey:1").loaded.directory / "insights.json").read_text())
    assert "survey_weight" not in json.dumps(insights.get("global_contributions", {}))
    stored = json.loads((_handle(folder, "survey:1").loaded.directory / "metrics.json").read_text())
    assert stored["test"]["weighted_metrics"] == document["weighted_metrics"]
    report = (_handle(folder, "survey:1").loaded.directory / "report.html").read_text()
    assert "weighted_roc_auc" in report
    assert "survey_weight" in report


def test_predict_and_evaluate_read_the_weight_column_and_ignore_it_for_scoring(
    survey: dict[str, Any], tmp_path: Path
) -> None:
    from keel.application.evaluate import evaluate_file
    from keel.application.predict import predict_file

    folder, weighted = survey["folder"], survey["weighted"]
    handle = _handle(folder, "survey:1")
    # The raw headerless file, weight column and all, is scored; the weight is carried like any non-feature column.
    predict_file(handle, folder / "test.csv", tmp_path / "scored.csv")
    scored = pd.read_csv(tmp_path / "scored.csv")
    assert len(scored) == 2000
    assert scored["survey_weight"].tolist() == _tidy_test(folder)["survey_weight"].tolist()
    # The same rows without the column score the same.
    tidy = _tidy_test(folder).drop(columns="survey_weight")
    tidy.to_csv(tmp_path / "unweighted.csv", index=False)
    predict_file(handle, tmp_path / "unweighted.csv", tmp_path / "scored_unweighted.csv")
    again = pd.read_csv(tmp_path / "scored_unweighted.csv")
    np.testing.assert_array_equal(again["probability_>50K"], scored["probability_>50K"])

    # keel evaluate reproduces training's weighted metrics from the weight column of the file...
    evaluation, _ = evaluate_file(handle, folder / "test.csv")
    assert evaluation.weighted_metrics == pytest.approx(weighted.evaluation.weighted_metrics)
    assert evaluation.weighted_baseline == pytest.approx(weighted.evaluation.weighted_baseline)
    # ...and reports none for a file without it.
    unweighted, _ = evaluate_file(handle, tmp_path / "unweighted.csv")
    assert unweighted.weighted_metrics == {}
    assert unweighted.metrics == pytest.approx(weighted.evaluation.metrics)


def _keel(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "keel", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_bad_weights_are_refused_before_fitting_naming_file_column_and_counts(
    survey: dict[str, Any], tmp_path: Path
) -> None:
    folder = survey["folder"]
    lines = (folder / "train.csv").read_text().splitlines()
    for position, value in ((10, "-2"), (500, "?"), (2001, "lots")):
        fields = lines[position].split(", ")
        fields[2] = value
        lines[position] = ", ".join(fields)
    (tmp_path / "train.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "test.csv").write_text((folder / "test.csv").read_text())
    config = _config(tmp_path, "bad", weighted=True)
    result = _keel("train", str(config), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    message = " ".join(result.stderr.split())
    assert f"(from {tmp_path}/train.csv): the weight column 'survey_weight' (data.weight) has" in message
    assert "1 missing, 1 not numbers, 1 negative" in message
    assert "Training" not in result.stderr  # refused before fitting


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.weight=income", "`weight` 'income' is the target"),
        ("data.ignore=[survey_weight]", "the weight column 'survey_weight' cannot also be listed in `ignore`"),
        ("engine=dask", "is not supported with `engine: dask`"),
    ],
)
def test_weight_clashes_are_refused_by_the_cli_with_exit_code_2(
    survey: dict[str, Any], tmp_path: Path, override: str, message: str
) -> None:
    config = _config(survey["folder"], "survey", weighted=True)
    result = _keel("train", str(config), override, cwd=tmp_path)
    assert result.returncode == 2
    assert message in " ".join(result.stderr.split())
    shown = _keel("config", "show", str(config), override, cwd=tmp_path)
    assert shown.returncode == 2


@pytest.fixture
def served(survey: dict[str, Any], tmp_path: Path) -> Iterator[Any]:
    with running_server(survey["folder"] / "workspace", tmp_path / "serve.log", "--model", "survey", "--poll-interval",
                        "0") as server, server.client() as client:  # fmt: skip
        yield client


@pytest.mark.slow
def test_the_service_accepts_the_weight_column_and_ignores_it(served: Any, survey: dict[str, Any]) -> None:
    test = _tidy_test(survey["folder"]).drop(columns="income").head(5)
    records = [{k: (None if pd.isna(v) else v) for k, v in row.items()} for row in test.to_dict(orient="records")]
    records = [{k: v for k, v in record.items() if v is not None} for record in records]
    with_weight = served.post("/v1/predict", json={"records": records})
    assert with_weight.status_code == 200, with_weight.text
    without = served.post(
        "/v1/predict", json={"records": [{k: v for k, v in r.items() if k != "survey_weight"} for r in records]}
    )
    assert without.status_code == 200, without.text
    assert with_weight.json()["predictions"] == without.json()["predictions"]
    one = served.post("/v1/predict", json=records[0])
    assert one.status_code == 200
    assert one.json()["probabilities"] == with_weight.json()["predictions"][0]["probabilities"]
    columns = {name: [r.get(name) for r in records] for name in records[0]}
    assert served.post("/v1/predict", json={"columns": columns}).status_code == 200
    refused = served.post("/v1/predict", json={**records[0], "not_a_column": 1})
    assert refused.status_code == 422


@pytest.mark.slow
def test_auto_fits_every_candidate_weighted_and_ranks_them_on_the_weighted_validation_score(
    survey: dict[str, Any],
) -> None:
    from keel.application.automl import fit_auto, output_score, validation_output
    from keel.application.prepare import prepare
    from keel.application.progress import SilentReporter
    from keel.config import load_config

    overrides = ["~model.params", "model.estimator=auto", "model.time_budget=120"]
    loaded = load_config([_config(survey["folder"], "survey", weighted=True)], overrides)
    prepared = prepare(loaded, SilentReporter())
    assert set(prepared.weights) == {"train", "valid", "test"}
    assert len(prepared.weights["valid"]) == len(prepared.valid_x)
    model, report = fit_auto(
        loaded.config, prepared.schema, train_x=prepared.train_x, train_y=prepared.train_y,
        valid_x=prepared.valid_x, valid_y=prepared.valid_y, metric="log_loss", reporter=SilentReporter(),
        train_weight=prepared.weights["train"], valid_weight=prepared.weights["valid"], refit=False,
    )  # fmt: skip
    chosen = next(entry for entry in report.leaderboard if entry["chosen"])
    output = validation_output(model, prepared.valid_x)
    weighted = output_score(model, output, prepared.valid_y, "log_loss", weight=prepared.weights["valid"])
    assert chosen["valid_score"] == pytest.approx(weighted)
    assert chosen["valid_score"] != pytest.approx(output_score(model, output, prepared.valid_y, "log_loss"), rel=1e-3)
    # Fitted with the weights: high earners weigh four times more, so they are predicted more often than unweighted.
    positive = model.predict_proba(prepared.valid_x)[:, 1].mean()
    assert positive > (prepared.valid_y == 1).mean()


@pytest.mark.slow
def test_tune_fits_and_scores_its_trials_weighted(survey: dict[str, Any], tmp_path: Path) -> None:
    from keel.application.tune import tune
    from keel.config import load_config
    from keel.io.registry import Registry

    folder = survey["folder"]
    loaded = load_config([_config(folder, "survey", weighted=True)], ["model.params.n_jobs=1"])
    result = tune(loaded, trials=2, storage=f"sqlite:///{tmp_path}/optuna.db", output=tmp_path / "tuned.yaml")
    assert result.metric == "weighted_roc_auc"
    assert "validation weighted_roc_auc" in (tmp_path / "tuned.yaml").read_text()
    registry = Registry.open(folder / "workspace")
    runs = registry.client.search_runs(
        [registry.client.get_experiment_by_name("survey").experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{result.run_id}'",
    )
    assert len(runs) == 2
    assert all("valid_weighted_roc_auc" in run.data.metrics for run in runs)
    assert max(run.data.metrics["valid_weighted_roc_auc"] for run in runs) == pytest.approx(result.best_value)


def test_the_mlflow_model_ignores_the_weight_column(
    survey: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    folder = survey["folder"]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'workspace' / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model("models:/survey@champion")
    rows = _tidy_test(folder).drop(columns="income").head(50)
    with_weight = model.predict(rows)
    without = model.predict(rows.drop(columns="survey_weight"))
    pd.testing.assert_frame_equal(with_weight, without)
    assert "survey_weight" not in with_weight.columns
