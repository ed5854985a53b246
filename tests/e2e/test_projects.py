"""The four example projects, trained from their configs as a user runs them, against the goals in the README.

Each project is trained once per session with `keel train configs/X.yaml --json` (KEEL_DATA_DIR pointing at the
shared data), in its own workspace; the tests assert the goals, so a regression in keel or in a config turns CI
red. Wall times are printed (`pytest -s` or `-rA`) so the suite's budget can be watched.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Trained:
    """One `keel train --json` run: its JSON document, wall time and workspace."""

    result: dict[str, Any]
    seconds: float
    workspace: Path


def _train(project: str, shared_data: Path, workspace: Path, keel_command: list[str], *overrides: str) -> Trained:
    env = {**os.environ, "KEEL_DATA_DIR": str(shared_data), "KEEL_WORKSPACE": str(workspace)}
    started = time.perf_counter()
    done = subprocess.run(
        [*keel_command, "train", str(REPO / "configs" / f"{project}.yaml"), *overrides, "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=900,
        check=False,
    )
    seconds = time.perf_counter() - started
    assert done.returncode == 0, f"keel train {project} failed:\n{done.stderr[-3000:]}"
    print(f"\n[timing] keel train configs/{project}.yaml: {seconds:.1f}s wall")
    return Trained(json.loads(done.stdout), seconds, workspace)


class _Projects(dict[str, Trained]):
    """Projects trained on first use, each in its own workspace."""

    def __init__(self, shared_data: Path, factory: pytest.TempPathFactory, keel_command: list[str]) -> None:
        super().__init__()
        self.shared_data, self.factory, self.keel_command = shared_data, factory, keel_command

    def __missing__(self, project: str) -> Trained:
        workspace = self.factory.mktemp(project) / "workspace"
        self[project] = _train(project, self.shared_data, workspace, self.keel_command)
        return self[project]


# The `trained` fixture (tests/e2e/conftest.py) holds the projects for the whole session, so the service tests
# serve these same models instead of training them again.


@pytest.mark.slow
def test_covertype_reaches_090_on_the_20k_subset_with_early_stopping(trained: dict[str, Trained]) -> None:
    run = trained["covertype"].result
    assert run["rows"] == {"train": 12_800, "valid": 3_200, "test": 4_000}  # 64/16/20
    assert run["metrics"]["accuracy"] >= 0.90
    assert run["metrics"]["accuracy"] > run["baseline"]["accuracy"] + 0.4
    assert run["best_iteration"] < 3000, "early stopping on the validation part chose the rounds"


@pytest.mark.slow
def test_tennis_beats_both_baselines_on_2024(trained: dict[str, Trained]) -> None:
    run = trained["tennis"].result
    metrics, baselines = run["metrics"], run["baselines"]
    assert run["test_rows"] == 3_056  # the 2024 season without walkovers
    assert metrics["accuracy"] >= 0.66
    assert metrics["log_loss"] <= 0.61
    ranked, elo = baselines["better-ranked player wins"], baselines["plain Elo"]
    assert 0.62 < ranked["accuracy"] < 0.66
    assert "log_loss" not in ranked  # a label baseline has no probabilities
    assert 0.62 < elo["accuracy"] < 0.66
    assert elo["log_loss"] < 0.64
    assert metrics["accuracy"] > max(ranked["accuracy"], elo["accuracy"])
    assert metrics["log_loss"] < elo["log_loss"]


@pytest.mark.slow
def test_tennis_keeps_the_player_state_for_the_service(trained: dict[str, Trained]) -> None:
    import pandas as pd

    from keel.application.models import load_version
    from keel.domain.recipes.tennis import TennisState
    from keel.io.registry import Registry

    handle = load_version(Registry.open(trained["tennis"].workspace), "tennis@champion")
    folder = handle.loaded.directory / "recipe"
    assert {"recipe/players.parquet", "recipe/head_to_head.parquet"} <= set(handle.loaded.manifest["files"])
    players = pd.read_parquet(folder / "players.parquet")
    state = TennisState.from_tables(players, pd.read_parquet(folder / "head_to_head.parquet"))
    sinner = players.loc[players["name"] == "Jannik Sinner"].iloc[0]
    assert sinner["rank"] <= 2
    assert state.players[int(sinner["player_id"])].elo > 2000


@pytest.mark.slow
def test_bikes_rmse_is_under_60_on_the_last_3476_hours(trained: dict[str, Trained]) -> None:
    run = trained["bikes"].result
    assert run["rows"] == {"train": 13_903, "valid": 0, "test": 3_476}
    assert run["metrics"]["rmse"] <= 60
    assert run["metrics"]["rmse"] < run["baseline"]["rmse"] / 3
    assert run["metrics"]["r2"] > 0.9


def test_bikes_with_casual_and_registered_as_features_is_refused(
    shared_data: Path, tmp_path: Path, keel_command: list[str]
) -> None:
    env = {**os.environ, "KEEL_DATA_DIR": str(shared_data), "KEEL_WORKSPACE": str(tmp_path / "ws")}
    done = subprocess.run(
        [*keel_command, "train", "configs/bikes.yaml", "data.ignore=[instant,dteday]"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
        check=False,
    )
    assert done.returncode == 2
    message = " ".join(done.stderr.split())
    assert "target leakage" in message
    assert "'casual' + 'registered'" in message
    assert "data.ignore" in message


@pytest.mark.slow
def test_tags_weighted_f1_beats_the_fine_tuned_scibert(trained: dict[str, Trained]) -> None:
    run = trained["tags"].result
    assert run["test_rows"] == 191
    assert run["metrics"]["f1_weighted"] >= 0.91
    slices = run["slices"]
    assert set(slices["text_length"]) == {"short", "long"}
    assert set(slices["mentions_framework"]) == {"yes", "no"}
    for values in slices.values():
        for scores in values.values():
            assert scores["f1_weighted"] > 0.75


@pytest.fixture(scope="module")
def tagger(trained: dict[str, Trained]) -> Any:
    from keel.application.models import load_version
    from keel.io.registry import Registry

    return load_version(Registry.open(trained["tags"].workspace), "tags@champion").loaded.model


def _tags(model: Any, *texts: tuple[str, str]) -> list[str]:
    import pandas as pd

    from keel.domain.validation import coerce_features

    frame = pd.DataFrame(texts, columns=["title", "description"])
    return [str(t) for t in model.predict_labels(model.predict_proba(coerce_features(frame, model.schema).frame))]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("title", "description", "expected"),
    [
        ("Image segmentation with U-Net", "Pixel-wise segmentation of medical images.", "computer-vision"),
        ("Object detection in real time", "Detect and localize objects in video frames with YOLO.", "computer-vision"),
        ("Named entity recognition", "Extract entities from text with a transformer language model.",
         "natural-language-processing"),
        ("Machine translation", "Translate sentences between languages with attention.",
         "natural-language-processing"),
        ("Serving models in production", "Deploy, monitor and version ML models with Docker and CI/CD pipelines.",
         "mlops"),
    ],
)  # fmt: skip
def test_tags_minimum_functionality(tagger: Any, title: str, description: str, expected: str) -> None:
    assert _tags(tagger, (title, description)) == [expected]


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["PyTorch", "TensorFlow", "JAX", "Keras"])
def test_tags_invariance_to_the_framework_named(tagger: Any, framework: str) -> None:
    text = (f"Sentiment analysis in {framework}", f"Classify the sentiment of movie reviews, written in {framework}.")
    assert _tags(tagger, text) == ["natural-language-processing"]


@pytest.mark.slow
def test_tags_direction_follows_the_task_named(tagger: Any) -> None:
    vision, language = _tags(
        tagger,
        ("A model that learns from data", "We apply it to image classification of photos of animals."),
        ("A model that learns from data", "We apply it to text classification of news articles."),
    )
    assert (vision, language) == ("computer-vision", "natural-language-processing")
