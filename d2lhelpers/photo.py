"""Classify the learner's own photo: from bytes, a file or an http(s) URL.

:func:`load_photo` turns any of those into an upright RGB image, decoding as
:func:`d2lhelpers.images.load_rgb` decodes the data set (EXIF rotation, CMYK, 16-bit, palette
and transparency; a JPEG asked for a ``size`` is decoded at reduced scale, so a 100-megapixel
phone photo costs little). Anything that goes wrong is a :class:`PhotoError` that names the
input and says what to do. :func:`classify_photo` applies the test transform exactly as the
test loader does (squash to ``recipe.resize_side`` as the decoded cache does, then the
loader's centre crop and normalisation). The book's panel
(:class:`d2lhelpers.book.photo_panel.PhotoPanel`) puts both behind an upload button and an
address field.
"""

from __future__ import annotations

import http.client
import os
import tempfile
import urllib.error
import urllib.request
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

from .checks import positive_finite, positive_int
from .data import DecodedImages, Recipe, square_pixels
from .fileutil import display_path
from .images import BadImageError, is_jpeg, load_rgb
from .predict import logits_of

Source = bytes | bytearray | memoryview | str | os.PathLike
MAX_PHOTO_PIXELS = 50_000_000  # a photo decoded at full size may have this many pixels
MAX_DOWNLOAD_BYTES = 20 << 20  # 20 MiB
URL_TIMEOUT = 15.0  # seconds
NOT_IMAGE_TYPES = ("text/", "application/json", "application/xml", "application/xhtml")


class PhotoError(ValueError):
    """A photo that cannot be fetched or decoded; the message names it and says what to do."""


def is_url(text: str) -> bool:
    """True for an http:// or https:// address."""
    return text.strip().lower().startswith(("http://", "https://"))


def fetch_photo(
    url: str, timeout: float = URL_TIMEOUT, max_bytes: int = MAX_DOWNLOAD_BYTES
) -> bytes:
    """The bytes at the http(s) ``url``: PhotoError on an HTTP error, a timeout, a network
    failure, a reply that announces itself as text (a web page, not the image), or more than
    ``max_bytes``."""
    timeout = positive_finite("timeout", timeout)
    max_bytes = positive_int("max_bytes", max_bytes)
    request = urllib.request.Request(url.strip(), headers={"User-Agent": "d2lhelpers"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            _check_reply(url, reply.headers, max_bytes)
            data = reply.read(max_bytes + 1)
    except PhotoError:
        raise
    except urllib.error.HTTPError as err:
        raise PhotoError(
            f"Downloading {url} failed: HTTP {err.code} {err.reason}. Check the address, or "
            "save the photo and upload the file."
        ) from err
    except (OSError, http.client.HTTPException, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise PhotoError(
            f"Downloading {url} failed ({type(err).__name__}: {reason}). Check the address and "
            "the network, or save the photo and upload the file."
        ) from err
    if len(data) > max_bytes:
        raise PhotoError(_too_many_bytes(url, max_bytes))
    return data


def _check_reply(url: str, headers: Any, max_bytes: int) -> None:
    """Refuse a reply that says it is text or longer than ``max_bytes``, before reading it."""
    kind = (headers.get("Content-Type") or "").lower()
    if kind.startswith(NOT_IMAGE_TYPES) or "html" in kind:
        raise PhotoError(
            f"{url} is not an image but {kind.split(';')[0]} (a web page?). Use the address of "
            "the image itself (right-click the image: Copy image address)."
        )
    length = headers.get("Content-Length")
    if length and length.isdigit() and int(length) > max_bytes:
        raise PhotoError(_too_many_bytes(url, max_bytes))


def _too_many_bytes(url: str, max_bytes: int) -> str:
    return (
        f"{url} is larger than {max_bytes / 2**20:.0f} MiB; save a smaller version of the photo "
        "and upload it."
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
    if isinstance(source, str) and is_url(source):
        return _load_bytes(fetch_photo(source), name or source.strip(), size, max_pixels)
    if not isinstance(source, (str, os.PathLike)):
        raise PhotoError(f"A photo is bytes, a file path or an http(s) URL, not {source!r}.")
    if isinstance(source, str) and "://" in source:
        raise PhotoError(f"{source}: only http:// and https:// addresses can be fetched.")
    return _load_file(Path(source), name, size, max_pixels)


def _load_file(path: Path, name: str | None, size: int | None, max_pixels: int) -> Image.Image:
    label = name or display_path(path)
    if not path.is_file():
        what = "a folder, not a file" if path.is_dir() else "no such file"
        raise PhotoError(f"{label}: {what}. Check the path, or upload the photo.")
    _check_pixels(path, label, size, max_pixels)
    try:
        return load_rgb(path, size=size)
    except BadImageError as err:
        raise PhotoError(_unreadable(label, str(err).replace(display_path(path), label))) from err


def _load_bytes(data: bytes, name: str, size: int | None, max_pixels: int) -> Image.Image:
    """Decode ``data`` through a temporary file (``load_rgb`` reads paths only)."""
    if not data:
        raise PhotoError(_unreadable(name, "the file is empty (0 bytes)"))
    with tempfile.TemporaryDirectory(prefix="d2lhelpers-photo-") as folder:
        path = Path(folder) / "photo"
        path.write_bytes(data)
        return _load_file(path, name, size, max_pixels)


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
        raise PhotoError(_too_large(label, str(err))) from err
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
