"""Seeing a model: the stored report, drift on real shifts (Adult, Covertype) and per-record explanations."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

from keel.cli import app
from tests.conftest import REPO

pytestmark = pytest.mark.slow

# Features that do not move with age in the Adult data (the census weight, sex, race, capital losses, country).
UNRELATED_TO_AGE = {"fnlwgt", "sex", "race", "capital_loss", "capital_gain", "native_country"}


def _handle(workspace: Path, reference: str = "adult-income@champion") -> Any:
    from keel.application.models import load_version
    from keel.io.registry import Registry

    return load_version(Registry.open(workspace), reference)


def _monitor(workspace: Path, rows: Any, tmp_path: Path, reference: str = "adult-income@champion") -> Any:
    from keel.application.insight_jobs import monitor_file

    path = tmp_path / "batch.csv"
    rows.to_csv(path, index=False)
    return monitor_file(_handle(workspace, reference), path, threshold=0.2).report


def test_every_version_stores_its_reference_contributions_and_report(adult_workspace: Path) -> None:
    handle = _handle(adult_workspace)
    files = handle.loaded.manifest["files"]
    for name in ("reference.json", "insights.json", "report.html", "plots/contributions.png"):
        assert name in files, f"{name} is not hashed in the manifest"
    directory = handle.loaded.directory
    reference = json.loads((directory / "reference.json").read_text())
    assert set(reference["features"]) == set(handle.loaded.schema.feature_names)
    assert reference["features"]["workclass"]["categories"][0] == "Private"
    assert reference["prediction"]["categories"] == ["<=50K", ">50K"]
    assert reference["score"]["rows"] == 16281
    insights = json.loads((directory / "insights.json").read_text())
    contributions = insights["global_contributions"]
    assert set(contributions) == set(handle.loaded.schema.feature_names)
    assert list(contributions.values()) == sorted(contributions.values(), reverse=True)
    assert insights["previous_champion"] is None
    html = (directory / "report.html").read_text()
    assert 'class="metrics"' in html
    # The contributions are averaged over a sample of the test rows, and the report says how large.
    assert insights["contribution_test_rows"] == 16281 > insights["contribution_rows"] > 0
    assert f"{insights['contribution_rows']:,} test rows (a random sample of the 16,281" in html
    assert html.count('src="data:image/png;base64,') >= 5
    assert 'src="http' not in html
    assert 'href="http' not in html


def test_report_command_writes_a_self_contained_page(
    adult_workspace: Path, keel_command: list[str], tmp_path: Path
) -> None:
    output = tmp_path / "out" / "report.html"
    done = subprocess.run(
        [
            *keel_command,
            "report",
            "adult-income@champion",
            "--output",
            str(output),
            "--workspace",
            str(adult_workspace),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    html = output.read_text()
    assert "adult-income" in html
    assert "version 1" in html
    assert ">champion<" in html
    # Every value is escaped: the class label >50K appears only as &gt;50K.
    assert "&gt;50K" in html
    assert "<td>>50K" not in html
    for section in (
        "Test metrics",
        "Per class",
        "Slice: sex",
        "Feature schema",
        "Resolved configuration",
        "Environment",
    ):
        assert section in html
    assert "lightgbm" in html
    assert "What drives the predictions" in html
    assert "8 categories: Private, Self-emp-not-inc" in html  # the schema table's workclass row
    assert "built-in method" not in html
    assert 'id="try-form"' not in html  # the form belongs to the service's page only


def test_report_shows_the_previous_champion_scored_on_the_same_test_rows(
    adult_workspace: Path, adult_rows: Any, tmp_path: Path
) -> None:
    from keel.application.insights import _previous_champion
    from keel.io import reports
    from keel.io.registry import Registry

    handle = _handle(adult_workspace)
    stored = handle.loaded.metrics["test"]["metrics"]
    test = adult_rows.copy()
    champion = _previous_champion(Registry.open(adult_workspace), "adult-income", test, list(stored))
    assert champion is not None
    assert champion["version"] == 1
    for name, value in stored.items():
        assert champion["metrics"][name] == pytest.approx(value, abs=1e-9)
    folder = tmp_path / "version"
    shutil.copytree(handle.loaded.directory, folder)
    (folder / "insights.json").write_text(json.dumps({"previous_champion": champion}))
    html = reports.model_report(folder, handle.loaded.manifest, version=2)
    assert "previous champion (v1)" in html
    assert "+0.0000" in html


def test_monitor_flags_age_and_what_moves_with_it_but_not_unrelated_features(
    adult_workspace: Path, adult_rows: Any, tmp_path: Path
) -> None:
    report = _monitor(adult_workspace, adult_rows[adult_rows["age"] >= 60], tmp_path)
    drifting = set(report.drifting)
    assert report.features[0].name == "age"
    assert report.features[0].psi > 1
    # Retirement: marriages end in widowhood, fewer hours, more missing work classes.
    assert {"age", "marital_status", "hours_per_week"} <= drifting
    assert not drifting & UNRELATED_TO_AGE, {f.name: round(f.psi, 3) for f in report.features}


def test_monitor_flags_one_workclass(adult_workspace: Path, adult_rows: Any, tmp_path: Path) -> None:
    report = _monitor(adult_workspace, adult_rows[adult_rows["workclass"] == "Self-emp-not-inc"], tmp_path)
    assert report.features[0].name == "workclass"
    assert "workclass" in report.drifting
    workclass = report.features[0]
    assert workclass.missing_current == 0.0
    assert workclass.missing_reference > 0.0
    assert not set(report.drifting) & {"fnlwgt", "race", "capital_loss", "native_country"}


def test_monitor_is_quiet_on_a_random_sample(adult_workspace: Path, adult_rows: Any, tmp_path: Path) -> None:
    report = _monitor(adult_workspace, adult_rows.sample(n=3000, random_state=3), tmp_path)
    assert report.drifting == []
    assert report.prediction is not None
    assert report.prediction.psi < 0.05
    assert all(f.unseen_current in (None, 0.0) for f in report.features)


def test_monitor_command_writes_html_and_json_and_exits_1_on_drift(
    adult_workspace: Path, adult_rows: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "old.csv"
    rows = adult_rows[adult_rows["age"] >= 60].copy()
    rows.loc[rows.index[:50], "native_country"] = "Atlantis"
    rows.to_csv(data, index=False)
    output = tmp_path / "drift.html"
    monkeypatch.setenv("KEEL_WORKSPACE", str(adult_workspace))
    monkeypatch.setenv("COLUMNS", "200")
    done = CliRunner().invoke(
        app, ["monitor", "--model", "adult-income@champion", "--data", str(data), "--output", str(output)]
    )
    assert done.exit_code == 1, done.output
    assert "age" in done.stdout
    assert "drifting" in done.stdout
    document = json.loads(output.with_suffix(".json").read_text())
    assert document["model"] == "adult-income:1"
    assert "age" in document["drifting"]
    country = next(f for f in document["features"] if f["name"] == "native_country")
    assert country["unseen_current"] == pytest.approx(50 / len(rows))
    html = output.read_text()
    assert html.count('src="data:image/png;base64,') == len(document["features"]) + 2  # + prediction and score
    assert "drifting" in html


def test_explain_command_lists_contributions_that_add_up_to_the_score(
    adult_workspace: Path, adult_rows: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "rows.csv"
    adult_rows.iloc[:10].to_csv(data, index=False)
    plots = tmp_path / "plots"
    monkeypatch.setenv("KEEL_WORKSPACE", str(adult_workspace))
    done = CliRunner().invoke(
        app, ["explain", "--input", str(data), "--rows", "0,3-4", "--plots", str(plots), "--json"]
    )
    assert done.exit_code == 0, done.output
    records = json.loads(done.stdout)["records"]
    assert [r["row"] for r in records] == [0, 3, 4]
    model = _handle(adult_workspace).loaded.model
    from keel.domain.validation import coerce_features

    proba = model.predict_proba(coerce_features(adult_rows.iloc[[0, 3, 4]], model.schema).frame)[:, 1]
    for record, p in zip(records, proba, strict=True):
        assert record["raw_score"] == pytest.approx(math.log(p / (1 - p)), abs=1e-6)
        assert len(record["contributions"]) == 8
        assert {c["feature"] for c in record["contributions"]} <= set(model.schema.feature_names)
        assert Path(record["plot"]).stat().st_size > 5000
    first = records[0]["contributions"][0]
    assert first["value"] == adult_rows.iloc[0][first["feature"]]


def test_explain_says_when_contributions_are_not_available(tmp_path: Path) -> None:
    from keel.application.insight_jobs import explain_file
    from keel.errors import KeelError

    model = SimpleNamespace(is_booster=False, explainable=False, estimator_name="random_forest")
    handle = SimpleNamespace(loaded=SimpleNamespace(model=model), label="forest:1")
    with pytest.raises(KeelError, match=r"not available.*random_forest"):
        explain_file(handle, tmp_path / "rows.csv", rows=None, top=5, plots=None)  # type: ignore[arg-type]


def test_explain_rejects_rows_outside_the_file(adult_workspace: Path, adult_rows: Any, tmp_path: Path) -> None:
    from keel.application.insight_jobs import explain_file
    from keel.errors import DataError

    data = tmp_path / "rows.csv"
    adult_rows.iloc[:3].to_csv(data, index=False)
    with pytest.raises(DataError, match=r"row\(s\) 7 are not in the file \(3 rows\)"):
        explain_file(_handle(adult_workspace), data, rows="0,7", top=5, plots=None)
    with pytest.raises(DataError, match="not a row number"):
        explain_file(_handle(adult_workspace), data, rows="zero", top=5, plots=None)


# -- Covertype -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def covertype(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A small Covertype model (the shared 20,000-row subset) and its raw rows."""
    from keel.application.train import train
    from keel.config import load_config
    from keel.io.sources import resolve_source
    from keel.io.tables import read_table

    folder = tmp_path_factory.mktemp("covertype") / "workspace"
    saved = os.environ.get("KEEL_DATA_DIR")
    os.environ["KEEL_DATA_DIR"] = str(shared_data)
    try:
        loaded = load_config(
            [REPO / "configs" / "covertype.yaml"],
            [
                f"registry.workspace={folder}",
                "model.params.n_estimators=60",
                "model.params.num_leaves=31",
                "model.early_stopping_rounds=10",
            ],
        )
        train(loaded)
        config = loaded.config
        rows = read_table(resolve_source(config.data.train).path, csv=config.data.train.csv)
    finally:
        if saved is None:
            os.environ.pop("KEEL_DATA_DIR", None)
        else:
            os.environ["KEEL_DATA_DIR"] = saved
    return folder, rows


def test_covertype_one_wilderness_area_is_flagged(covertype: tuple[Path, Any], tmp_path: Path) -> None:
    workspace, rows = covertype
    area = rows[rows["Wilderness_Area3"] == 1]
    report = _monitor(workspace, area, tmp_path, "covertype@champion")
    assert "Wilderness_Area3" in report.drifting
    assert report.prediction is not None
    assert report.prediction.drifting  # the cover types differ by area
    quiet = _monitor(workspace, rows.sample(n=3000, random_state=0), tmp_path, "covertype@champion")
    assert not [name for name in quiet.drifting if name.startswith("Wilderness")]
