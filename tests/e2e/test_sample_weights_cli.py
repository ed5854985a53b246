"""Sample weights through the CLI, as a user runs it: a headerless, `?`-coded survey file with a weight column."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.test_cli import keel
from tests.integration.test_sample_weights import _config, _lines, _reweighed

pytestmark = pytest.mark.slow


def test_train_predict_and_evaluate_with_a_weight_column(keel_command: list[str], tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text("\n".join(_reweighed(line) for line in _lines("adult.data.gz", 3000)) + "\n")
    (tmp_path / "test.csv").write_text("\n".join(_reweighed(line) for line in _lines("adult.test.gz", 1500)) + "\n")
    config = _config(tmp_path, "survey", weighted=True)

    trained = json.loads(keel(keel_command, "train", str(config), "--json").stdout)
    assert trained["champion"] is True
    assert set(trained["weighted_metrics"]) == set(trained["metrics"])
    assert trained["weighted_metrics"] != trained["metrics"]
    assert trained["promotion"]["metric"] == "weighted_roc_auc"
    shown = keel(keel_command, "train", str(config), cwd=tmp_path).stdout
    assert "Weighted test metrics" in shown

    workspace = str(tmp_path / "workspace")
    keel(keel_command, "predict", "-i", str(tmp_path / "test.csv"), "-o", str(tmp_path / "scored.csv"),
         "-w", workspace, "-m", "survey")  # fmt: skip
    assert len((tmp_path / "scored.csv").read_text().splitlines()) == 1501
    data = str(tmp_path / "test.csv")
    result = keel(keel_command, "evaluate", "-m", "survey:1", "--data", data, "-w", workspace, "--json")
    evaluated = json.loads(result.stdout)
    assert evaluated["weighted_metrics"] == pytest.approx(trained["weighted_metrics"])
    assert evaluated["weighted_baseline"] == pytest.approx(trained["weighted_baseline"])
