"""The production loop on a real registry: labels joined to the prediction log, live metrics per version, drift on
the logged traffic, and promotion from that evidence (through the CLI as a user runs it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from keel.application.live import evaluate_log, promote_from_evidence
from keel.application.models import load_version
from keel.cli import app
from keel.domain.refs import ModelRef
from keel.errors import DataError, RegistryError
from keel.io.registry import Registry
from keel.serving.prediction_log import PredictionLog
from keel.serving.predictor import Predictor
from tests.integration.live_helpers import FEATURES, train_live_versions


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory: pytest.TempPathFactory, module_workspace: Path) -> dict[str, Any]:
    """Version 1 (a weak model, champion) and version 2 (a strong one), with held-out traffic and its labels."""
    traffic = train_live_versions(module_workspace, tmp_path_factory.mktemp("live"))
    return {"workspace": module_workspace, "traffic": traffic}


def _write_log(workspace: Path, traffic: pd.DataFrame, folder: Path, *, shadow: int | None = 2) -> pd.DataFrame:
    """Score the traffic one request per record, as the service would: version 1 answers, ``shadow`` also scores."""
    registry = Registry.open(workspace)
    scorers = {v: Predictor(load_version(registry, ModelRef(name="live", version=v)).loaded.model) for v in (1, 2)}
    records = traffic[FEATURES].to_dict("records")
    with PredictionLog(folder) as writer:
        for i, record in enumerate(records):
            request_id = f"req-{i}"
            writer.log_records(request_id, "live", 1, [record], scorers[1].predict([record]))
            if shadow is not None:
                writer.log_records(
                    request_id, "live", shadow, [record], scorers[shadow].predict([record]), role="shadow"
                )
    return pd.DataFrame({"request_id": [f"req-{i}" for i in range(len(records))], "label": traffic["label"]})


def test_live_metrics_per_version_on_the_labelled_records(two_versions: dict[str, Any], tmp_path: Path) -> None:
    workspace, traffic = two_versions["workspace"], two_versions["traffic"]
    labels = _write_log(workspace, traffic, tmp_path / "log")
    # Labels arrive for most records only, plus one for a request the service never saw.
    known = labels.iloc[:250]
    stray = pd.DataFrame({"request_id": ["never-seen"], "label": ["high"]})
    labels_file = tmp_path / "outcomes.csv"
    pd.concat([known, stray]).to_csv(labels_file, index=False)

    result = evaluate_log(Registry.open(workspace), tmp_path / "log", labels_file, "request_id")
    blocks = {(v.version, v.role): v for v in result.versions}
    assert list(blocks) == [(1, "primary"), (2, "shadow")]
    for block in blocks.values():
        assert (block.logged, block.matched) == (300, 250)
        assert block.evaluation is not None
        assert block.evaluation.rows == 250
        assert set(block.evaluation.baseline) == set(block.evaluation.metrics)
    weak, strong = blocks[(1, "primary")].evaluation, blocks[(2, "shadow")].evaluation
    assert weak is not None
    assert strong is not None
    assert strong.metrics["roc_auc"] > weak.metrics["roc_auc"] + 0.05
    assert weak.baseline == strong.baseline  # the same rows, so the same baseline
    assert result.unmatched_labels == 1

    # The same numbers from the command line, one JSON block per version.
    done = CliRunner().invoke(
        app,
        ["evaluate", "--log", str(tmp_path / "log"), "--labels", str(labels_file), "--on", "request_id", "--json"],
        env={"KEEL_WORKSPACE": str(workspace)},
    )
    assert done.exit_code == 0, done.output
    document = json.loads(done.stdout)
    assert [(b["version"], b["role"], b["matched"], b["unmatched"]) for b in document["versions"]] == [
        (1, "primary", 250, 50),
        (2, "shadow", 250, 50),
    ]
    assert document["versions"][1]["metrics"]["roc_auc"] == pytest.approx(strong.metrics["roc_auc"])


def test_labels_join_by_an_id_column(two_versions: dict[str, Any], tmp_path: Path) -> None:
    workspace, traffic = two_versions["workspace"], two_versions["traffic"]
    _write_log(workspace, traffic, tmp_path / "log", shadow=None)
    by_id = tmp_path / "by_id.csv"
    traffic[["row_id", "label"]].iloc[::2].to_csv(by_id, index=False)
    result = evaluate_log(Registry.open(workspace), tmp_path / "log", by_id, "row_id")
    assert [(v.version, v.matched, v.logged) for v in result.versions] == [(1, 150, 300)]
    by_customer = tmp_path / "by_customer.csv"
    traffic[["row_id", "label"]].rename(columns={"row_id": "customer"}).to_csv(by_customer, index=False)
    with pytest.raises(DataError, match="not a field of the logged records"):
        evaluate_log(Registry.open(workspace), tmp_path / "log", by_customer, "customer")


def test_join_mistakes_are_named_before_any_metric(two_versions: dict[str, Any], tmp_path: Path) -> None:
    workspace, traffic = two_versions["workspace"], two_versions["traffic"]
    labels = _write_log(workspace, traffic, tmp_path / "log", shadow=None)
    registry = Registry.open(workspace)
    no_target = tmp_path / "no_target.csv"
    labels.rename(columns={"label": "outcome"}).to_csv(no_target, index=False)
    with pytest.raises(DataError, match="no column 'label'"):
        evaluate_log(registry, tmp_path / "log", no_target, "request_id")
    nothing = tmp_path / "nothing.csv"
    labels.assign(request_id="other").iloc[:1].to_csv(nothing, index=False)
    with pytest.raises(DataError, match="none of the 300 logged records has a label"):
        evaluate_log(registry, tmp_path / "log", nothing, "request_id")
    twice = tmp_path / "twice.csv"
    pd.concat([labels.iloc[:2], labels.iloc[:1]]).to_csv(twice, index=False)
    with pytest.raises(DataError, match="appears more than once"):
        evaluate_log(registry, tmp_path / "log", twice, "request_id")


def test_monitor_on_the_logged_traffic(two_versions: dict[str, Any], tmp_path: Path) -> None:
    workspace, traffic = two_versions["workspace"], two_versions["traffic"]
    shifted = traffic.assign(x2=traffic["x2"] + 8)  # far above anything seen in training
    _write_log(workspace, shifted, tmp_path / "log")
    done = CliRunner().invoke(
        app,
        [
            "monitor",
            "--log",
            str(tmp_path / "log"),
            "--since",
            "1h",
            "--model",
            "live:1",
            "--json",
            "--output",
            str(tmp_path / "drift.html"),
        ],
        env={"KEEL_WORKSPACE": str(workspace)},
    )
    assert done.exit_code == 1, done.output  # drifting
    document = json.loads(done.stdout)
    assert document["rows"] == 300  # the answered records, not the shadow's copies
    drifting = {f["name"] for f in document["features"] if f["drifting"]}
    assert "x2" in drifting
    assert "colour" not in drifting


def test_promotion_from_evidence_applies_the_gate_and_records_it(two_versions: dict[str, Any], tmp_path: Path) -> None:
    workspace, traffic = two_versions["workspace"], two_versions["traffic"]
    labels = _write_log(workspace, traffic, tmp_path / "log")
    labels_file = tmp_path / "outcomes.csv"
    labels.to_csv(labels_file, index=False)
    registry = Registry.open(workspace)
    with pytest.raises(RegistryError, match="already champion"):
        promote_from_evidence(registry, "live", 1, tmp_path / "log", labels_file, "request_id")

    env = {"KEEL_WORKSPACE": str(workspace)}
    argv = ["models", "promote", "live", "2", "--evidence", str(tmp_path / "log"), "--labels", str(labels_file)]
    done = CliRunner().invoke(app, [*argv, "--json"], env=env)
    assert done.exit_code == 0, done.output
    outcome = json.loads(done.stdout)
    assert outcome["promoted"] is True
    assert registry.alias_version("live", "champion") == 2
    info = registry.get(ModelRef(name="live", version=2))
    evidence = json.loads(info.tags["keel.evidence"])
    assert evidence["compared_on"] == "the same records"
    assert evidence["rows"] == evidence["champion_rows"] == 300
    assert evidence["metric"] == "roc_auc"
    assert evidence["value"] > evidence["champion_value"]
    assert info.tags["keel.promotion"].startswith("evidence: better than version 1 (live)")
    shown = CliRunner().invoke(app, ["models", "show", "live:2"], env=env)
    assert json.loads(shown.stdout)["evidence"] == evidence

    # Going back to the weaker version is refused by the same gate (exit 1), and the alias stays.
    back = CliRunner().invoke(app, ["models", "promote", "live", "1", "--evidence", str(tmp_path / "log"),
                                    "--labels", str(labels_file)], env=env)  # fmt: skip
    assert back.exit_code == 1, back.output
    assert "not better than version 2" in back.stdout
    assert registry.alias_version("live", "champion") == 2
    assert json.loads(registry.get(ModelRef(name="live", version=1)).tags["keel.evidence"])["promoted"] is False
    registry.set_alias("live", "champion", 1)  # leave the module's registry as the fixture made it
