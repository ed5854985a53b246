"""`model.estimator: auto` from the command line, on a table in a user's shape (no header, `?` for missing, text)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.e2e.test_cli import keel

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

_WORDS = [
    "fast",
    "slow",
    "red",
    "engine",
    "wheel",
    "broken",
    "great",
    "terrible",
    "cheap",
    "price",
    "quality",
    "service",
    "delivery",
]


def _reviews(rows: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(rows):
        a = rng.normal()
        text = " ".join(rng.choice(_WORDS, size=int(rng.integers(5, 40))))
        score = a + 0.8 * ("great" in text) - 0.8 * ("terrible" in text) + rng.normal(scale=0.5)
        shown = "?" if rng.random() < 0.05 else f"{a:.3f}"
        lines.append(f'{shown},{rng.choice(["x", "y", "z", "?"])},"{text}",{"good" if score > 0 else "bad"}')
    return "\n".join(lines) + "\n"


def test_auto_with_a_time_budget_prints_and_stores_its_leaderboard(
    keel_command: list[str], workspace: Path, tmp_path: Path
) -> None:
    (tmp_path / "reviews.csv").write_text(_reviews(1200, seed=4))
    config = {
        "project": "reviews",
        "data": {
            "train": {"path": str(tmp_path / "reviews.csv"),
                      "csv": {"header": False, "names": ["a", "b", "text", "label"], "na_values": ["?"]}},
            "target": "label",
            "types": {"text": "text"},
        },
        "features": {"text": {"char_ngrams": None, "max_features": 2000}},
    }  # fmt: skip
    path = tmp_path / "reviews.yaml"
    path.write_text(yaml.safe_dump(config))

    done = keel(keel_command, "train", str(path), "model.estimator=auto", "--time-budget", "20", "--json", timeout=800)
    result = json.loads(done.stdout)
    board = result["leaderboard"]
    # A text column: the linear model on TF-IDF runs first; every candidate has a row, one is chosen.
    assert board[0]["candidate"] == "logistic_regression"
    assert board[0]["valid_score"] > 0.8
    assert sum(row["chosen"] for row in board) == 1
    assert result["rows"]["valid"] > 0, "a validation part was carved from the training rows"
    assert result["metrics"]["roc_auc"] > 0.8

    (tmp_path / "new.csv").write_text("a,b,text\n0.5,x,great price\n-1.2,?,terrible delivery\n")
    keel(keel_command, "predict", "-m", "reviews@champion", "-i", str(tmp_path / "new.csv"), "-o",
         str(tmp_path / "out.csv"))  # fmt: skip
    scored = pd.read_csv(tmp_path / "out.csv")
    assert len(scored) == 2
