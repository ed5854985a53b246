"""A stranger's table, end to end: a headerless, `?`-coded CSV trained on, then scored, evaluated and monitored as is.

The files are made here from the packaged Adult data in the shape a user downloads it (no header row, `?` for
missing, a space after every comma, the test file's labels ending in a full stop), so every command must read them
the way training did.
"""

from __future__ import annotations

import gzip
import json
import random
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest

from tests.e2e.test_cli import keel

pytestmark = pytest.mark.slow

NAMES = [
    "age", "workclass", "fnlwgt", "education", "education_num", "marital_status", "occupation", "relationship",
    "race", "sex", "capital_gain", "capital_loss", "hours_per_week", "native_country", "income",
]  # fmt: skip

CONFIG = """\
project: {{name: census}}
data:
  train:
    path: {train}
    csv: &csv {{header: false, names: [{names}], na_values: ["?"]}}
  test:
    path: {test}
    csv: *csv
  target: income
  recode:
    income: {{"<=50K.": "<=50K", ">50K.": ">50K"}}
split: {{strategy: explicit, valid_size: 0.1, seed: 3}}
model:
  params: {{n_estimators: 60, learning_rate: 0.1}}
evaluation:
  metrics: [accuracy, roc_auc, log_loss]
"""


def _adult_lines(name: str) -> list[str]:
    raw = (resources.files("keel") / "data" / "adult" / name).read_bytes()
    lines = gzip.decompress(raw).decode("utf-8").splitlines()
    return [line for line in lines if line.strip() and not line.startswith("|")]


@pytest.fixture(scope="module")
def census(tmp_path_factory: pytest.TempPathFactory, keel_command: list[str]) -> dict[str, object]:
    """A project trained from headerless, `?`-coded files; the test file keeps its trailing full stops."""
    folder = tmp_path_factory.mktemp("census")
    train_lines = _adult_lines("adult.data.gz")[:8000]
    test_lines = _adult_lines("adult.test.gz")[:4000]
    assert any(" ?," in line for line in test_lines)
    assert all(line.endswith(".") for line in test_lines)
    (folder / "train.csv").write_text("\n".join(train_lines) + "\n")
    (folder / "test.csv").write_text("\n".join(test_lines) + "\n")
    config = folder / "census.yaml"
    config.write_text(CONFIG.format(train=folder / "train.csv", test=folder / "test.csv", names=", ".join(NAMES)))
    workspace = folder / "workspace"
    trained = json.loads(keel(keel_command, "train", str(config), "--workspace", str(workspace), "--json").stdout)
    return {"folder": folder, "workspace": workspace, "trained": trained, "test_lines": test_lines}


def test_the_training_format_is_understood_by_predict_evaluate_and_monitor(
    census: dict[str, object], keel_command: list[str], tmp_path: Path
) -> None:
    folder, workspace = Path(str(census["folder"])), str(census["workspace"])
    trained: dict[str, object] = census["trained"]  # type: ignore[assignment]
    test = folder / "test.csv"

    # The same rows as a user's tidy file: a header row, blanks for missing, labels without the full stop.
    tidy = pd.read_csv(test, header=None, names=NAMES, skipinitialspace=True, na_values=["?"], keep_default_na=False)
    assert tidy["workclass"].isna().any()
    tidy["income"] = tidy["income"].str.rstrip(".")
    tidy.to_csv(tmp_path / "tidy.csv", index=False)

    keel(keel_command, "predict", "-i", str(test), "-o", str(tmp_path / "raw.csv"), "-w", workspace)
    keel(
        keel_command, "predict", "-i", str(tmp_path / "tidy.csv"), "-o", str(tmp_path / "tidy-out.csv"), "-w", workspace
    )
    raw, clean = pd.read_csv(tmp_path / "raw.csv"), pd.read_csv(tmp_path / "tidy-out.csv")
    assert len(raw) == len(clean) == 4000
    assert not (tmp_path / "raw.errors.csv").exists()
    pd.testing.assert_frame_equal(raw.filter(like="probability_"), clean.filter(like="probability_"))
    assert raw["prediction"].tolist() == clean["prediction"].tolist()
    assert raw["row"].tolist() == list(range(4000))

    # The rows to score as they usually come: the training format without the label column.
    unlabelled = tmp_path / "unlabelled.csv"
    unlabelled.write_text("\n".join(line.rsplit(",", 1)[0] for line in census["test_lines"]) + "\n")  # type: ignore[attr-defined]
    keel(keel_command, "predict", "-i", str(unlabelled), "-o", str(tmp_path / "unlabelled-out.csv"), "-w", workspace)
    scored = pd.read_csv(tmp_path / "unlabelled-out.csv")
    assert list(scored.columns) == ["row", "prediction", "probability_<=50K", "probability_>50K"]  # no empty income
    pd.testing.assert_frame_equal(scored.filter(like="probability_"), raw.filter(like="probability_"))

    evaluated = json.loads(keel(keel_command, "evaluate", "--data", str(test), "-w", workspace, "--json").stdout)
    assert evaluated["rows"] == trained["test_rows"] == 4000
    assert evaluated["metrics"] == trained["metrics"]  # exactly: the same rows, read the same way

    random.seed(5)
    sample = random.sample(list(census["test_lines"]), 1500)  # type: ignore[call-overload]
    (tmp_path / "sample.csv").write_text("\n".join(sample) + "\n")
    monitored = keel(
        keel_command, "monitor", "--data", str(tmp_path / "sample.csv"), "-o", str(tmp_path / "drift.html"),
        "-w", workspace, "--json", check=False,
    )  # fmt: skip
    report = json.loads(monitored.stdout)
    assert [f["name"] for f in report["features"] if f["drifting"]] == []
    assert monitored.returncode == 0, monitored.stderr


