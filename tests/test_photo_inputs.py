"""Every way a photo input can fail ends in one PhotoError that names the input and gives one
reason in plain words: malformed and unsupported addresses, unreadable paths, servers that
trickle or stop early. Paths in quotes (Windows' "Copy as path") are read."""

from __future__ import annotations

import errno
import os
import re
from io import BytesIO
from pathlib import Path

import pytest
from http_server import Reply, Server
from PIL import Image

from d2lhelpers import photo
from d2lhelpers.photo import PhotoError, fetch_photo, load_photo

PYTHON_CLASS_NAME = re.compile(r"\b[A-Z][a-z]+(?:[A-Z][a-z]+)*(Error|Exception|Warning)\b")


def jpeg_bytes() -> bytes:
    buffer = BytesIO()
    Image.new("RGB", (40, 30), (200, 40, 40)).save(buffer, "JPEG")
    return buffer.getvalue()


def assert_one_clear_reason(err: PhotoError, named: str) -> None:
    message = str(err)
    assert named in message, message
    assert not PYTHON_CLASS_NAME.search(message), message
    assert "\n" not in message and message.count(named) == 1, message


def unreadable_file(tmp_path: Path) -> Path:
    path = tmp_path / "locked.jpg"
    path.write_bytes(jpeg_bytes())
    path.chmod(0)
    return path


BAD_INPUTS = {
    "malformed-url": (lambda tmp: "http://[::1/x.jpg", "http://[::1/x.jpg"),
    "data-url": (lambda tmp: "data:image/png;base64," + "A" * 400, "data:image/png;base64,"),
    "ftp-url": (lambda tmp: "ftp://example.com/cat.jpg", "ftp://example.com/cat.jpg"),
    "name-too-long": (lambda tmp: str(tmp / ("x" * 300 + ".jpg")), "xxx.jpg: file name too long"),
    "missing": (lambda tmp: str(tmp / "nope.jpg"), "nope.jpg"),
    "folder": (lambda tmp: tmp / "photos", "photos: a folder, not a file"),
    "not-an-image": (lambda tmp: _write(tmp / "notes.jpg", b"text, not pixels"), "notes.jpg"),
    "truncated": (lambda tmp: _write(tmp / "cut.jpg", jpeg_bytes()[:200]), "cut.jpg"),
    "pipe": (lambda tmp: _fifo(tmp / "pipe.jpg"), "pipe.jpg: not a regular file"),
}


def _fifo(path: Path) -> Path:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no named pipes here")
    os.mkfifo(path)
    return path


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_every_bad_input_is_one_photo_error_naming_it(case: str, tmp_path: Path) -> None:
    source, named = BAD_INPUTS[case]
    (tmp_path / "photos").mkdir()
    with pytest.raises(PhotoError) as caught:
        load_photo(source(tmp_path), size=37)
    assert_one_clear_reason(caught.value, named)


def test_an_unreadable_file_is_a_photo_error(tmp_path: Path, monkeypatch) -> None:
    if os.name != "posix" or os.geteuid() == 0:  # root reads any file: refuse it as the OS would

        def refused(path, *args):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

        monkeypatch.setattr(photo, "open", refused, raising=False)
    with pytest.raises(PhotoError, match=r"locked\.jpg: permission denied") as caught:
        load_photo(unreadable_file(tmp_path))
    assert_one_clear_reason(caught.value, "locked.jpg")


@pytest.mark.parametrize("quote", ['"', "'"])
def test_a_path_in_quotes_is_read(quote: str, tmp_path: Path) -> None:
    path = _write(tmp_path / "cat photo.jpg", jpeg_bytes())
    assert load_photo(f" {quote}{path}{quote}\n").size == (40, 30)


@pytest.mark.parametrize(
    "reply",
    [
        Reply(body=jpeg_bytes(), trickle=0.3),
        Reply(body=jpeg_bytes(), trickle=0.3, trickle_head=True),
    ],
    ids=["body", "status-line-and-headers"],
)
def test_a_trickling_server_ends_at_the_one_deadline(reply: Reply, server: Server) -> None:
    """Each byte arrives well within the per-read timeout; the whole reply would take minutes."""
    server.routes["/slow.jpg"] = [reply]
    with pytest.raises(PhotoError, match=r"no complete reply within 1 s") as caught:
        fetch_photo(server.url("/slow.jpg"), timeout=1.0)
    assert_one_clear_reason(caught.value, "/slow.jpg")


def test_a_body_shorter_than_its_content_length_is_an_error(server: Server) -> None:
    server.routes["/cut.jpg"] = [Reply(body=jpeg_bytes(), truncate=True)]
    with pytest.raises(PhotoError, match=r"sent [\d,]+ of its [\d,]+ bytes") as caught:
        load_photo(server.url("/cut.jpg"))
    assert_one_clear_reason(caught.value, "/cut.jpg")


def test_a_refused_connection_is_a_photo_error_in_plain_words() -> None:
    with pytest.raises(
        PhotoError, match=r"\(connection refused\)|\(Connection refused\)"
    ) as caught:
        fetch_photo("http://127.0.0.1:9/cat.jpg", timeout=2)
    assert_one_clear_reason(caught.value, "127.0.0.1:9/cat.jpg")


def test_no_room_for_the_temporary_copy_is_a_photo_error(monkeypatch) -> None:
    def full(self, data: bytes) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(PhotoError, match="No space left on device") as caught:
        load_photo(jpeg_bytes(), name="cat.jpg")
    assert_one_clear_reason(caught.value, "cat.jpg")
