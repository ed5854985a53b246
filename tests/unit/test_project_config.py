"""Config keys the example projects added: yearly sources, zip members, interaction constraints by name."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from keel.config import SourceConfig, load_config
from keel.domain.training import _resolve_interaction_constraints
from keel.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
SHA = "a" * 64


def test_a_yearly_source_expands_to_one_checked_file_per_year() -> None:
    source = SourceConfig(
        path="m_{year}.csv", url="https://example.org/m_{year}.csv", years=(2023, 2024), sha256={2023: SHA, 2024: SHA}
    )
    expanded = source.per_year()
    assert [(year, s.path, s.url, s.sha256, s.years) for year, s in expanded] == [
        (2023, "m_2023.csv", "https://example.org/m_2023.csv", SHA, None),
        (2024, "m_2024.csv", "https://example.org/m_2024.csv", SHA, None),
    ]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"path": "m.csv", "years": (2023, 2024)}, "must contain {year}"),
        ({"path": "m_{year}.csv", "years": (2024, 2023)}, "first <= last"),
        ({"url": "https://e.org/{year}.csv", "years": (2023, 2024), "sha256": {2023: SHA}}, r"missing: \[2024\]"),
        ({"url": "https://e.org/{year}.csv", "years": (2023, 2024), "sha256": SHA}, "missing"),
        ({"url": "https://e.org/m.csv", "sha256": {2023: SHA}}, "only with `years`"),
    ],
)
def test_yearly_sources_are_validated(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SourceConfig(**fields)  # type: ignore[arg-type]


def test_the_four_project_configs_load() -> None:
    for name in ("covertype", "tennis", "bikes", "tags"):
        config = load_config([REPO / "configs" / f"{name}.yaml"]).config
        assert config.data.train.url is not None
        assert config.data.train.path is not None


def test_interaction_constraints_name_model_inputs() -> None:
    names = ["season", "yr", "hr"]
    params = {"interaction_constraints": [["yr"], ["season", "hr"]], "n_estimators": 5}
    assert _resolve_interaction_constraints(params, names)["interaction_constraints"] == [[1], [0, 2]]
    assert _resolve_interaction_constraints({"n_estimators": 5}, names) == {"n_estimators": 5}
    with pytest.raises(ConfigError, match="'year' is not a model input"):
        _resolve_interaction_constraints({"interaction_constraints": [["year"]]}, names)