def test_a_flag_overrides_the_recorded_format_for_one_run(
    census: dict[str, object], keel_command: list[str], tmp_path: Path
) -> None:
    workspace = str(census["workspace"])
    lines = list(census["test_lines"])[:50]  # type: ignore[call-overload]
    (tmp_path / "semicolons.csv").write_text("\n".join(line.replace(", ", ";") for line in lines) + "\n")
    refused = keel(
        keel_command, "predict", "-i", str(tmp_path / "semicolons.csv"), "-o", str(tmp_path / "a.csv"),
        "-w", workspace, check=False,
    )  # fmt: skip
    assert refused.returncode != 0
    keel(
        keel_command, "predict", "-i", str(tmp_path / "semicolons.csv"), "-o", str(tmp_path / "b.csv"),
        "-w", workspace, "--csv", "delimiter=;",
    )  # fmt: skip
    assert len(pd.read_csv(tmp_path / "b.csv")) == 50
    wrong = keel(keel_command, "predict", "-i", "x.csv", "-o", "y.csv", "-w", workspace, "--csv", "sep=;", check=False)
    assert wrong.returncode != 0
    assert "no CSV option 'sep'" in wrong.stderr


def test_every_record_comes_back_once_with_its_row_across_chunks(
    census: dict[str, object], keel_command: list[str], tmp_path: Path
) -> None:
    workspace = str(census["workspace"])
    lines = list(census["test_lines"])[:300]  # type: ignore[call-overload]
    bad = {5, 149, 150, 151, 299}
    for index in bad:  # unreadable ages mid-file, in every chunk and across a chunk boundary
        fields = lines[index].split(", ")
        fields[0] = "forty"
        lines[index] = ", ".join(fields)
    (tmp_path / "batch.csv").write_text("\n".join(lines) + "\n")
    result = keel(
        keel_command, "predict", "-i", str(tmp_path / "batch.csv"), "-o", str(tmp_path / "out.parquet"),
        "--chunk-rows", "100", "-w", workspace, "--json",
    )  # fmt: skip
    summary = json.loads(result.stdout)
    assert (summary["rows"], summary["predicted"], summary["invalid"]) == (300, 295, 5)
    scored, errors = pd.read_parquet(tmp_path / "out.parquet"), pd.read_parquet(tmp_path / "out.errors.parquet")
    assert sorted(errors["row"]) == sorted(bad)
    assert sorted([*scored["row"], *errors["row"]]) == list(range(300))
    assert errors["error"].str.contains("age").all()
    assert list(scored.columns[:2]) == ["row", "income"]  # the default still carries every non-feature column

    keel(
        keel_command, "predict", "-i", str(tmp_path / "batch.csv"), "-o", str(tmp_path / "bare.csv"),
        "--keep", "none", "--row-column", "position", "-w", workspace,
    )  # fmt: skip
    bare = pd.read_csv(tmp_path / "bare.csv")
    assert list(bare.columns[:2]) == ["position", "prediction"]
    assert "income" not in bare.columns
    assert "position" in pd.read_csv(tmp_path / "bare.errors.csv").columns

    clash = keel(
        keel_command, "predict", "-i", str(tmp_path / "batch.csv"), "-o", str(tmp_path / "c.csv"),
        "--row-column", "income", "-w", workspace, check=False,
    )  # fmt: skip
    assert clash.returncode != 0
    assert "--row-column" in clash.stderr
    assert not (tmp_path / "c.csv").exists()
