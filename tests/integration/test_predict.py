from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from keel.application.evaluate import evaluate_file
from keel.application.models import load_version
from keel.application.predict import predict_file
from keel.errors import DataError
from keel.io.registry import Registry


@pytest.fixture
def handle(adult_workspace: Path):  # type: ignore[no-untyped-def]
    return load_version(Registry.open(adult_workspace), "adult-income@champion")


def test_chunked_prediction_equals_one_pass_and_keeps_user_columns(handle, adult_rows, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rows = adult_rows.head(3000).copy()
    rows.insert(0, "customer", [f"c{i}" for i in range(len(rows))])
    source = tmp_path / "people.csv"
    rows.to_csv(source, index=False)
    whole = predict_file(handle, source, tmp_path / "whole.csv", chunk_rows=10_000)
    chunked = predict_file(handle, source, tmp_path / "chunked.parquet", chunk_rows=128)
    assert whole.predicted == chunked.predicted == 3000
    a = pd.read_csv(tmp_path / "whole.csv")
    b = pd.read_parquet(tmp_path / "chunked.parquet")
    assert a["customer"].tolist() == rows["customer"].tolist()
    assert b["customer"].tolist() == rows["customer"].tolist()
    assert a["income"].tolist() == rows["income"].tolist()
    np.testing.assert_allclose(a["probability_>50K"], b["probability_>50K"], atol=1e-12)
    assert set(a["prediction"]) <= {"<=50K", ">50K"}
    assert (a["prediction"] == rows["income"]).mean() > 0.85
    assert "age" not in a.columns  # features are not repeated


def test_invalid_rows_go_to_the_errors_file_with_the_reason(handle, adult_rows, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rows = adult_rows.head(50).copy()
    rows["age"] = rows["age"].astype(object)
    rows.loc[[5, 9], "age"] = ["forty", "n/a"]  # "n/a" is no missing-value token of the Adult files
    source = tmp_path / "input.csv"
    rows.to_csv(source, index=False)
    result = predict_file(handle, source, tmp_path / "out.csv")
    assert (result.rows, result.predicted, result.invalid) == (50, 48, 2)
    errors = pd.read_csv(result.errors, keep_default_na=False)
    assert errors["error"].tolist() == ["age: not a number", "age: not a number"]
    assert errors["age"].tolist() == ["forty", "n/a"]
    assert errors["row"].tolist() == [5, 9]


def test_parquet_folder_of_parts_is_scored(handle, adult_rows, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "parts"
    folder.mkdir()
    for i in range(3):
        adult_rows.iloc[i * 300 : (i + 1) * 300].to_parquet(folder / f"part-{i}.parquet", index=False)
    result = predict_file(handle, folder, tmp_path / "scored.csv", chunk_rows=200)
    assert result.predicted == 900
    assert result.errors is None
    assert not (tmp_path / "scored.errors.csv").exists()


def test_missing_feature_column_is_an_error_and_no_output_is_left(handle, adult_rows, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / "partial.csv"
    adult_rows.drop(columns=["occupation"]).head(10).to_csv(source, index=False)
    with pytest.raises(DataError, match="occupation"):
        predict_file(handle, source, tmp_path / "out.csv")
    assert list(tmp_path.iterdir()) == [source]


def test_a_bad_later_part_stops_the_run_and_no_output_is_left(handle, adult_rows, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # Chunks are read and encoded one ahead in a background thread; a failure there still ends the run cleanly.
    folder = tmp_path / "parts"
    folder.mkdir()
    for i in range(4):
        part = adult_rows.iloc[i * 300 : (i + 1) * 300]
        (part.drop(columns=["occupation"]) if i == 3 else part).to_parquet(folder / f"part-{i}.parquet", index=False)
    with pytest.raises(DataError, match="occupation"):
        predict_file(handle, folder, tmp_path / "out.parquet", chunk_rows=100)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["parts"]


def test_evaluate_recomputes_the_test_metrics(handle, adult_rows, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / "labelled.parquet"
    adult_rows.to_parquet(source, index=False)
    evaluation, dropped = evaluate_file(handle, source)
    assert dropped == {}
    recorded = handle.loaded.metrics["test"]["metrics"]
    assert evaluation.metrics["accuracy"] == pytest.approx(recorded["accuracy"])
    assert evaluation.metrics["roc_auc"] == pytest.approx(recorded["roc_auc"])
    assert evaluation.baseline["roc_auc"] == 0.5
    assert set(evaluation.slices) == {"sex", "race"}
