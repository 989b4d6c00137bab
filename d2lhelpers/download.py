"""Verified downloads and safe zip extraction.

``download`` fetches a file over HTTP(S) from the first of its URLs (mirrors first, say) that
serves it, with retries, checks its SHA-1 while streaming and only ever puts a verified file at
its destination. ``extract_zip`` unpacks an archive whose members
live under one top folder, refusing unsafe members, so that the top folder appears complete or
not at all; the last file it writes there is a manifest of every member's name and size
(:data:`MANIFEST_NAME`), by which :func:`extraction_problem` later verifies the folder without
the archive (which may have been deleted, or never copied to a read-only mount).
"""

from __future__ import annotations

import functools
import glob
import hashlib
import http.client
import json
import os
import re
import shutil
import stat
import tempfile
import time
import urllib.error
import urllib.request
import warnings
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from tqdm.auto import tqdm

from .checks import non_negative_finite, non_negative_int, positive_finite
from .environment import DATA_SOURCE_ENV
from .fileutil import atomic_write, exclusive, move_into_place, remove_leftovers, umask_mode

__all__ = [
    "ChecksumError",
    "CorruptArchiveError",
    "DownloadError",
    "UnsafeArchiveError",
    "download",
    "extract_zip",
    "extraction_problem",
    "sha1_of",
]

_CHUNK_SIZE = 1 << 16
_USER_AGENT = "d2lhelpers-download/1.0 (+urllib)"
_SHA1_RE = re.compile(r"[0-9a-f]{40}")
_DRIVE_RE = re.compile(r"[A-Za-z]:")
_JUNK_TOP_LEVEL = ("__MACOSX",)
MANIFEST_NAME = ".d2lhelpers-extracted.json"
"""Written last into an extracted folder: ``{"files": {relative POSIX path: size}}``."""


class DownloadError(RuntimeError):
    """A download failed: network errors after all retries, an HTTP error, or no network."""


class ChecksumError(ValueError):
    """A file's SHA-1 differs from the expected one."""


class UnsafeArchiveError(ValueError):
    """An archive member would be written outside its folder, or is a link."""


class CorruptArchiveError(ValueError):
    """An archive is not a readable zip, fails its CRC checks, or lacks the expected folder."""


_NETWORK_ERRORS = (urllib.error.URLError, ConnectionError, TimeoutError, http.client.IncompleteRead)


class _TruncatedResponseError(ConnectionError):
    """The server closed the connection before sending the whole body."""


class _TooSlowError(TimeoutError):
    """The body arrived slower than the minimum rate."""


# --------------------------------------------------------------------------------------------
# Hashing
# --------------------------------------------------------------------------------------------


def sha1_of(path: Path, chunk_size: int = 1 << 20) -> str:
    """Return the SHA-1 of the file at ``path`` as 40 lowercase hex characters."""
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _normalise_sha1(sha1: str) -> str:
    """Return ``sha1`` in lowercase, or raise ValueError if it is not 40 hex characters."""
    normalised = sha1.lower() if isinstance(sha1, str) else ""
    if not _SHA1_RE.fullmatch(normalised):
        raise ValueError(f"Expected a SHA-1 of 40 hex characters, got {sha1!r}.")
    return normalised


# --------------------------------------------------------------------------------------------
# Download
# --------------------------------------------------------------------------------------------


