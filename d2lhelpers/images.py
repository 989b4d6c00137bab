"""Finding image files in an ImageFolder layout and decoding them robustly to RGB.

Policy for bad files (documented in the README and tested):

* hidden files (``.DS_Store``, ``._x.jpg``), ``Thumbs.db`` and files whose suffix is not an
  image suffix are ignored silently;
* grayscale, palette, RGBA/LA, CMYK, 16-bit and EXIF-rotated images are converted to upright
  RGB (transparent areas become white);
* unreadable, truncated and zero-byte images are *skipped*: the caller collects them and
  reports every path in one warning (see :func:`d2lhelpers.data.decode_folder`);
* large photos (phones take 50-200 megapixels): a baseline JPEG decoded for a given size is
  decoded at reduced size (JPEG draft mode: 1/2, 1/4 or 1/8 of each side, never below the size
  asked), which bounds its memory, so PIL's decompression-bomb guard (about 89 megapixels)
  does not apply to it; such a JPEG is refused only above :data:`MAX_JPEG_PIXELS` (1,000
  megapixels, about 45 MiB at 1/8). A progressive JPEG's output is scaled too, but libjpeg
  holds all of its coefficients while decoding (about 3 bytes per pixel of the full image,
  whatever the size asked: no decoder PIL has can do otherwise), so it is refused above
  :data:`MAX_PROGRESSIVE_PIXELS` (24 megapixels, about 70 MiB) before decoding, however small
  the file. Other formats, and JPEGs decoded at full size, keep PIL's guard;
* threads: a decode that holds more than :data:`LARGE_DECODE_BYTES` (16 MiB, as estimated by
  :func:`decode_bytes` from the header) runs on one thread kept for such decodes, one at a
  time, while smaller ones run in the caller's thread. So the decode threads of
  :func:`d2lhelpers.data.decode_folder` together hold at most one large image (about 75 MiB
  for a progressive JPEG at its bound) and 16 MiB each, and no thread's allocator keeps a
  large image's freed memory (glibc gives each thread its own arena, and keeps what was freed
  in it: decoding large images on 4 threads at once had kept 4 times the memory).
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, JpegImagePlugin

from .checks import one_line
from .fileutil import display_path

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
IGNORED_NAMES = frozenset({"thumbs.db", "desktop.ini"})
MAX_JPEG_PIXELS = 1_000_000_000  # a JPEG decoded at reduced size may have this many pixels
MAX_PROGRESSIVE_PIXELS = 24_000_000  # a progressive JPEG, decoded at full size in any case
PROGRESSIVE_BYTES_PER_PIXEL = 3  # what PIL holds while decoding one (measured: 2.9)
JPEG_MAGIC = b"\xff\xd8\xff"  # the first bytes of every JPEG file
PIL_BYTES_PER_PIXEL = 4  # PIL stores an RGB pixel in 32 bits
LARGE_DECODE_BYTES = 16 * 2**20  # a decode holding more runs on the large-decode thread


class BadImageError(ValueError):
    """An image file that cannot be decoded (unreadable, truncated, empty): the message is
    ``<path>: <reason>``, and ``reason`` says why in plain words."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{display_path(path)}: {reason}")
        self.reason = reason


def is_image_file(path: Path) -> bool:
    """True for a visible file with an image suffix; hidden and system files are False."""
    name = path.name
    if name.startswith(".") or name.lower() in IGNORED_NAMES:
        return False
    return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


def list_class_folder(split_dir: Path, classes: tuple[str, ...]) -> list[tuple[Path, int]]:
    """List ``(path, label)`` for every image in ``split_dir/<class>/``, sorted by path.

    Raises FileNotFoundError for a missing split or class folder and ValueError for a class
    folder without any image file; both name the path.
    """
    if not split_dir.is_dir():
        raise FileNotFoundError(
            f"Missing data split folder {display_path(split_dir)}: expected subfolders "
            f"{', '.join(classes)}."
        )
    items: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        folder = split_dir / name
        if not folder.is_dir():
            raise FileNotFoundError(
                f"Missing class folder {display_path(folder)} (classes: {classes})."
            )
        files = sorted(p for p in folder.iterdir() if is_image_file(p))
        if not files:
            raise ValueError(
                f"Class folder {display_path(folder)} holds no image files "
                f"(accepted suffixes: {' '.join(sorted(IMAGE_SUFFIXES))})."
            )
        items.extend((path, label) for path in files)
    return items


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB; alpha is composited on white, 16-bit is scaled down."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        img = Image.fromarray(arr, mode="L")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    return img.convert("RGB") if img.mode != "RGB" else img


