"""A near-leaking feature is warned about, stored with the version, and keeps the version from promoting itself."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from tests.integration.conftest import ProjectFactory


def _loans(rows: int = 3000) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    default = rng.integers(0, 2, rows)
    return pd.DataFrame(
        {
            "row_id": np.arange(rows),
            "income": rng.normal(50, 10, rows) - 3 * default,
            "settled_days": rng.normal(0, 1, rows) + 2.7 * default,  # alone: ROC AUC about 0.97
            "label": np.where(default == 1, "yes", "no"),
        }
    )


def test_near_leakage_is_stored_and_the_version_is_not_promoted(make_project: ProjectFactory) -> None:
    from keel.application.models import load_version
    from keel.application.train import train
    from keel.config import load_config
    from keel.io.registry import Registry

    config = make_project(_loans(), "loans")
    result = train(load_config([config]))
    document = result.to_dict()
    assert document["champion"] is False
    assert len(document["warnings"]) == 1
    assert "'settled_days'" in document["warnings"][0]
    assert "known_in_advance" in document["warnings"][0]
    assert "keel models promote loans 1 --reason" in result.promotion.reason

    registry = Registry.open(load_config([config]).config.registry.workspace)
    handle = load_version(registry, "loans:1")
    assert handle.loaded.manifest["warnings"] == document["warnings"]
    assert "settled_days" in (handle.loaded.directory / "report.html").read_text(encoding="utf-8")
    assert registry.alias_version("loans", "champion") is None

    vouched = train(load_config([config], ["data.known_in_advance=[settled_days]"]))
    assert vouched.to_dict()["warnings"] == []
    assert vouched.promotion.promote is True
    assert json.dumps(vouched.to_dict())  # still one JSON document
