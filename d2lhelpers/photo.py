"""Classify the learner's own photo: from bytes, a file or an http(s) URL.

:func:`load_photo` turns any of those into an upright RGB image, decoding as
:func:`d2lhelpers.images.load_rgb` decodes the data set (EXIF rotation, CMYK, 16-bit, palette
and transparency; a JPEG asked for a ``size`` is decoded at reduced scale, so a 100-megapixel
phone photo costs little; a progressive one is refused above 24 megapixels). Anything that
goes wrong is a :class:`PhotoError` that names the input and gives one reason in plain words;
an address is fetched within one overall deadline. :func:`classify_photo` applies the test
transform exactly as the test loader does (squash to ``recipe.resize_side`` as the decoded
cache does, then the loader's centre crop and normalisation). The book's panel
(:class:`d2lhelpers.book.photo_panel.PhotoPanel`) puts both behind an upload button and an
address field.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import socket
import tempfile
import threading
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

from .checks import one_line, positive_finite, positive_int
from .data import DecodedImages, Recipe, square_pixels
from .fileutil import display_path
from .images import BadImageError, is_jpeg, load_rgb
from .predict import logits_of

Source = bytes | bytearray | memoryview | str | os.PathLike
MAX_PHOTO_PIXELS = 50_000_000  # a photo decoded at full size may have this many pixels
MAX_DOWNLOAD_BYTES = 20 << 20  # 20 MiB
URL_TIMEOUT = 15.0  # seconds for a whole download, however the server trickles
SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+:")  # a URL's scheme (a drive letter has one letter)
NOT_IMAGE_TYPES = ("text/", "application/json", "application/xml", "application/xhtml")


class PhotoError(ValueError):
    """A photo that cannot be fetched or decoded; the message names it and says what to do."""


def is_url(text: str) -> bool:
    """True for an http:// or https:// address."""
    return text.strip().lower().startswith(("http://", "https://"))


QUOTES = ('""', "''", "\u201c\u201d", "\u2018\u2019")  # pairs of quotes around a pasted path


def unquoted(text: str) -> str:
    """``text`` without surrounding whitespace and one pair of surrounding quotes (as Windows'
    "Copy as path" gives a path)."""
    text = text.strip()
    for opening, closing in QUOTES:
        if len(text) >= 2 and text[0] == opening and text[-1] == closing:
            return text[1:-1].strip()
    return text


def shown(text: str, limit: int = 80, mark: str = "...") -> str:
    """``text`` for a message: at most ``limit`` characters, elided in the middle by ``mark``."""
    if len(text) <= limit:
        return text
    half = (limit - len(mark)) // 2
    return f"{text[:half]}{mark}{text[-half:]}"


def fetch_photo(
    url: str, timeout: float = URL_TIMEOUT, max_bytes: int = MAX_DOWNLOAD_BYTES
) -> bytes:
    """The bytes at the http(s) ``url``, all of them within ``timeout`` seconds: PhotoError on
    an invalid address, an HTTP error, a network failure, a reply that announces itself as
    text (a web page, not the image), more than ``max_bytes``, a body shorter than its
    Content-Length, or a reply not complete within ``timeout`` (however the server trickles)."""
    timeout = positive_finite("timeout", timeout)
    max_bytes = positive_int("max_bytes", max_bytes)
    url = unquoted(url)
    with _Deadline(timeout) as deadline:
        try:
            request = urllib.request.Request(url, headers={"User-Agent": "d2lhelpers"})
            with deadline.opener().open(request, timeout=timeout) as reply:
                _check_reply(url, reply.headers, max_bytes)
                return _body(url, reply, max_bytes)
        except urllib.error.HTTPError as err:
            raise PhotoError(
                f"Downloading {shown(url)} failed: HTTP {err.code} {err.reason}. Check the "
                "address, or save the photo and upload the file."
            ) from err
        except (PhotoError, OSError, http.client.HTTPException, ValueError) as err:
            if deadline.expired:
                reason = f"no complete reply within {timeout:g} s"
            elif isinstance(err, PhotoError):
                raise
            else:
                reason = _network_reason(err)
            raise PhotoError(
                f"Downloading {shown(url)} failed ({reason}). Check the address and the "
                "network, or save the photo and upload the file."
            ) from err


def _network_reason(err: BaseException) -> str:
    """Why a download failed, in plain words (no Python class names)."""
    reason = getattr(err, "reason", err)  # a URLError wraps the socket's error
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    if isinstance(reason, BaseException):
        return one_line(reason, with_type=False)
    return str(reason)