def download(
    urls: str | Sequence[str],
    dest: Path,
    sha1: str,
    *,
    retries: int = 3,
    backoff: float = 1.0,
    timeout: float = 10.0,
    min_rate: float = 1024.0,
    progress: bool = True,
    remedies: Sequence[str] = (),
) -> Path:
    """Download the file from the first of ``urls`` that serves it to ``dest``, verify its
    SHA-1 and return ``dest``.

    A file already at ``dest`` with the right SHA-1 is returned without network access; one with
    a wrong SHA-1 is deleted (with a warning) and downloaded again. The body is streamed into a
    temporary ``.part`` file next to ``dest`` that is moved onto ``dest`` only once verified, so
    ``dest`` never holds an unverified file. The download holds a lock (``<dest>.lock``), so two
    processes do not fetch the same file at once, and removes the ``.part`` files of killed runs.
    Connection errors, truncated bodies, HTTP 5xx and 429 are retried ``retries`` more times,
    waiting ``backoff * 2**attempt`` seconds. A URL that still fails, or serves a file with
    another SHA-1, is reported in a warning and the next URL is tried.

    ``timeout`` bounds connecting and each wait for data, and the body must arrive at
    ``min_rate`` bytes per second or faster over every ``timeout`` seconds (0 disables that
    check), so a server that trickles fails too. With the defaults a server that accepts the
    connection and never answers fails after 4 x 10 s + 7 s of back-off.

    ``remedies``: more ways to get the file (say, a setting for a mirror), each one line of the
    error's list of what to do, before putting the file in place by hand and the stand-in.

    Raises:
        ValueError: ``sha1`` is not 40 hex characters, ``urls`` is empty, or an option is out
            of range.
        ChecksumError: every URL failed, and one served a file with a different SHA-1.
        DownloadError: every URL failed to serve a file.
    """
    urls = [urls] if isinstance(urls, str) else list(urls)
    if not urls:
        raise ValueError(f"Expected at least one URL to download {Path(dest).name} from.")
    expected = _normalise_sha1(sha1)
    retries = non_negative_int("retries", retries)
    backoff = non_negative_finite("backoff", backoff)
    timeout = positive_finite("timeout", timeout)
    rate = _Rate(non_negative_finite("min_rate", min_rate), timeout)
    dest = Path(dest)
    if _verified(dest, expected):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(dest.with_name(dest.name + ".lock")):
        if _verified(dest, expected):  # another process downloaded it meanwhile
            return dest
        remove_leftovers(dest.parent, f"{glob.escape(dest.name)}.*.part")  # of killed runs
        fetch = functools.partial(
            _download_with_retries,
            dest=dest, expected=expected, retries=retries, backoff=backoff, rate=rate,
            progress=progress,
        )  # fmt: skip
        try:
            return _first_that_serves(urls, fetch)
        except (DownloadError, ChecksumError) as err:
            raise _what_to_do(err, dest, expected, remedies) from err.__cause__


def _first_that_serves(urls: list[str], fetch: Callable[[str], Path]) -> Path:
    """``fetch(url)`` for each URL in turn until one succeeds; warn of each failure before the
    next URL. When all fail, raise the last failure, or a ChecksumError if there was one,
    listing every URL's failure."""
    failures: list[DownloadError | ChecksumError] = []
    for i, url in enumerate(urls):
        try:
            return fetch(url)
        except (DownloadError, ChecksumError) as err:
            failures.append(err)
            if i + 1 < len(urls):
                warnings.warn(f"{err} Trying the next URL.", stacklevel=3)
    if len(failures) == 1:
        raise failures[0]
    kind = ChecksumError if any(isinstance(f, ChecksumError) for f in failures) else DownloadError
    listed = "\n".join(f"  - {failure}" for failure in failures)
    raise kind(f"None of the {len(urls)} URLs served the file:\n{listed}") from failures[-1]


def _what_to_do(
    err: DownloadError | ChecksumError, dest: Path, expected: str, remedies: Sequence[str]
) -> DownloadError | ChecksumError:
    """``err`` (of the same class), followed by the ways to get the file without the network."""
    ways = [
        *remedies,
        f"put the file at {dest} by hand (its SHA-1 must be {expected}), or",
        f"use the offline stand-in data: set the environment variable {DATA_SOURCE_ENV}=standin.",
    ]
    why = (
        "A file with another SHA-1 is not the expected one (or was damaged on the way): "
        "try again later."
        if isinstance(err, ChecksumError)
        else "You may be offline or behind a firewall, or the URL may have changed."
    )
    listed = "\n".join(f"  - {way}" for way in ways)
    return type(err)(f"{err}\n{why} Otherwise you can\n{listed}")


def _verified(dest: Path, expected: str) -> bool:
    """True when ``dest`` holds the file; a file with another SHA-1 is deleted, with a warning."""
    if not dest.is_file():
        return False
    actual = sha1_of(dest)
    if actual == expected:
        return True
    warnings.warn(
        f"{dest} has SHA-1 {actual}, expected {expected}; deleting it and downloading again.",
        stacklevel=3,
    )
    dest.unlink()
    return False


@dataclass(frozen=True)
class _Rate:
    """The slowest a download may be: ``minimum`` bytes/s over every ``window`` seconds, which
    is also the timeout of connecting and of each read."""

    minimum: float
    window: float


