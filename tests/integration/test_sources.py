from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from keel.config import SourceConfig
from keel.errors import DataError, IntegrityError
from keel.io.sources import cache_dir, download, resolve_source
from tests.http_files import FileServer, serving_files

PAYLOAD = b"a,b,label\n" + b"".join(f"{i},{i * 2},{i % 2}\n".encode() for i in range(5000))
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FileServer]:
    root = tmp_path_factory.mktemp("served")
    (root / "data.csv").write_bytes(PAYLOAD)
    with serving_files(root) as running:
        yield running


@pytest.fixture
def server(files: FileServer) -> str:
    return files.url


def test_download_is_verified_cached_and_reused(files: FileServer, server: str, tmp_path: Path) -> None:
    first = download(f"{server}/data.csv", SHA)
    assert first.read_bytes() == PAYLOAD
    assert str(first).startswith(str(cache_dir() / "downloads"))
    second = download(f"{server}/data.csv", SHA)
    assert second == first
    assert files.hits == ["/data.csv"]


def test_checksum_mismatch_deletes_the_file_and_says_so(server: str, tmp_path: Path) -> None:
    with pytest.raises(IntegrityError) as error:
        download(f"{server}/data.csv", "0" * 64)
    assert "does not match its sha256" in str(error.value)
    assert "deleted" in str(error.value)
    assert not [p for p in (cache_dir() / "downloads").rglob("*") if p.is_file()]


def test_interrupted_download_never_becomes_a_cache_hit(server: str, tmp_path: Path) -> None:
    with pytest.raises(DataError):
        download(f"{server}/cut/data.csv", SHA)
    assert not [p for p in (cache_dir() / "downloads").rglob("*") if p.is_file()]
    assert download(f"{server}/data.csv", SHA).read_bytes() == PAYLOAD


def test_a_corrupted_cache_entry_is_downloaded_again(files: FileServer, server: str) -> None:
    cached = download(f"{server}/data.csv", SHA)
    cached.write_bytes(b"corrupt")
    assert download(f"{server}/data.csv", SHA).read_bytes() == PAYLOAD
    assert len(files.hits) == 2


def test_http_errors_are_data_errors(server: str) -> None:
    with pytest.raises(DataError, match="could not download"):
        download(f"{server}/missing.csv", SHA)


def test_local_file_under_the_data_dir_wins_over_the_url(
    files: FileServer, server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "local.csv").write_bytes(b"x\n1\n")
    source = SourceConfig(path="sub/local.csv", url=f"{server}/data.csv", sha256=SHA)
    monkeypatch.setenv("KEEL_DATA_DIR", str(tmp_path))
    assert resolve_source(source).origin == "local"
    monkeypatch.setenv("KEEL_DATA_DIR", str(tmp_path / "elsewhere"))
    resolved = resolve_source(source)
    assert resolved.origin == "download"
    assert files.hits == ["/data.csv"]


def test_a_missing_local_file_says_where_it_looked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError) as error:
        resolve_source(SourceConfig(path="covertype/nope.csv"))
    assert str(tmp_path / "covertype" / "nope.csv") in str(error.value)
    assert "KEEL_DATA_DIR" in str(error.value)
