"""Reading a scored file the way the version's training source was read: recorded options, overrides, old versions."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.application.inputs import input_format, parse_csv_overrides, recorded_format
from keel.errors import ConfigError, DataError

CONFIG = """\
data:
  train:
    path: census.data
    csv: {header: false, names: [age, job, income], na_values: ["?"]}
  target: income
  recode:
    income: {">50K.": ">50K"}
"""


@pytest.fixture
def version(tmp_path: Path) -> Path:
    folder = tmp_path / "version"
    folder.mkdir()
    (folder / "config.yaml").write_text(CONFIG)
    return folder


def test_a_file_in_the_training_format_is_read_and_recoded(version: Path, tmp_path: Path) -> None:
    (tmp_path / "rows.csv").write_text("39, ?, >50K.\n40, clerk, <=50K.\n")
    frame = recorded_format(version).read(tmp_path / "rows.csv")
    assert list(frame.columns) == ["age", "job", "income"]
    assert frame["job"].isna().tolist() == [True, False]
    assert frame["income"].tolist() == [">50K", "<=50K."]  # only the configured spellings are recoded


def test_a_header_row_is_still_recognised_even_with_extra_id_columns(version: Path, tmp_path: Path) -> None:
    (tmp_path / "tidy.csv").write_text("customer,age,job\nc1,39,\nc2,40,clerk\n")
    frame = recorded_format(version).read(tmp_path / "tidy.csv")
    assert list(frame.columns) == ["customer", "age", "job"]
    assert frame["age"].tolist() == [39, 40]


def test_a_flag_wins_over_the_recorded_option(version: Path, tmp_path: Path) -> None:
    (tmp_path / "semi.csv").write_text("39;clerk;x\n")
    frame = input_format(version, ["delimiter=;"]).read(tmp_path / "semi.csv")
    assert frame.iloc[0].tolist() == [39, "clerk", "x"]
    with_header = input_format(version, ["header=true"])
    assert with_header.csv.header is True
    assert with_header.csv.names is None


def test_a_scoring_file_without_the_trailing_target_gets_no_invented_target_column(
    version: Path, tmp_path: Path
) -> None:
    (tmp_path / "unlabelled.csv").write_text("39, ?\n40, clerk\n")
    frame = recorded_format(version).read(tmp_path / "unlabelled.csv")
    assert list(frame.columns) == ["age", "job"]
    assert frame["job"].isna().tolist() == [True, False]


@pytest.mark.parametrize(("line", "fields"), [("39\n", 1), ("39, clerk, >50K., extra\n", 4)])
def test_a_headerless_file_whose_fields_do_not_fit_the_names_is_refused(
    version: Path, tmp_path: Path, line: str, fields: int
) -> None:
    (tmp_path / "odd.csv").write_text(line)
    with pytest.raises(DataError) as error:
        recorded_format(version).read(tmp_path / "odd.csv")
    message = str(error.value)
    assert f"odd.csv: its first record has {fields} fields" in message
    assert "3 columns of the training file (age, job, income)" in message
    assert "--csv names=" in message


def test_the_weight_may_be_left_out_too_but_only_after_the_features(tmp_path: Path) -> None:
    folder = tmp_path / "weighted"
    folder.mkdir()
    (folder / "config.yaml").write_text(
        "data:\n  train:\n    path: t.csv\n    csv: {header: false, names: [age, income, w]}\n"
        "  target: income\n  weight: w\n"
    )
    (tmp_path / "one.csv").write_text("39\n")
    assert list(recorded_format(folder).read(tmp_path / "one.csv").columns) == ["age"]
    (tmp_path / "two.csv").write_text("39, >50K\n")
    assert list(recorded_format(folder).read(tmp_path / "two.csv").columns) == ["age", "income"]


def test_an_old_version_without_a_config_reads_with_the_defaults(tmp_path: Path) -> None:
    fmt = recorded_format(tmp_path)
    assert fmt.csv.header is True
    assert fmt.recode == {}


def test_bad_overrides_name_the_option() -> None:
    assert parse_csv_overrides(["na_values=?,-", "skip_rows=1"]) == {"na_values": ["?", "-"], "skip_rows": "1"}
    with pytest.raises(ConfigError, match="no CSV option 'sep'"):
        parse_csv_overrides(["sep=;"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_csv_overrides(["header"])