def is_jpeg(path: Path) -> bool:
    """Whether the file at ``path`` starts as a JPEG does (whatever its suffix)."""
    with open(path, "rb") as f:
        return f.read(len(JPEG_MAGIC)) == JPEG_MAGIC


def _large_decode_thread() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(1, thread_name_prefix="d2lhelpers-large-decode")


def _restart_large_decode_thread() -> None:
    """A forked child has none of its parent's threads: it gets its own large-decode thread."""
    global _LARGE_DECODES
    _LARGE_DECODES = _large_decode_thread()


_LARGE_DECODES = _large_decode_thread()
if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_restart_large_decode_thread)


def decode_bytes(img: Image.Image, full_size: tuple[int, int]) -> int:
    """What decoding the opened ``img`` holds at its peak: its pixels twice (the decoded image
    and one converted copy), plus, for a progressive JPEG, the coefficients of its full size
    ``full_size`` (libjpeg keeps all of them while decoding, even at reduced size)."""
    width, height = img.size
    need = 2 * PIL_BYTES_PER_PIXEL * width * height
    if img.format == "JPEG" and img.info.get("progressive"):
        need += PROGRESSIVE_BYTES_PER_PIXEL * full_size[0] * full_size[1]
    return need


def _open(path: Path, size: int | None) -> tuple[Image.Image, int]:
    """Open ``path`` and say what its decode will hold (:func:`decode_bytes`); a JPEG opened
    for ``size`` is set to decode at reduced size (draft).

    Such a JPEG is opened by its plugin directly, past ``Image.open``'s decompression-bomb
    check on the full size, and checked against :data:`MAX_JPEG_PIXELS` instead (a progressive
    one against :data:`MAX_PROGRESSIVE_PIXELS`).
    """
    if size is None or not is_jpeg(path):
        img = Image.open(path)
        return img, decode_bytes(img, img.size)
    img = JpegImagePlugin.JpegImageFile(path)
    width, height = img.size
    if width * height > MAX_JPEG_PIXELS:
        img.close()
        raise BadImageError(
            path,
            f"{width} x {height} pixels is more than MAX_JPEG_PIXELS ({MAX_JPEG_PIXELS:,}); "
            "scale the photo down",
        )
    if img.info.get("progressive") and width * height > MAX_PROGRESSIVE_PIXELS:
        img.close()
        need = width * height * PROGRESSIVE_BYTES_PER_PIXEL / 2**20
        raise BadImageError(
            path,
            f"a progressive JPEG of {width} x {height} pixels, more than MAX_PROGRESSIVE_PIXELS "
            f"({MAX_PROGRESSIVE_PIXELS:,}): decoding it would take about {need:,.0f} MiB at any "
            "size (a progressive JPEG is decoded whole); save it as a baseline JPEG or scale "
            "it down",
        )
    img.draft("RGB", (size, size))  # DCT scaling: never below ``size``
    return img, decode_bytes(img, (width, height))


def load_rgb(path: Path, size: int | None = None) -> Image.Image:
    """Decode ``path`` to an upright RGB image; ``size`` lets a JPEG decode at reduced scale
    (and lets a large one past PIL's decompression-bomb guard, see the module docstring).

    A decode holding more than :data:`LARGE_DECODE_BYTES` waits for the one large-decode
    thread. Raises BadImageError naming the file when it is empty, truncated, not an image, or
    larger than the bounds.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img, need = _open(path, size)
            with img:
                if need <= LARGE_DECODE_BYTES:
                    return _decode(img)
                return _LARGE_DECODES.submit(_decode, img).result()
    except BadImageError:
        raise
    except (
        OSError,
        ValueError,
        SyntaxError,
        Image.DecompressionBombWarning,
        Image.DecompressionBombError,
    ) as err:
        raise BadImageError(path, _reason(err)) from err


def _decode(img: Image.Image) -> Image.Image:
    """The opened ``img``'s pixels, upright and RGB."""
    img.load()
    return _to_rgb(ImageOps.exif_transpose(img))


def _reason(err: BaseException) -> str:
    """Why decoding failed, in plain words (no Python class names)."""
    if isinstance(err, (Image.DecompressionBombWarning, Image.DecompressionBombError)):
        return f"more than {Image.MAX_IMAGE_PIXELS:,} pixels, PIL's limit for decoding at full size"
    if isinstance(err, Image.UnidentifiedImageError):
        return "not an image file in a format PIL reads"
    if isinstance(err, OSError) and err.strerror:
        return err.strerror.lower()
    return one_line(err, with_type=False)
