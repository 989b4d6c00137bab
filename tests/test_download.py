"""Tests for d2lhelpers.download against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import http.server
import inspect
import io
import json
import os
import socket
import stat
import time
import zipfile
from pathlib import Path

import pytest
from http_server import Reply, Server, running

from d2lhelpers import download as dl
from d2lhelpers.download import (
    MANIFEST_NAME,
    ChecksumError,
    CorruptArchiveError,
    DownloadError,
    UnsafeArchiveError,
    download,
    extract_zip,
    extraction_problem,
    sha1_of,
)

FAST = {"backoff": 0.01, "timeout": 5.0, "progress": False}
NO_BAR = {"retries": 0, "progress": False}
TREE = {
    "hotdog/train/hotdog/0.png": b"train-hotdog-0",
    "hotdog/train/not-hotdog/0.png": b"train-not-hotdog-0",
    "hotdog/test/hotdog/0.png": b"test-hotdog-0" * 1000,
    "hotdog/test/not-hotdog/0.png": b"test-not-hotdog-0",
}


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def zip_bytes(members: dict[str, bytes], extra: list[zipfile.ZipInfo] | None = None) -> bytes:
    """Build a zip in memory; ``extra`` members (ZipInfo with body in ``comment``) go last."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for info in extra or []:
            zf.writestr(info, b"/etc/passwd")
    return buffer.getvalue()


def write_zip(
    path: Path, members: dict[str, bytes], extra: list[zipfile.ZipInfo] | None = None
) -> Path:
    path.write_bytes(zip_bytes(members, extra))
    return path