class _Deadline:
    """One deadline for a whole download: when it passes, the connections it opened are shut
    down, which ends any read waiting on them (a trickling server resets per-read timeouts)."""

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                with contextlib.suppress(OSError):  # the plain socket's, also under TLS
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def watch(self, sock: socket.socket) -> None:
        """Shut ``sock`` down at the deadline (at once if it has passed)."""
        with self._lock:
            self._sockets.append(sock)
        if self.expired:
            self._expire()

    def opener(self) -> urllib.request.OpenerDirector:
        """A urllib opener whose HTTP and HTTPS connections (redirects included) are watched."""
        return urllib.request.build_opener(_HTTPHandler(self.watch), _HTTPSHandler(self.watch))


def _watched(connection_class: type, watch: Callable[[socket.socket], None]) -> Callable:
    """A factory of ``connection_class`` connections that pass their socket to ``watch``."""

    def make(*args: Any, **kwargs: Any) -> http.client.HTTPConnection:
        connection = connection_class(*args, **kwargs)
        connect = connection.connect

        def connect_and_watch() -> None:
            connect()
            watch(connection.sock)

        connection.connect = connect_and_watch
        return connection

    return make


class _HTTPHandler(urllib.request.HTTPHandler):
    """urllib's HTTP handler, its connections watched."""

    def __init__(self, watch: Callable[[socket.socket], None]) -> None:
        super().__init__()
        self.watch = watch

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_watched(http.client.HTTPConnection, self.watch), req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    """urllib's HTTPS handler, its connections watched."""

    def __init__(self, watch: Callable[[socket.socket], None]) -> None:
        super().__init__()
        self.watch = watch

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        connection = _watched(http.client.HTTPSConnection, self.watch)
        return self.do_open(connection, req, context=self._context)


def _body(url: str, reply: http.client.HTTPResponse, max_bytes: int) -> bytes:
    """The reply's body: PhotoError when it is longer than ``max_bytes`` or shorter than its
    Content-Length."""
    chunks, size = [], 0
    while chunk := reply.read1(1 << 16):
        chunks.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            raise PhotoError(_too_many_bytes(url, max_bytes))
    length = reply.headers.get("Content-Length") or ""
    if length.isdigit() and size < int(length):
        raise PhotoError(
            f"Downloading {shown(url)} failed: the server sent {size:,} of its {int(length):,} "
            "bytes. Try again, or save the photo and upload the file."
        )
    return b"".join(chunks)


def _check_reply(url: str, headers: Any, max_bytes: int) -> None:
    """Refuse a reply that says it is text or longer than ``max_bytes``, before reading it."""
    kind = (headers.get("Content-Type") or "").lower()
    if kind.startswith(NOT_IMAGE_TYPES) or "html" in kind:
        raise PhotoError(
            f"{shown(url)} is not an image but {kind.split(';')[0]} (a web page?). Use the "
            "address of the image itself (right-click the image: Copy image address)."
        )
    length = headers.get("Content-Length")
    if length and length.isdigit() and int(length) > max_bytes:
        raise PhotoError(_too_many_bytes(url, max_bytes))


def _too_many_bytes(url: str, max_bytes: int) -> str:
    return (
        f"{shown(url)} is larger than {max_bytes / 2**20:.0f} MiB; save a smaller version of the "
        "photo and upload it."
    )


def load_photo(
    source: Source,
    *,
    size: int | None = None,
    max_pixels: int = MAX_PHOTO_PIXELS,
    name: str | None = None,
) -> Image.Image:
    """``source`` (bytes, a file path, or an http(s) URL) as an upright RGB image.

    ``size`` lets a JPEG decode at reduced scale, never below ``size`` per side, as the data
    set's decoding does for ``stored_size``: then even a 100-megapixel JPEG decodes in little
    memory. Other images (and JPEGs without ``size``) of more than ``max_pixels`` pixels are
    refused before decoding. ``name`` names bytes in messages. Raises :class:`PhotoError`.
    """
    max_pixels = positive_int("max_pixels", max_pixels)
    size = None if size is None else positive_int("size", size)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _load_bytes(bytes(source), name or "the uploaded photo", size, max_pixels)
    if not isinstance(source, (str, os.PathLike)):
        raise PhotoError(f"A photo is bytes, a file path or an http(s) URL, not {source!r}.")
    if isinstance(source, str):
        source = unquoted(source)
        if is_url(source):
            return _load_bytes(fetch_photo(source), name or shown(source), size, max_pixels)
        if SCHEME.match(source) and not os.path.lexists(source):
            raise PhotoError(
                f"{shown(source)}: only http:// and https:// addresses can be fetched; save "
                "the photo and upload the file."
            )
    return _load_file(Path(source), name, size, max_pixels)


