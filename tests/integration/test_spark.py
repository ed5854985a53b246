"""Scoring on Spark with MLflow's ``spark_udf``: the same numbers as ``keel predict`` on the same rows."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.integration.test_mlflow_model import URI, keel_predictions

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    """One local Spark session (two cores, loopback only) for the module: starting Spark takes many seconds."""
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        message = "Spark needs a Java runtime (17 or newer): install default-jre-headless"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from pyspark.sql import SparkSession

    # Spark's Python workers run this interpreter, so they import keel's loader from the same environment.
    os.environ["PYSPARK_PYTHON"] = sys.executable
    session = (
        SparkSession.builder.master("local[2]")
        .appName("keel-tests")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    try:
        yield session
    finally:
        session.stop()


def test_spark_udf_scores_like_keel_predict(
    spark: Any,
    adult_workspace: Path,
    adult_rows: pd.DataFrame,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{adult_workspace / 'mlflow.db'}")
    rows = adult_rows.sample(n=500, random_state=11).reset_index(drop=True)
    expected = keel_predictions(adult_workspace, rows, tmp_path)
    features = [c for c in rows.columns if c != "income"]
    frame = spark.createDataFrame(rows.assign(row=range(len(rows))))
    result_type = "prediction STRING, `probability_<=50K` DOUBLE, `probability_>50K` DOUBLE"
    udf = mlflow.pyfunc.spark_udf(spark, URI, result_type=result_type, env_manager="local")
    scored = frame.repartition(2).withColumn("scored", udf(*features)).select("row", "scored.*")
    served = scored.toPandas().sort_values("row").drop(columns="row").reset_index(drop=True)
    assert list(served.columns) == list(expected.columns)
    pd.testing.assert_frame_equal(served, expected, check_dtype=False)