def tree(root: Path) -> dict[str, bytes]:
    """Map each file below ``root`` (POSIX relative path) to its content, the manifest aside."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and p.name != MANIFEST_NAME
    }


def names(folder: Path) -> list[str]:
    """The sorted names in ``folder``, lock files (which stay, by design) aside."""
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock"))


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


# --------------------------------------------------------------------------------------------
# sha1_of and argument checks
# --------------------------------------------------------------------------------------------


def test_sha1_of_matches_hashlib(tmp_path: Path) -> None:
    data = os.urandom(300_000)
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert sha1_of(path, chunk_size=4096) == sha1(data)


@pytest.mark.parametrize("bad", ["", "abc", "g" * 40, "a" * 41, " " + "a" * 40])
def test_download_rejects_malformed_sha1(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="SHA-1"):
        download("http://127.0.0.1:9/x", tmp_path / "x", bad, **FAST)


def test_download_accepts_uppercase_sha1(server: Server, tmp_path: Path) -> None:
    body = b"upper"
    server.routes["/u"] = [Reply(body=body)]
    dest = download(server.url("/u"), tmp_path / "u.bin", sha1(body).upper(), **FAST)
    assert dest.read_bytes() == body


# --------------------------------------------------------------------------------------------
# download
# --------------------------------------------------------------------------------------------


def test_download_then_extract_good_zip(server: Server, tmp_path: Path) -> None:
    junk = {"__MACOSX/hotdog/train/._0.png": b"junk", "__MACOSX/._hotdog": b"junk"}
    body = zip_bytes({**TREE, **junk})
    server.routes["/hotdog.zip"] = [Reply(body=body)]
    dest = tmp_path / "new" / "sub" / "hotdog.zip"  # parent folders do not exist yet

    got = download(server.url("/hotdog.zip"), dest, sha1(body), retries=0, backoff=0.01)

    assert got == dest
    assert sha1_of(dest) == sha1(body)
    assert leftovers(dest.parent) == []
    root = extract_zip(dest, tmp_path / "data", "hotdog")
    assert root == tmp_path / "data" / "hotdog"
    assert tree(root) == {name.removeprefix("hotdog/"): data for name, data in TREE.items()}
    assert names(tmp_path / "data") == ["hotdog"]
    assert server.hits["/hotdog.zip"] == 1
    mask = os.umask(0o022)
    os.umask(mask)
    assert dest.stat().st_mode & 0o777 == 0o666 & ~mask  # not private: other users read it
    assert root.stat().st_mode & 0o777 == 0o777 & ~mask


def test_wrong_hash_raises_and_leaves_nothing(server: Server, tmp_path: Path) -> None:
    body = b"the real content"
    wrong = sha1(b"something else")
    server.routes["/f"] = [Reply(body=body)]
    dest = tmp_path / "f.bin"

    with pytest.raises(ChecksumError) as info:
        download(server.url("/f"), dest, wrong, **FAST)

    assert wrong in str(info.value)
    assert sha1(body) in str(info.value)
    assert server.url("/f") in str(info.value)
    assert not dest.exists()
    assert names(tmp_path) == []
    assert server.hits["/f"] == 1  # a checksum mismatch is not retried


def test_truncated_every_time_fails_after_retries(server: Server, tmp_path: Path) -> None:
    body = os.urandom(200_000)
    server.routes["/t"] = [Reply(body=body, truncate=True)]
    dest = tmp_path / "t.bin"

    with pytest.raises(DownloadError) as info:
        download(server.url("/t"), dest, sha1(body), retries=2, **FAST)

    assert server.hits["/t"] == 3
    assert "3 attempts" in str(info.value)
    assert "truncated" in str(info.value)
    assert not dest.exists()
    assert names(tmp_path) == []


def test_truncated_once_then_good_succeeds(server: Server, tmp_path: Path) -> None:
    body = os.urandom(200_000)
    server.routes["/t"] = [Reply(body=body, truncate=True), Reply(body=body)]
    dest = download(server.url("/t"), tmp_path / "t.bin", sha1(body), retries=1, **FAST)
    assert dest.read_bytes() == body
    assert server.hits["/t"] == 2
    assert leftovers(tmp_path) == []


def test_incomplete_chunked_body_is_retried(server: Server, tmp_path: Path) -> None:
    body = os.urandom(50_000)
    server.routes["/c"] = [Reply(body=body, chunked_truncate=True), Reply(body=body)]
    dest = download(server.url("/c"), tmp_path / "c.bin", sha1(body), retries=1, **FAST)
    assert dest.read_bytes() == body
    assert server.hits["/c"] == 2


@pytest.mark.parametrize("status", [500, 503, 429])
def test_transient_http_error_then_success(server: Server, tmp_path: Path, status: int) -> None:
    body = b"eventually"
    server.routes["/s"] = [Reply(status, b"oops"), Reply(body=body)]
    dest = download(server.url("/s"), tmp_path / "s.bin", sha1(body), retries=3, **FAST)
    assert dest.read_bytes() == body
    assert server.hits["/s"] == 2


def test_server_error_every_time_gives_download_error(server: Server, tmp_path: Path) -> None:
    server.routes["/s"] = [Reply(500, b"oops")]
    with pytest.raises(DownloadError, match="500"):
        download(server.url("/s"), tmp_path / "s.bin", sha1(b"x"), retries=1, **FAST)
    assert server.hits["/s"] == 2
    assert names(tmp_path) == []


@pytest.mark.parametrize("status", [404, 403])
def test_client_error_is_not_retried(server: Server, tmp_path: Path, status: int) -> None:
    server.routes["/missing"] = [Reply(status, b"no")]
    dest = tmp_path / "m.bin"
    with pytest.raises(DownloadError) as info:
        download(server.url("/missing"), dest, sha1(b"x"), retries=3, **FAST)
    assert str(status) in str(info.value)
    assert server.hits["/missing"] == 1
    assert not dest.exists()
    assert names(tmp_path) == []


def test_timeout_is_retried(server: Server, tmp_path: Path) -> None:
    body = b"slow then fast"
    server.routes["/slow"] = [Reply(body=body, delay=1.0), Reply(body=body)]
    fast = {**FAST, "timeout": 0.3}
    dest = download(server.url("/slow"), tmp_path / "s.bin", sha1(body), retries=1, **fast)
    assert dest.read_bytes() == body
    assert server.hits["/slow"] == 2


def test_cached_good_file_makes_no_request(server: Server, tmp_path: Path) -> None:
    body = b"already here"
    dest = tmp_path / "cached.bin"
    dest.write_bytes(body)
    mtime = dest.stat().st_mtime_ns
    server.routes["/cached"] = [Reply(body=b"different")]

    assert download(server.url("/cached"), dest, sha1(body), **FAST) == dest

    assert sum(server.hits.values()) == 0
    assert dest.read_bytes() == body
    assert dest.stat().st_mtime_ns == mtime


def test_cached_bad_file_warns_and_downloads_again(server: Server, tmp_path: Path) -> None:
    body = b"the good content"
    dest = tmp_path / "cached.bin"
    dest.write_bytes(b"stale or corrupt")
    server.routes["/cached"] = [Reply(body=body)]

    with pytest.warns(UserWarning) as record:
        download(server.url("/cached"), dest, sha1(body), **FAST)

    message = str(record[0].message)
    assert str(dest) in message
    assert sha1(body) in message
    assert sha1(b"stale or corrupt") in message
    assert dest.read_bytes() == body
    assert server.hits["/cached"] == 1
    assert leftovers(tmp_path) == []


def test_offline_error_mentions_standin(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dest = tmp_path / "hotdog.zip"
    expected = sha1(b"x")

    with pytest.raises(DownloadError) as info:
        download(f"http://127.0.0.1:{port}/hotdog.zip", dest, expected, retries=1, **FAST)

    message = str(info.value)
    assert "D2LHELPERS_DATA_SOURCE=standin" in message
    assert "offline" in message
    assert str(dest) in message
    assert expected in message
    assert "2 attempts" in message
    assert names(tmp_path) == []


class _InterruptingBar:
    """Stands in for tqdm: interrupts the download at the first chunk."""

    def __init__(self, **kwargs: object) -> None:
        self.kwargs = kwargs

    def __enter__(self) -> _InterruptingBar:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def update(self, n: int) -> None:
        raise KeyboardInterrupt


def test_interrupt_mid_download_removes_part_file(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = os.urandom(300_000)
    server.routes["/big"] = [Reply(body=body)]
    dest = tmp_path / "big.bin"
    seen: list[list[str]] = []

    class Bar(_InterruptingBar):
        def update(self, n: int) -> None:
            seen.append(names(tmp_path))
            assert self.kwargs["total"] == len(body)
            assert self.kwargs["unit"] == "B"
            super().update(n)

    monkeypatch.setattr(dl, "tqdm", Bar)
    with pytest.raises(KeyboardInterrupt):
        download(server.url("/big"), dest, sha1(body), **FAST)

    # While streaming, the only file was a .part beside dest; afterwards nothing is left.
    assert len(seen) == 1 and len(seen[0]) == 1
    assert seen[0][0].startswith("big.bin.") and seen[0][0].endswith(".part")
    assert names(tmp_path) == []


def test_progress_bar_enabled(server: Server, tmp_path: Path) -> None:
    body = os.urandom(100_000)
    server.routes["/p"] = [Reply(body=body)]
    dest = download(server.url("/p"), tmp_path / "p.bin", sha1(body), progress=True, backoff=0)
    assert dest.read_bytes() == body


# --------------------------------------------------------------------------------------------
# extract_zip
# --------------------------------------------------------------------------------------------


def _symlink_member(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


UNSAFE = {
    "parent": ("../evil", "'..'"),
    "deep-parent": ("hotdog/../../../evil", "'..'"),
    "backslash-parent": ("hotdog\\..\\..\\..\\evil", "'..'"),
    "absolute": ("/abs", "absolute"),
    "absolute-inside-top": ("/hotdog/abs", "absolute"),
    "absolute-backslash": ("\\abs", "absolute"),
    "drive": ("C:evil", "absolute"),
    "drive-absolute": ("C:/hotdog/evil", "absolute"),
    "symlink": ("hotdog/train/link", "symbolic link"),
}


@pytest.mark.parametrize(("member", "reason"), UNSAFE.values(), ids=UNSAFE)
def test_unsafe_member_rejected_before_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, member: str, reason: str
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    if reason == "symbolic link":
        archive = write_zip(work / "bad.zip", TREE, extra=[_symlink_member(member)])
    else:
        archive = write_zip(work / "bad.zip", {**TREE, member: b"pwned"})
    name = member
    with zipfile.ZipFile(archive) as zf:
        assert name in zf.namelist()  # zipfile kept the hostile name as written
    dest_dir = work / "data"
    before_outside = names(tmp_path.parent)
    opened: list[str] = []
    real_open = zipfile.ZipFile.open

    def spying_open(self: zipfile.ZipFile, item: object, *args: object, **kw: object):
        opened.append(getattr(item, "filename", item))
        return real_open(self, item, *args, **kw)

    monkeypatch.setattr(zipfile.ZipFile, "open", spying_open)

    with pytest.raises(UnsafeArchiveError) as info:
        extract_zip(archive, dest_dir, "hotdog")

    assert repr(name) in str(info.value)
    assert reason in str(info.value)
    assert str(archive) in str(info.value)
    assert opened == []  # no member was read, so nothing was written
    assert names(dest_dir) == []  # neither hotdog/ nor a temp folder remains
    assert names(work) == ["bad.zip", "data"]
    assert names(tmp_path) == ["work"]
    assert names(tmp_path.parent) == before_outside
    assert not Path("/abs").exists()


def test_member_outside_top_is_rejected(tmp_path: Path) -> None:
    archive = write_zip(tmp_path / "a.zip", {**TREE, "README.txt": b"hi"})
    with pytest.raises(UnsafeArchiveError, match=r"README\.txt"):
        extract_zip(archive, tmp_path / "data", "hotdog")
    assert names(tmp_path / "data") == []


def test_second_extract_is_a_no_op(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = write_zip(tmp_path / "hotdog.zip", TREE)
    root = extract_zip(archive, tmp_path / "data", "hotdog")
    mtime = root.stat().st_mtime_ns

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the archive was opened again")

    monkeypatch.setattr(zipfile, "ZipFile", refuse)
    archive.unlink()

    assert extract_zip(archive, tmp_path / "data", "hotdog") == root
    assert root.stat().st_mtime_ns == mtime
    assert len(tree(root)) == len(TREE)


def test_stale_temp_folder_is_not_taken_as_complete(tmp_path: Path) -> None:
    dest_dir = tmp_path / "data"
    stale = dest_dir / ".hotdog-extract-stale123" / "hotdog" / "train"
    stale.mkdir(parents=True)
    (stale / "partial.png").write_bytes(b"half")
    archive = write_zip(tmp_path / "hotdog.zip", TREE)

    root = extract_zip(archive, dest_dir, "hotdog")

    assert tree(root) == {name.removeprefix("hotdog/"): data for name, data in TREE.items()}
    assert not (root / "train" / "partial.png").exists()
    assert names(dest_dir) == ["hotdog"]  # the killed run's temporary folder is gone


def test_not_a_zip_is_corrupt(tmp_path: Path) -> None:
    archive = tmp_path / "hotdog.zip"
    archive.write_bytes(b"<html>Service unavailable</html>")
    with pytest.raises(CorruptArchiveError) as info:
        extract_zip(archive, tmp_path / "data", "hotdog")
    assert str(archive) in str(info.value)
    assert "Delete it" in str(info.value)
    assert names(tmp_path / "data") == []


def test_crc_error_is_corrupt_and_cleans_up(tmp_path: Path) -> None:
    payload = b"PAYLOAD-" + b"x" * 1000
    data = zip_bytes({**TREE, "hotdog/test/z.bin": payload})
    assert data.count(payload) == 1
    archive = tmp_path / "hotdog.zip"
    archive.write_bytes(data.replace(payload, b"PAYLOAD-" + b"y" + b"x" * 999))

    with pytest.raises(CorruptArchiveError, match="CRC"):
        extract_zip(archive, tmp_path / "data", "hotdog")

    # Earlier members were written to the temp folder; it is gone and hotdog/ never appeared.
    assert names(tmp_path / "data") == []


def test_zip_without_top_is_corrupt(tmp_path: Path) -> None:
    archive = write_zip(tmp_path / "other.zip", {"cats/a.png": b"a", "dogs/b.png": b"b"})
    with pytest.raises(CorruptArchiveError) as info:
        extract_zip(archive, tmp_path / "data", "hotdog")
    message = str(info.value)
    assert "'hotdog'" in message and "cats" in message and "dogs" in message
    assert names(tmp_path / "data") == []


def test_macosx_junk_is_skipped(tmp_path: Path) -> None:
    junk = {"__MACOSX/hotdog/train/._0.png": b"\x00\x05junk", "__MACOSX/._hotdog": b"junk"}
    archive = write_zip(tmp_path / "hotdog.zip", {**junk, **TREE})
    root = extract_zip(archive, tmp_path / "data", "hotdog")
    assert names(tmp_path / "data") == ["hotdog"]
    assert not any("._" in name for name in tree(root))
    assert len(tree(root)) == len(TREE)


@pytest.mark.parametrize("top", ["", ".", "..", "a/b", "a\\b"])
def test_extract_rejects_bad_top(tmp_path: Path, top: str) -> None:
    archive = write_zip(tmp_path / "hotdog.zip", TREE)
    with pytest.raises(ValueError, match="top"):
        extract_zip(archive, tmp_path / "data", top)


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [({"retries": -1}, "retries"), ({"retries": 1.5}, "retries"), ({"retries": True}, "retries"),
     ({"backoff": float("nan")}, "backoff"), ({"backoff": -1.0}, "backoff"),
     ({"timeout": 0}, "timeout"), ({"timeout": float("inf")}, "timeout"),
     ({"timeout": float("nan")}, "timeout")],
)  # fmt: skip
def test_download_rejects_bad_options_before_any_work(
    server: Server, tmp_path: Path, kwargs: dict, word: str
) -> None:
    with pytest.raises(ValueError, match=f"{word} must be"):
        download(server.url("/x"), tmp_path / "sub" / "x.bin", sha1(b"x"), **kwargs)
    assert server.hits["/x"] == 0
    assert not (tmp_path / "sub").exists()


# --------------------------------------------------------------------------------------------
# The extraction manifest: a folder is trusted by what extraction recorded
# --------------------------------------------------------------------------------------------


def test_extracted_folder_is_verified_without_its_zip(tmp_path: Path) -> None:
    archive = write_zip(tmp_path / "hotdog.zip", TREE)
    root = extract_zip(archive, tmp_path / "data", "hotdog")
    assert extraction_problem(root) is None
    archive.unlink()
    assert extract_zip(archive, tmp_path / "data", "hotdog") == root  # no zip needed


@pytest.mark.parametrize("damage", ["no manifest", "missing file", "short file"])
def test_half_extracted_folder_is_not_trusted_and_is_replaced(tmp_path: Path, damage: str) -> None:
    archive = write_zip(tmp_path / "hotdog.zip", TREE)
    root = extract_zip(archive, tmp_path / "data", "hotdog")
    victim = root / "test" / "hotdog" / "0.png"
    if damage == "no manifest":
        (root / MANIFEST_NAME).unlink()
    elif damage == "missing file":
        victim.unlink()
    else:
        victim.write_bytes(victim.read_bytes()[:10])

    problem = extraction_problem(root)
    assert problem is not None and str(root) in problem

    assert extract_zip(archive, tmp_path / "data", "hotdog") == root
    assert tree(root) == {name.removeprefix("hotdog/"): data for name, data in TREE.items()}
    assert extraction_problem(root) is None
    assert names(tmp_path / "data") == ["hotdog"]  # the unverified copy is gone too


def test_manifest_lists_every_member_with_its_size(tmp_path: Path) -> None:
    root = extract_zip(write_zip(tmp_path / "hotdog.zip", TREE), tmp_path / "data", "hotdog")
    manifest = json.loads((root / MANIFEST_NAME).read_text())
    expected = {name.removeprefix("hotdog/"): len(data) for name, data in TREE.items()}
    assert manifest == {"files": expected}


# --------------------------------------------------------------------------------------------
# A server that trickles, or never answers
# --------------------------------------------------------------------------------------------


def _trickle_handler(body: bytes, pause: float) -> type[http.server.BaseHTTPRequestHandler]:
    class Trickle(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            for i in range(len(body)):
                try:
                    self.wfile.write(body[i : i + 1])
                    self.wfile.flush()
                except OSError:  # the client gave up
                    return
                time.sleep(pause)

        def log_message(self, *args: object) -> None:
            pass

    return Trickle


def test_trickling_server_fails_on_the_minimum_rate(tmp_path: Path) -> None:
    body = b"x" * 40  # one byte every 20 ms: 0.8 s in all, each read well within the timeout
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _trickle_handler(body, 0.02))
    with running(httpd) as port, pytest.raises(DownloadError, match="min_rate=1000") as info:
        download(
            f"http://127.0.0.1:{port}/t", tmp_path / "t.bin", sha1(body),
            retries=0, timeout=0.2, min_rate=1000, progress=False,
        )  # fmt: skip
    assert "too slow" in str(info.value)
    assert names(tmp_path) == []


def test_min_rate_zero_accepts_a_slow_server(tmp_path: Path) -> None:
    body = b"y" * 20  # 0.4 s, over two windows of 0.2 s
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _trickle_handler(body, 0.02))
    with running(httpd) as port:
        url = f"http://127.0.0.1:{port}/t"
        dest = download(url, tmp_path / "t.bin", sha1(body), timeout=0.2, min_rate=0, **NO_BAR)
    assert dest.read_bytes() == body


def test_default_wait_for_a_silent_server_is_bounded_under_a_minute() -> None:
    defaults = {name: p.default for name, p in inspect.signature(download).parameters.items()}
    retries, timeout, backoff = defaults["retries"], defaults["timeout"], defaults["backoff"]
    worst = (retries + 1) * timeout + backoff * (2**retries - 1)
    assert worst <= 60 and defaults["min_rate"] > 0


@pytest.mark.parametrize("min_rate", [-1.0, float("nan"), float("inf")])
def test_download_rejects_bad_min_rate(tmp_path: Path, min_rate: float) -> None:
    with pytest.raises(ValueError, match="min_rate"):
        download("http://127.0.0.1:9/x", tmp_path / "x", sha1(b"x"), min_rate=min_rate)


def test_killed_runs_part_files_are_removed(server: Server, tmp_path: Path) -> None:
    body = b"fresh"
    server.routes["/f"] = [Reply(body=body)]
    killed = tmp_path / "f.bin.k1ll3d.part"
    killed.write_bytes(b"half")
    other = tmp_path / "g.bin.0th3r.part"  # another file's: not this lock's to remove
    other.write_bytes(b"")
    download(server.url("/f"), tmp_path / "f.bin", sha1(body), **FAST)
    assert names(tmp_path) == ["f.bin", "g.bin.0th3r.part"]


# --------------------------------------------------------------------------------------------
# Several URLs (mirrors first): tried in order, each verified
# --------------------------------------------------------------------------------------------


def test_urls_are_tried_in_order_until_one_serves(server: Server, tmp_path: Path) -> None:
    body = b"from the second"
    server.routes["/a"] = [Reply(404, b"gone")]
    server.routes["/b"] = [Reply(body=body)]
    urls = [server.url(path) for path in ("/a", "/b", "/c")]
    with pytest.warns(UserWarning, match="Trying the next URL") as record:
        dest = download(urls, tmp_path / "f.bin", sha1(body), **FAST)
    assert dest.read_bytes() == body
    assert server.url("/a") in str(record[0].message) and len(record) == 1
    assert (server.hits["/a"], server.hits["/b"], server.hits["/c"]) == (1, 1, 0)


def test_a_mirror_serving_other_bytes_is_refused(server: Server, tmp_path: Path) -> None:
    body = b"the real file"
    server.routes["/mirror"] = [Reply(body=b"something else")]
    server.routes["/official"] = [Reply(body=body)]
    urls = [server.url("/mirror"), server.url("/official")]
    with pytest.warns(UserWarning, match="SHA-1 mismatch") as record:
        dest = download(urls, tmp_path / "f.bin", sha1(body), **FAST)
    assert server.url("/mirror") in str(record[0].message)
    assert dest.read_bytes() == body
    assert leftovers(tmp_path) == []


def test_every_url_failing_lists_each_and_what_to_do(server: Server, tmp_path: Path) -> None:
    server.routes["/mirror"] = [Reply(body=b"something else")]
    server.routes["/official"] = [Reply(404, b"gone")]
    urls = [server.url("/mirror"), server.url("/official")]
    dest = tmp_path / "hotdog.zip"
    expected = sha1(b"the real file")
    remedy = "set $SOME_MIRROR to a mirror's URL,"
    with pytest.warns(UserWarning), pytest.raises(ChecksumError) as info:
        download(urls, dest, expected, remedies=[remedy], **FAST)
    message = str(info.value)
    assert "None of the 2 URLs" in message
    for part in (*urls, sha1(b"something else"), "404", remedy, str(dest), expected):
        assert part in message
    assert "D2LHELPERS_DATA_SOURCE=standin" in message
    assert names(tmp_path) == []


def test_every_url_unreachable_is_a_download_error(server: Server, tmp_path: Path) -> None:
    urls = [server.url("/a"), server.url("/b")]  # both 404
    with pytest.warns(UserWarning), pytest.raises(DownloadError, match="None of the 2 URLs"):
        download(urls, tmp_path / "f.bin", sha1(b"x"), **FAST)


def test_no_url_at_all_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one URL"):
        download([], tmp_path / "f.bin", sha1(b"x"), **FAST)