def _load_file(path: Path, name: str | None, size: int | None, max_pixels: int) -> Image.Image:
    label = name or shown(display_path(path))
    _check_readable(path, label)
    _check_pixels(path, label, size, max_pixels)
    try:
        return load_rgb(path, size=size)
    except BadImageError as err:
        raise PhotoError(_unreadable(label, err.reason)) from err


def _check_readable(path: Path, label: str) -> None:
    """PhotoError naming ``label`` unless ``path`` is a file this process can open."""
    try:
        if path.is_dir():
            reason = "a folder, not a file"
        elif path.exists() and not path.is_file():
            reason = "not a regular file"  # a device or a pipe, which open() could wait on
        else:
            with open(path, "rb"):
                return
    except FileNotFoundError:
        reason = "no such file"
    except OSError as err:  # permission denied, a name too long, ...
        reason = (err.strerror or one_line(err, with_type=False)).lower()
    raise PhotoError(f"{label}: {reason}. Check the path, or upload the photo.")


def _load_bytes(data: bytes, name: str, size: int | None, max_pixels: int) -> Image.Image:
    """Decode ``data`` through a temporary file (``load_rgb`` reads paths only)."""
    if not data:
        raise PhotoError(_unreadable(name, "the file is empty (0 bytes)"))
    try:
        with tempfile.TemporaryDirectory(prefix="d2lhelpers-photo-") as folder:
            path = Path(folder) / "photo"
            path.write_bytes(data)
            return _load_file(path, name, size, max_pixels)
    except OSError as err:  # no room or no temporary folder: PhotoErrors pass through
        raise PhotoError(
            f"Could not decode the photo {name}: its temporary copy could not be written in "
            f"{tempfile.gettempdir()} ({err.strerror or one_line(err, with_type=False)}). Free "
            "some space there, or set TMPDIR to another folder."
        ) from err


def _unreadable(name: str, reason: str) -> str:
    return (
        f"Could not read the photo {name}: {reason}. Use a complete image file (JPEG, PNG, "
        "WebP, GIF, BMP or TIFF)."
    )


def _check_pixels(path: Path, label: str, size: int | None, max_pixels: int) -> None:
    """Refuse, from the header only, an image too large to decode at full size.

    A JPEG with ``size`` is left to ``load_rgb``, which decodes it at reduced scale.
    """
    if size is not None and is_jpeg(path):
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
    except Image.DecompressionBombError as err:
        pixels = f"more than {2 * Image.MAX_IMAGE_PIXELS:,} pixels"
        raise PhotoError(_too_large(label, pixels)) from err
    except (OSError, ValueError, SyntaxError):
        return  # not an image: load_rgb says why
    if width * height > max_pixels:
        pixels = f"{width} x {height} pixels, more than max_pixels={max_pixels:,}"
        raise PhotoError(_too_large(label, pixels))


def _too_large(label: str, reason: str) -> str:
    return (
        f"The photo {label} is too large to decode safely ({reason}). Scale it down (for "
        "example to 4000 pixels on its longer side), or save it as JPEG, which is decoded at "
        "reduced size."
    )


def photo_pixels(image: Image.Image, recipe: Recipe) -> torch.Tensor:
    """``image`` squashed to ``recipe.resize_side`` square as the decoded cache stores it:
    (3, S, S) uint8."""
    return torch.from_numpy(square_pixels(image, recipe.resize_side))


def classify_photo(
    net: nn.Module,
    image: Image.Image | Source,
    recipe: Recipe,
    classes: Sequence[str],
    device: torch.device | str | None = None,
) -> tuple[str, float, torch.Tensor]:
    """(predicted class name, its probability, all class probabilities (C,)) for one photo.

    ``image`` is a PIL image or a source for :func:`load_photo` (decoded for
    ``recipe.resize_side``, as the data set is). The test transform is the test loader's: the
    photo squashed to ``recipe.resize_side``, then its centre crop, normalised.
    """
    classes = tuple(classes)
    if not isinstance(image, Image.Image):
        image = load_photo(image, size=recipe.resize_side)
    pixels = photo_pixels(image, recipe)[None]
    one = DecodedImages(pixels, torch.zeros(1, dtype=torch.int64), [""], classes)
    logits = logits_of(net, one, recipe, device, batch_size=1)
    if logits.shape[1] != len(classes):
        raise ValueError(f"The net has {logits.shape[1]} outputs but classes are {classes}.")
    probs = logits.softmax(1)[0]
    best = int(probs.argmax())
    return classes[best], probs[best].item(), probs
