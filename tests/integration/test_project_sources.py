"""The example projects' real sources, served by a local HTTP server on 127.0.0.1 (never the real network).

Each test points a project config's `url` at the local server holding copies of the shared files (the bikes zip
is built the way the UCI archive ships it) and removes the local `path`, so the download path is what runs: the
checksum in the config is verified, a mismatch or an interrupted transfer never becomes a cache entry, and a
second load is served from the cache.
"""

from __future__ import annotations

import gzip
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from keel.application.dataset import load_data
from keel.config import load_config
from keel.errors import DataError, IntegrityError
from keel.io.sources import cache_dir
from tests.http_files import FileServer, serving_files

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def files(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FileServer]:
    """A local server holding the shared files, and the bikes data zipped as UCI serves it."""
    root = tmp_path_factory.mktemp("served")
    shutil.copytree(shared_data / "madewithml", root / "madewithml")
    (root / "tennis_atp").mkdir()
    for year in (2023, 2024):
        shutil.copy(shared_data / "tennis_atp" / f"atp_matches_{year}.csv", root / "tennis_atp")
    with zipfile.ZipFile(root / "bike+sharing+dataset.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("Readme.txt", "Bike Sharing Dataset\n")
        archive.writestr("day.csv", "instant,cnt\n1,985\n")
        archive.writestr("hour.csv", gzip.decompress((shared_data / "bikes" / "hour.csv.gz").read_bytes()))
    with serving_files(root) as running:
        yield running


@pytest.fixture
def served(files: FileServer) -> str:
    """The server's URL, with its record of requests emptied for this test."""
    files.hits.clear()
    return files.url


@pytest.fixture(autouse=True)
def _no_local_data(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KEEL_DATA_DIR", raising=False)


def _config(name: str, *overrides: str) -> object:
    return load_config([REPO / "configs" / f"{name}.yaml"], ["data.train.path=null", *overrides])


def _tags(served: str, *overrides: str) -> object:
    """The tags config with both sources on the local server (the test file too: never the real network)."""
    return _config("tags", f"data.train.url={served}/madewithml/dataset.csv", "data.test.path=null",
                   f"data.test.url={served}/madewithml/holdout.csv", *overrides)  # fmt: skip


def test_a_download_matching_the_configs_checksum_is_read_and_cached(
    files: FileServer, served: str, tmp_path: Path
) -> None:
    loaded = _tags(served)
    data = load_data(loaded)  # type: ignore[arg-type]
    assert data.test is not None
    assert (len(data.train), len(data.test)) == (764, 191)
    assert data.sources["train"].origin == "download"
    assert data.fingerprint["dataset.csv"] == "479e0f3813cc0583717b86512d112b0a397f717ac33652504afdf763c1f3aff1"
    assert sorted(files.hits) == ["/madewithml/dataset.csv", "/madewithml/holdout.csv"]
    again = load_data(loaded)  # type: ignore[arg-type]
    assert len(again.train) == 764
    assert len(files.hits) == 2, "the second load must come from the cache"


def test_a_checksum_mismatch_is_refused_and_leaves_no_cache_entry(served: str, tmp_path: Path) -> None:
    loaded = _tags(served, f"data.train.sha256={'ab' * 32}")
    with pytest.raises(IntegrityError, match="does not match its sha256"):
        load_data(loaded)  # type: ignore[arg-type]
    assert not any(p.is_file() for p in cache_dir().rglob("dataset.csv"))


def test_an_interrupted_download_fails_clearly_and_a_retry_succeeds(served: str, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cut short"):
        load_data(_tags(served, f"data.train.url={served}/cut/madewithml/dataset.csv"))  # type: ignore[arg-type]
    assert not any(p.is_file() for p in cache_dir().rglob("dataset.csv"))
    data = load_data(_tags(served))  # type: ignore[arg-type]
    assert len(data.train) == 764


def test_the_bikes_csv_is_read_from_inside_the_uci_zip(files: FileServer, served: str, tmp_path: Path) -> None:
    loaded = _config("bikes", f"data.train.url={served}/bike+sharing+dataset.zip")
    data = load_data(loaded)  # type: ignore[arg-type]
    assert len(data.train) == 17_379
    assert {"casual", "registered", "cnt"} <= set(data.train.columns)
    assert load_data(loaded).train.shape == data.train.shape  # type: ignore[arg-type]
    assert files.hits == ["/bike+sharing+dataset.zip"], "the extracted member is cached"
    with pytest.raises(DataError, match=r"no file 'hours.csv'.*Readme.txt, day.csv, hour.csv"):
        load_data(_config("bikes", f"data.train.url={served}/bike+sharing+dataset.zip", "data.train.member=hours.csv"))  # type: ignore[arg-type]


def test_a_wrong_member_checksum_is_refused(served: str) -> None:
    loaded = _config("bikes", f"data.train.url={served}/bike+sharing+dataset.zip", f"data.train.sha256={'cd' * 32}")
    with pytest.raises(IntegrityError, match=r"hour.csv in .* does not match its sha256"):
        load_data(loaded)  # type: ignore[arg-type]


def test_tennis_years_are_downloaded_one_file_each_and_replayed(files: FileServer, served: str) -> None:
    loaded = _config("tennis", f"data.train.url={served}/tennis_atp/atp_matches_{{year}}.csv",
                     "data.train.years=[2023,2024]")  # fmt: skip
    data = load_data(loaded)  # type: ignore[arg-type]
    assert sorted(files.hits) == ["/tennis_atp/atp_matches_2023.csv", "/tennis_atp/atp_matches_2024.csv"]
    assert set(data.fingerprint) == {"atp_matches_2023.csv", "atp_matches_2024.csv"}
    assert set(data.train["season"]) == {2023, 2024}
    assert set(data.recipe_tables) == {"players", "head_to_head"}
