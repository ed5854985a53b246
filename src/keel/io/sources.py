"""Finding data files: packaged files, local paths under a data directory, and checksummed downloads.

A download goes to a temporary file beside its cache entry, is hashed while it streams, and is renamed into place
only when its sha256 matches; a partial or corrupt download therefore never becomes a cache hit.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from urllib.parse import urlparse

from keel.config import SourceConfig, data_dir_from_env
from keel.errors import DataError, IntegrityError

log = logging.getLogger(__name__)

PACKAGE_PREFIX = "package:"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ResolvedSource:
    """A source resolved to a file (or folder) on this machine.

    Attributes:
        path: Local file or folder to read.
        label: What to call it in messages (the path as configured, or the URL).
        origin: ``package``, ``local`` or ``download``.
    """

    path: Path
    label: str
    origin: str


def cache_dir() -> Path:
    """Folder for downloaded files: ``KEEL_CACHE_DIR``, else ``$XDG_CACHE_HOME/keel``, else ``~/.cache/keel``."""
    explicit = os.environ.get("KEEL_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "keel"


def resolve_source(
    source: SourceConfig, *, data_dir: str | Path | None = None, base_dir: Path | None = None
) -> ResolvedSource:
    """Find the file a source names, downloading it when it is only available remotely.

    Args:
        source: The configured source.
        data_dir: The configuration's ``data.data_dir``; ``KEEL_DATA_DIR`` wins over it.
        base_dir: Folder relative paths fall back to when no data directory is set (the config file's folder).

    Returns:
        The local file or folder.

    Raises:
        DataError: The file is nowhere to be found, or the download failed.
        IntegrityError: The downloaded file does not match ``sha256``.
    """
    if source.years is not None:
        raise ValueError("a source with `years` stands for several files; resolve each of source.per_year()")
    tried: list[str] = []
    if source.path is not None:
        if source.path.startswith(PACKAGE_PREFIX):
            return ResolvedSource(_packaged_file(source.path), source.path, "package")
        for candidate in _candidates(source.path, data_dir, base_dir):
            if candidate.exists() or _glob_files(candidate):
                if source.member is not None and candidate.suffix.lower() == ".zip":
                    return ResolvedSource(extract_member(candidate, source.member), source.path, "local")
                return ResolvedSource(candidate, source.path, "local")
            tried.append(str(candidate))
    if source.url is not None:
        if not isinstance(source.sha256, str):  # SourceConfig requires it with a url; checked again before downloading
            raise IntegrityError(f"{source.url}: no sha256 is configured, so the download cannot be verified")
        if source.member is not None:
            label = f"{source.url} ({source.member})"
            return ResolvedSource(download_member(source.url, source.member, source.sha256), label, "download")
        return ResolvedSource(download(source.url, source.sha256), source.url, "download")
    where = "; tried " + ", ".join(tried) if tried else ""
    raise DataError(
        f"data file {source.path!r} not found{where}. Set KEEL_DATA_DIR (or data.data_dir) to the folder that "
        "holds it, or give an absolute path."
    )


def _candidates(path: str, data_dir: str | Path | None, base_dir: Path | None) -> list[Path]:
    given = Path(path).expanduser()
    if given.is_absolute():
        return [given]
    env_dir = data_dir_from_env()
    if env_dir is not None:
        return [env_dir / given]
    if data_dir is not None:
        configured = Path(data_dir).expanduser()
        if not configured.is_absolute() and base_dir is not None:
            configured = base_dir / configured
        return [configured / given]
    found = [Path.cwd() / given]
    if base_dir is not None and base_dir.resolve() != Path.cwd().resolve():
        found.append(base_dir / given)
    return found


def _packaged_file(spec: str) -> Path:
    relative = spec.removeprefix(PACKAGE_PREFIX).strip("/")
    resource = resources.files("keel") / "data" / relative
    if not resource.is_file():
        raise DataError(f"{spec}: no such file is packaged with keel (packaged data lives in keel/data/)")
    # Packages installed from a wheel live on the file system; keel is never imported from a zip.
    return Path(str(resource))


def download(url: str, sha256: str, *, timeout: float = 60.0) -> Path:
    """Download ``url`` into the cache once and return the cached file.

    Args:
        url: HTTP(S) address.
        sha256: Expected sha256 of the file's bytes (hex).
        timeout: Seconds to wait for the server at each step.

    Returns:
        Path of the verified cached file.

    Raises:
        DataError: The server could not be reached or answered with an error.
        IntegrityError: The bytes received do not match ``sha256`` (the file is deleted).
    """
    expected = sha256.lower()
    name = Path(urlparse(url).path).name or "download"
    target = cache_dir() / "downloads" / expected / name
    if target.is_file():
        if file_sha256(target) == expected:
            log.info("using cached %s", target)
            return target
        log.warning("cached %s does not match its sha256; downloading it again", target)
        target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s", url)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{name}.", suffix=".part")
    digest = hashlib.sha256()
    try:
        with os.fdopen(handle, "wb") as out:
            request = urllib.request.Request(url, headers={"User-Agent": "keel"})  # noqa: S310 - http(s) only
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                expected_length = response.headers.get("Content-Length")
                received = 0
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
            if expected_length is not None and received != int(expected_length):
                raise DataError(
                    f"download of {url} was cut short: received {received:,} of {int(expected_length):,} bytes; "
                    "run again to retry"
                )
        actual = digest.hexdigest()
        if actual != expected:
            raise IntegrityError(
                f"download of {url} does not match its sha256: expected {expected}, got {actual}. The file was "
                "deleted; check the URL and the `sha256` in the config."
            )
        os.replace(temporary, target)
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(exc, DataError | IntegrityError):
            raise
        raise DataError(f"could not download {url}: {exc}; check the network or use a local copy") from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def download_member(url: str, member: str, sha256: str, *, timeout: float = 60.0) -> Path:
    """Download a zip archive and keep one file from it, checked against ``sha256``, in the cache.

    The checksum is the member's, not the archive's: the file that is read is what gets verified, and a re-packed
    archive holding the same file still matches. The archive itself is deleted once the member is extracted.

    Args:
        url: HTTP(S) address of a zip archive.
        member: Path of the file inside the archive (e.g. ``hour.csv``).
        sha256: Expected sha256 of the member's bytes (hex).
        timeout: Seconds to wait for the server at each step.

    Returns:
        Path of the verified cached member.

    Raises:
        DataError: The download failed, or the archive is not a zip or lacks ``member``.
        IntegrityError: The member's bytes do not match ``sha256`` (nothing is cached).
    """
    expected = sha256.lower()
    target = cache_dir() / "downloads" / expected / Path(member).name
    if target.is_file() and file_sha256(target) == expected:
        log.info("using cached %s", target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s", url)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".archive-") as scratch:
        archive = Path(scratch) / "archive.zip"
        try:
            with (
                urllib.request.urlopen(  # noqa: S310 - http(s) only, checked by SourceConfig
                    urllib.request.Request(url, headers={"User-Agent": "keel"}),  # noqa: S310
                    timeout=timeout,
                ) as response,
                archive.open("wb") as out,
            ):
                expected_length = response.headers.get("Content-Length")
                received = 0
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    received += len(chunk)
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
            raise DataError(f"could not download {url}: {exc}; check the network or use a local copy") from None
        if expected_length is not None and received != int(expected_length):
            raise DataError(
                f"download of {url} was cut short: received {received:,} of {int(expected_length):,} bytes; "
                "run again to retry"
            )
        extracted = _extract_to(archive, member, Path(scratch), label=url)
        actual = file_sha256(extracted)
        if actual != expected:
            raise IntegrityError(
                f"{member} in {url} does not match its sha256: expected {expected}, got {actual}. Nothing was "
                "cached; check the URL, `member` and the `sha256` in the config."
            )
        os.replace(extracted, target)
    return target


def extract_member(archive: Path, member: str) -> Path:
    """Extract one file of a local zip archive into the cache (once per archive content) and return it.

    Raises:
        DataError: The file is not a zip archive or lacks ``member``.
    """
    target = cache_dir() / "extracted" / file_sha256(archive) / Path(member).name
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".extract-") as scratch:
        os.replace(_extract_to(archive, member, Path(scratch), label=str(archive)), target)
    return target


def _extract_to(archive: Path, member: str, folder: Path, *, label: str) -> Path:
    import zipfile

    try:
        with zipfile.ZipFile(archive) as handle:
            names = handle.namelist()
            if member not in names:
                matches = [n for n in names if n.endswith("/" + member)]
                if len(matches) != 1:
                    raise DataError(
                        f"{label}: the archive has no file {member!r}; it holds {', '.join(names[:20])}. "
                        "Set `member` to one of them."
                    )
                member = matches[0]
            out = folder / "member.part"
            with handle.open(member) as source, out.open("wb") as sink:
                while chunk := source.read(_CHUNK):
                    sink.write(chunk)
    except zipfile.BadZipFile:
        raise DataError(f"{label}: not a zip archive, so `member` cannot be read from it") from None
    return out


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprint(paths: Iterable[Path]) -> dict[str, str]:
    """sha256 of every file behind the given paths (folders are walked, glob patterns expanded), keyed by file name."""
    return {key: file_sha256(file) for key, file in fingerprint_files(paths).items()}


def fingerprint_files(paths: Iterable[Path]) -> dict[str, Path]:
    """The files :func:`fingerprint` hashes, keyed as it keys them (relative to the folder above each path)."""
    result: dict[str, Path] = {}
    for path in paths:
        files = _glob_files(path)
        if files:
            # Keyed like a folder's files, from the pattern's last folder without wildcards.
            path = next(p for p in path.parents if not _is_pattern(p))
        elif path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())
        else:
            files = [path]
        for file in files:
            result[str(file.relative_to(path.parent))] = file
    return result


def _is_pattern(path: Path) -> bool:
    return any(ch in str(path) for ch in "*?[")


def _glob_files(path: Path) -> list[Path]:
    """The files a glob pattern matches (sorted); empty when ``path`` is not a pattern."""
    import glob

    if not _is_pattern(path):
        return []
    return sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