def _download_with_retries(
    url: str,
    *,
    dest: Path,
    expected: str,
    retries: int,
    backoff: float,
    rate: _Rate,
    progress: bool,
) -> Path:
    """Call ``_fetch_once`` until it succeeds, retrying only transient failures."""
    for attempt in range(retries + 1):
        try:
            return _fetch_once(url, dest, expected, rate, progress)
        except _NETWORK_ERRORS as err:
            if isinstance(err, urllib.error.HTTPError):
                err.close()
            if not _is_transient(err) or attempt == retries:
                tries = f"{attempt + 1} attempt{'s' if attempt else ''}"
                raise DownloadError(
                    f"Could not download {url} ({tries}); last error: {err!r}."
                ) from err
        time.sleep(backoff * 2**attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def _is_transient(err: BaseException) -> bool:
    """True for failures worth retrying: network-level errors, HTTP 5xx and 429.

    A URLError counts only when its reason is socket-level (an OSError).
    """
    if isinstance(err, urllib.error.HTTPError):
        return err.code >= 500 or err.code == 429
    if isinstance(err, urllib.error.URLError):
        return isinstance(err.reason, OSError)
    return isinstance(err, (ConnectionError, TimeoutError, http.client.IncompleteRead))


def _fetch_once(url: str, dest: Path, expected: str, rate: _Rate, progress: bool) -> Path:
    """Stream ``url`` into a ``.part`` file beside ``dest``; move it onto ``dest`` if verified."""
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    part: Path | None = None
    try:
        with (
            urllib.request.urlopen(request, timeout=rate.window) as response,
            tempfile.NamedTemporaryFile(
                dir=dest.parent, prefix=dest.name + ".", suffix=".part", delete=False
            ) as out,
        ):
            part = Path(out.name)
            total = _content_length(response)
            actual = _stream(response, out, total, rate, progress, dest.name)
            out.flush()
            os.fsync(out.fileno())
        if actual != expected:
            raise ChecksumError(
                f"SHA-1 mismatch for {dest.name} downloaded from {url}: expected {expected}, "
                f"got {actual}; the file was discarded and {dest} was not written."
            )
        umask_mode(part)  # NamedTemporaryFile makes it private
        os.replace(part, dest)
        part = None
    finally:
        if part is not None:
            part.unlink(missing_ok=True)
    return dest


def _content_length(response: http.client.HTTPResponse) -> int | None:
    """Return the Content-Length header as an int, or None when absent or invalid."""
    value = response.headers.get("Content-Length")
    try:
        length = int(value) if value is not None else None
    except ValueError:
        return None
    return length if length is not None and length >= 0 else None


def _stream(
    response: http.client.HTTPResponse,
    out: BinaryIO,
    total: int | None,
    rate: _Rate,
    progress: bool,
    desc: str,
) -> str:
    """Copy ``response`` to ``out`` with a progress bar; return the SHA-1 of what was copied.

    Raises _TooSlowError when a window of ``rate.window`` seconds brings fewer than
    ``rate.minimum * rate.window`` bytes. ``read1`` returns what one read brings, so a trickle
    is seen as it comes.
    """
    digest = hashlib.sha1()
    received = 0
    window_start, window_bytes = time.monotonic(), 0
    with tqdm(
        total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, disable=not progress
    ) as bar:
        for chunk in iter(lambda: response.read1(_CHUNK_SIZE), b""):
            out.write(chunk)
            digest.update(chunk)
            received += len(chunk)
            bar.update(len(chunk))
            elapsed = time.monotonic() - window_start
            if elapsed >= rate.window:
                if received - window_bytes < rate.minimum * elapsed:
                    raise _TooSlowError(
                        f"too slow: {(received - window_bytes) / elapsed:.0f} bytes/s over "
                        f"{elapsed:.1f} s, below min_rate={rate.minimum:g} bytes/s"
                    )
                window_start, window_bytes = time.monotonic(), received
    if total is not None and received != total:
        raise _TruncatedResponseError(f"response truncated: received {received} of {total} bytes")
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# Extraction
# --------------------------------------------------------------------------------------------


def extract_zip(archive: Path, dest_dir: Path, top: str) -> Path:
    """Extract the folder ``top`` of the zip ``archive`` to ``dest_dir / top``; return that path.

    A ``dest_dir / top`` that :func:`extraction_problem` verifies is returned at once, without
    reading ``archive``. Otherwise, holding a lock, every member is checked first (no absolute
    paths, no ``..``, no links, nothing outside ``top/`` except ``__MACOSX/`` junk, which is
    skipped), the members are written into a fresh temporary folder inside ``dest_dir``
    followed by the manifest, and ``top`` is then renamed into place, replacing a folder that
    failed verification (half extracted, or by hand), so ``dest_dir / top`` only ever exists
    complete. Temporary folders, this run's and those of killed runs, are removed.

    Raises:
        ValueError: ``top`` is not a plain folder name.
        UnsafeArchiveError: a member is unsafe or outside ``top/``.
        CorruptArchiveError: the file is not a zip, fails a CRC check, or lacks ``top``.
    """
    archive, dest_dir = Path(archive), Path(dest_dir)
    _check_top(top)
    target = dest_dir / top
    if extraction_problem(target) is None:
        return target
    dest_dir.mkdir(parents=True, exist_ok=True)
    with exclusive(dest_dir / f".{top}.lock"):
        if extraction_problem(target) is None:  # another run finished it meanwhile
            return target
        remove_leftovers(dest_dir, f".{top}-extract-*")
        tmp = Path(tempfile.mkdtemp(dir=dest_dir, prefix=f".{top}-extract-"))
        try:
            sizes = _extract_into(archive, tmp, top)
            manifest = json.dumps({"files": sizes}, sort_keys=True).encode()
            atomic_write(tmp / top / MANIFEST_NAME, lambda f: f.write(manifest))
            if target.exists():
                os.rename(target, tmp / "unverified")  # removed with tmp
            move_into_place(tmp / top, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def extraction_problem(folder: Path) -> str | None:
    """None when ``folder`` holds every file its manifest lists, with the listed size; else why not.

    The manifest is what :func:`extract_zip` wrote last; a folder without one (extracted by
    hand, or by a run that was killed) is not verified.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return f"{folder} does not exist"
    try:
        sizes = json.loads((folder / MANIFEST_NAME).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"{folder} has no readable extraction manifest {MANIFEST_NAME}"
    for relative, size in sizes.items():
        path = folder / relative
        try:
            actual = path.stat().st_size
        except OSError:
            return f"{path} is missing"
        if actual != size:
            return f"{path} has {actual} bytes, the archive's member {size}"
    return None


def _check_top(top: str) -> None:
    """Raise ValueError unless ``top`` is a single, plain path component."""
    if not top or top in {".", ".."} or "/" in top or "\\" in top or _DRIVE_RE.match(top):
        raise ValueError(f"top must be a plain folder name, got {top!r}.")


def _corrupt_message(archive: Path, err: BaseException) -> str:
    """Explain that ``archive`` is unreadable and how to recover."""
    return (
        f"{archive} is not a valid zip archive or is corrupt ({err}). "
        "Delete it and download it again."
    )


def _extract_into(archive: Path, tmp: Path, top: str) -> dict[str, int]:
    """Validate all members of ``archive``, then write them under ``tmp``; return the files'
    sizes by path relative to ``tmp / top``."""
    try:
        with zipfile.ZipFile(archive) as zf:
            plan = _plan_members(zf, archive, top)
            root = tmp.resolve()
            (root / top).mkdir()
            for info, relative in plan:
                _write_member(zf, info, root, relative, archive)
            return {
                PurePosixPath(*relative.parts[1:]).as_posix(): info.file_size
                for info, relative in plan
                if not info.is_dir()
            }
    except (zipfile.BadZipFile, zlib.error, EOFError) as err:
        raise CorruptArchiveError(_corrupt_message(archive, err)) from err


def _plan_members(
    zf: zipfile.ZipFile, archive: Path, top: str
) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """Check every member and return those to write, with their safe relative paths."""
    plan: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
    outside: list[str] = []
    found: set[str] = set()
    for info in zf.infolist():
        parts = _safe_parts(info, archive)
        if not parts or parts[0] in _JUNK_TOP_LEVEL:
            continue
        found.add(parts[0])
        if parts[0] != top:
            outside.append(info.filename)
        elif len(parts) > 1:
            plan.append((info, PurePosixPath(*parts)))
        elif not info.is_dir():
            outside.append(info.filename)  # a file named like the top folder
    if top not in found:
        listed = ", ".join(sorted(found)) or "none"
        raise CorruptArchiveError(
            f"{archive} has no top-level folder {top!r} (found: {listed}). "
            "Delete it and download it again."
        )
    if outside:
        raise UnsafeArchiveError(f"{archive}: member {outside[0]!r} is outside {top + '/'!r}.")
    return plan


def _safe_parts(info: zipfile.ZipInfo, archive: Path) -> list[str]:
    """Return the path components of ``info``, or raise UnsafeArchiveError if it is unsafe."""
    name = info.filename.replace("\\", "/")
    if name.startswith("/") or _DRIVE_RE.match(name):
        raise UnsafeArchiveError(f"{archive}: member {info.filename!r} has an absolute path.")
    parts = [part for part in name.split("/") if part not in {"", "."}]
    if ".." in parts:
        raise UnsafeArchiveError(f"{archive}: member {info.filename!r} contains '..'.")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise UnsafeArchiveError(f"{archive}: member {info.filename!r} is a symbolic link.")
    return parts


def _write_member(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, root: Path, relative: PurePosixPath, archive: Path
) -> None:
    """Write one validated member below ``root`` (a resolved path)."""
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        raise UnsafeArchiveError(f"{archive}: member {info.filename!r} resolves outside {root}.")
    if info.is_dir():
        path.mkdir(parents=True, exist_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with zf.open(info) as src, open(path, "wb") as dst:
        shutil.copyfileobj(src, dst, _CHUNK_SIZE)
