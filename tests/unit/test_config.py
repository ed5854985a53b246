from __future__ import annotations

from pathlib import Path

import pytest

from keel.config import KeelConfig, load_config, split_arguments
from keel.errors import ConfigError

MINIMAL = """
project: demo
data:
  train: {path: data.csv}
  target: y
"""


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_packaged_default_is_the_adult_project() -> None:
    loaded = load_config()
    assert loaded.config.project.name == "adult-income"
    assert loaded.config.data.target == "income"
    assert loaded.config.split.strategy == "explicit"
    assert loaded.sources == ["package:adult.yaml"]


def test_repository_config_matches_the_packaged_default() -> None:
    repo = Path(__file__).resolve().parents[2]
    packaged = repo / "src" / "keel" / "configs" / "adult.yaml"
    assert (repo / "configs" / "adult.yaml").read_text() == packaged.read_text()


def test_overrides_apply_after_files_with_types(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    loaded = load_config([path], ["model.params.n_estimators=300", "split.seed=7", "split.test_size=0.25"])
    assert loaded.config.model.params["n_estimators"] == 300
    assert loaded.config.split.seed == 7
    assert loaded.config.split.test_size == 0.25


def test_files_merge_left_to_right(tmp_path: Path) -> None:
    base = write(tmp_path, MINIMAL, "base.yaml")
    extra = write(tmp_path, "model:\n  estimator: random_forest\nsplit:\n  seed: 3\n", "extra.yaml")
    config = load_config([base, extra]).config
    assert config.model.estimator == "random_forest"
    assert config.split.seed == 3
    assert config.data.target == "y"


def test_unknown_key_names_file_path_and_closest_key(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "split:\n  sed: 3\n")
    with pytest.raises(ConfigError) as error:
        load_config([path])
    message = str(error.value)
    assert str(path) in message
    assert "split.sed" in message
    assert "'seed'" in message


def test_unknown_key_from_an_override_names_the_override(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    with pytest.raises(ConfigError) as error:
        load_config([path], ["modle.estimator=ridge"])
    assert "override 'modle.estimator=ridge'" in str(error.value)
    assert "'model'" in str(error.value)


def test_wrong_type_says_what_was_expected(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "split:\n  seed: seven\n")
    with pytest.raises(ConfigError) as error:
        load_config([path])
    message = str(error.value)
    assert "split.seed" in message
    assert "integer" in message
    assert "'seven'" in message


def test_wrong_choice_lists_the_valid_ones(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "model:\n  estimator: xgboost\n")
    with pytest.raises(ConfigError) as error:
        load_config([path])
    assert "model.estimator" in str(error.value)
    assert "lightgbm" in str(error.value)


def test_missing_file_and_invalid_yaml_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config([tmp_path / "nope.yaml"])
    bad = write(tmp_path, "project: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config([bad])


def test_missing_required_key(tmp_path: Path) -> None:
    path = write(tmp_path, "project: demo\ndata:\n  train: {path: x.csv}\n")
    with pytest.raises(ConfigError, match=r"missing required key `data.target`"):
        load_config([path])


def test_cross_section_rules(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "split:\n  strategy: explicit\n")
    with pytest.raises(ConfigError, match=r"needs `data\.test`"):
        load_config([path])
    path = write(tmp_path, MINIMAL + "split:\n  valid_size: 0\nmodel:\n  early_stopping_rounds: 10\n")
    with pytest.raises(ConfigError, match="valid_size"):
        load_config([path])
    path = write(tmp_path, MINIMAL.replace("target: y", "target: y\n  ignore: [y]"))
    with pytest.raises(ConfigError, match="cannot also be listed"):
        load_config([path])


def test_download_needs_a_checksum(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("{path: data.csv}", "{url: 'https://example.org/d.csv'}"))
    with pytest.raises(ConfigError, match="sha256"):
        load_config([path])


def test_config_is_frozen() -> None:
    config = load_config().config
    with pytest.raises(Exception, match="frozen"):
        config.split.seed = 3  # type: ignore[misc]


def test_split_arguments_separates_files_from_overrides() -> None:
    files, overrides = split_arguments(["configs/a.yaml", "model.params.n_estimators=3", "b.yaml", "seed=1"])
    assert files == ["configs/a.yaml", "b.yaml"]
    assert overrides == ["model.params.n_estimators=3", "seed=1"]


def test_json_schema_describes_every_section() -> None:
    schema = KeelConfig.model_json_schema()
    assert {"project", "data", "split", "features", "model", "evaluation", "registry"} <= set(schema["properties"])


def test_a_key_can_be_removed_before_switching_estimator() -> None:
    config = load_config(overrides=["~model.params", "model.estimator=random_forest", "~model.early_stopping_rounds"])
    assert config.config.model.estimator == "random_forest"
    assert config.config.model.params == {}
    with pytest.raises(ConfigError, match=r"no key `model\.nope` to remove"):
        load_config(overrides=["~model.nope"])
    files, overrides = split_arguments(["~model.params", "a.yaml"])
    assert (files, overrides) == (["a.yaml"], ["~model.params"])


def test_the_resolved_configuration_a_version_stores_reads_back_as_the_same_values(tmp_path: Path) -> None:
    """What `config.yaml` of a version holds (and `keel tune` writes) loads back unchanged, tricky strings too."""
    from omegaconf import OmegaConf

    from keel.config import dump_yaml

    data = {
        "project": {"name": "café 売上", "description": "yes"},
        "data": {"na_values": ["?", "null", "NA", "1e3", "no"], "target": "on"},
        "model": {"params": {"learning_rate": 0.03, "n_estimators": 1500, "objective": "poisson"}},
        "split": {"test_size": 0.2, "time_column": None},
    }
    text = dump_yaml(data)
    assert OmegaConf.to_container(OmegaConf.create(text)) == data
    path = tmp_path / "config.yaml"
    path.write_text(dump_yaml(load_config([], []).config.model_dump(mode="json")), encoding="utf-8")
    assert load_config([path], []).config == load_config([], []).config
