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
  megapixels, about 45 MiB at 1/8). A progressive JPEG's output is scaled too, but PIL holds
  all of its coefficients while decoding (about 3 bytes per pixel, whatever the size asked),
  so it is refused above :data:`MAX_PROGRESSIVE_PIXELS` (24 megapixels, about 70 MiB) before
  decoding, however small the file. One decode thus holds at most about 70 MiB of an image,
  and the decode threads of :func:`d2lhelpers.data.decode_folder` (at most 8) that much each.
  Other formats, and JPEGs decoded at full size, keep PIL's guard.
"""

from __future__ import annotations

import warnings
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


def _open(path: Path, size: int | None) -> Image.Image:
    """Open ``path``; a JPEG opened for ``size`` is set to decode at reduced size (draft).

    Such a JPEG is opened by its plugin directly, past ``Image.open``'s decompression-bomb
    check on the full size, and checked against :data:`MAX_JPEG_PIXELS` instead (a progressive
    one against :data:`MAX_PROGRESSIVE_PIXELS`).
    """
    if size is None or not is_jpeg(path):
        return Image.open(path)
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
    return img


def load_rgb(path: Path, size: int | None = None) -> Image.Image:
    """Decode ``path`` to an upright RGB image; ``size`` lets a JPEG decode at reduced scale
    (and lets a large one past PIL's decompression-bomb guard, see the module docstring).

    Raises BadImageError naming the file when it is empty, truncated, not an image, or larger
    than the bounds.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with _open(path, size) as img:
                img.load()
                img = ImageOps.exif_transpose(img)
                return _to_rgb(img)
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


def _reason(err: BaseException) -> str:
    """Why decoding failed, in plain words (no Python class names)."""
    if isinstance(err, (Image.DecompressionBombWarning, Image.DecompressionBombError)):
        return f"more than {Image.MAX_IMAGE_PIXELS:,} pixels, PIL's limit for decoding at full size"
    if isinstance(err, Image.UnidentifiedImageError):
        return "not an image file in a format PIL reads"
    if isinstance(err, OSError) and err.strerror:
        return err.strerror.lower()
    return one_line(err, with_type=False)
