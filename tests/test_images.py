"""Tests for d2lhelpers.images: which files count as images and robust decoding to RGB."""

from __future__ import annotations

import io
import os
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, features

from d2lhelpers.images import (
    MAX_JPEG_PIXELS,
    MAX_PROGRESSIVE_PIXELS,
    PIL_BYTES_PER_PIXEL,
    PROGRESSIVE_BYTES_PER_PIXEL,
    BadImageError,
    decode_bytes,
    is_image_file,
    list_class_folder,
    load_rgb,
)

CLASSES = ("hotdog", "not-hotdog")


def noise(w: int = 48, h: int = 40, seed: int = 0) -> Image.Image:
    """Random RGB pixels: compresses badly, so half a file is really truncated."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def pixel(img: Image.Image, xy: tuple[int, int] = (0, 0)) -> tuple[int, int, int]:
    return img.getpixel(xy)


def close(actual: tuple[int, ...], expected: tuple[int, ...], tol: int) -> bool:
    return all(abs(a - e) <= tol for a, e in zip(actual, expected, strict=True))


# --------------------------------------------------------------------------------------------
# is_image_file / list_class_folder
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [".DS_Store", "._x.jpg", ".hidden.png", "Thumbs.db", "desktop.ini", "notes.txt", "x.jpg.part"],
)
def test_is_image_file_rejects_hidden_system_and_other_files(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"x")
    assert is_image_file(path) is False


@pytest.mark.parametrize("name", ["a.jpg", "b.JPEG", "c.png", "d.webp", "e.gif", "f.tif"])
def test_is_image_file_accepts_image_suffixes(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"x")
    assert is_image_file(path) is True


def test_is_image_file_rejects_a_folder_with_an_image_suffix(tmp_path: Path) -> None:
    folder = tmp_path / "album.jpg"
    folder.mkdir()
    assert is_image_file(folder) is False


def test_list_class_folder_lists_sorted_images_with_labels(tmp_path: Path) -> None:
    for name, files in {"hotdog": ["b.png", "a.jpg"], "not-hotdog": ["z.png"]}.items():
        (tmp_path / name).mkdir()
        for f in files:
            (tmp_path / name / f).write_bytes(b"x")
    (tmp_path / "hotdog" / ".DS_Store").write_bytes(b"x")
    (tmp_path / "hotdog" / "._a.jpg").write_bytes(b"x")
    (tmp_path / "not-hotdog" / "readme.txt").write_text("hi")

    items = list_class_folder(tmp_path, CLASSES)

    assert items == [
        (tmp_path / "hotdog" / "a.jpg", 0),
        (tmp_path / "hotdog" / "b.png", 0),
        (tmp_path / "not-hotdog" / "z.png", 1),
    ]


def test_list_class_folder_missing_split_names_the_path(tmp_path: Path) -> None:
    split = tmp_path / "train"
    with pytest.raises(FileNotFoundError, match=re.escape(str(split))):
        list_class_folder(split, CLASSES)


def test_list_class_folder_missing_class_names_the_folder(tmp_path: Path) -> None:
    (tmp_path / "hotdog").mkdir()
    (tmp_path / "hotdog" / "a.png").write_bytes(b"x")
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "not-hotdog"))):
        list_class_folder(tmp_path, CLASSES)


def test_list_class_folder_without_images_names_the_folder(tmp_path: Path) -> None:
    (tmp_path / "hotdog").mkdir()
    (tmp_path / "hotdog" / "a.png").write_bytes(b"x")
    empty = tmp_path / "not-hotdog"
    empty.mkdir()
    (empty / ".DS_Store").write_bytes(b"x")
    (empty / "Thumbs.db").write_bytes(b"x")
    (empty / "notes.txt").write_text("nothing here")
    with pytest.raises(ValueError, match=re.escape(str(empty))):
        list_class_folder(tmp_path, CLASSES)


# --------------------------------------------------------------------------------------------
# load_rgb: every PIL mode becomes upright RGB with sensible values
# --------------------------------------------------------------------------------------------


def test_load_rgb_grayscale_l(tmp_path: Path) -> None:
    path = tmp_path / "gray.png"
    Image.new("L", (20, 12), 100).save(path)
    img = load_rgb(path)
    assert (img.mode, img.size) == ("RGB", (20, 12))
    assert pixel(img) == (100, 100, 100)


def test_load_rgb_one_bit(tmp_path: Path) -> None:
    path = tmp_path / "bw.png"
    bw = Image.new("1", (16, 16), 1)
    bw.putpixel((3, 4), 0)
    bw.save(path)
    img = load_rgb(path)
    assert (img.mode, img.size) == ("RGB", (16, 16))
    assert pixel(img) == (255, 255, 255)
    assert pixel(img, (3, 4)) == (0, 0, 0)


def _palette_image() -> Image.Image:
    img = Image.new("P", (16, 16), 0)
    img.putpalette([255, 0, 0, 0, 0, 255] + [0, 0, 0] * 254)
    img.putpixel((5, 5), 1)
    return img


def test_load_rgb_palette_without_transparency(tmp_path: Path) -> None:
    path = tmp_path / "pal.png"
    _palette_image().save(path)
    with Image.open(path) as raw:
        assert raw.mode == "P"
    img = load_rgb(path)
    assert img.mode == "RGB"
    assert pixel(img) == (255, 0, 0)
    assert pixel(img, (5, 5)) == (0, 0, 255)


def test_load_rgb_palette_with_transparency_becomes_white(tmp_path: Path) -> None:
    path = tmp_path / "pal_t.png"
    _palette_image().save(path, transparency=0)
    img = load_rgb(path)
    assert img.mode == "RGB"
    assert pixel(img) == (255, 255, 255)  # index 0 is transparent: white, not red
    assert pixel(img, (5, 5)) == (0, 0, 255)


def test_load_rgb_rgba_transparent_pixels_become_white(tmp_path: Path) -> None:
    path = tmp_path / "rgba.png"
    img = Image.new("RGBA", (16, 16), (0, 0, 0, 0))
    img.putpixel((1, 1), (200, 10, 20, 255))
    img.putpixel((2, 2), (0, 0, 0, 128))
    img.save(path)
    rgb = load_rgb(path)
    assert (rgb.mode, rgb.size) == ("RGB", (16, 16))
    assert pixel(rgb) == (255, 255, 255)
    assert pixel(rgb, (1, 1)) == (200, 10, 20)
    assert close(pixel(rgb, (2, 2)), (127, 127, 127), 1)  # half-transparent black on white


def test_load_rgb_la(tmp_path: Path) -> None:
    path = tmp_path / "la.png"
    img = Image.new("LA", (16, 16), (0, 0))
    img.putpixel((4, 4), (50, 255))
    img.save(path)
    rgb = load_rgb(path)
    assert rgb.mode == "RGB"
    assert pixel(rgb) == (255, 255, 255)
    assert pixel(rgb, (4, 4)) == (50, 50, 50)


def test_load_rgb_cmyk_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(path, quality=95)
    with Image.open(path) as raw:
        assert raw.mode == "CMYK"
    rgb = load_rgb(path)
    assert (rgb.mode, rgb.size) == ("RGB", (16, 16))
    assert close(pixel(rgb, (8, 8)), (255, 0, 0), 8)


def test_load_rgb_16_bit_grayscale_is_scaled_not_clipped(tmp_path: Path) -> None:
    path = tmp_path / "g16.png"
    values = np.zeros((8, 8), np.uint16)
    values[0, 0], values[0, 1], values[0, 2] = 65535, 32768, 256
    Image.fromarray(values).save(path)
    with Image.open(path) as raw:
        assert raw.mode.startswith("I")
    rgb = load_rgb(path)
    assert rgb.mode == "RGB"
    assert pixel(rgb, (0, 0)) == (255, 255, 255)
    assert close(pixel(rgb, (1, 0)), (128, 128, 128), 1)
    assert pixel(rgb, (2, 0)) == (1, 1, 1)  # 256/65535*255 = 0.996, not clipped to 255
    assert pixel(rgb, (5, 5)) == (0, 0, 0)


def test_load_rgb_float_mode_f(tmp_path: Path) -> None:
    path = tmp_path / "float.tif"
    values = np.full((8, 8), 200.0, np.float32)
    values[0, 0] = 0.0
    Image.fromarray(values).save(path)
    with Image.open(path) as raw:
        assert raw.mode == "F"
    rgb = load_rgb(path)
    assert rgb.mode == "RGB"
    assert pixel(rgb, (3, 3)) == (200, 200, 200)
    assert pixel(rgb, (0, 0)) == (0, 0, 0)


def test_load_rgb_applies_exif_rotation(tmp_path: Path) -> None:
    path = tmp_path / "rotated.jpg"
    img = Image.new("RGB", (32, 16), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 16, 16))  # left half red, right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    img.save(path, exif=exif, quality=95)

    rgb = load_rgb(path)

    assert rgb.size == (16, 32)  # width and height swapped
    assert close(pixel(rgb, (8, 2)), (255, 0, 0), 40)  # the left half is now on top
    assert close(pixel(rgb, (8, 29)), (0, 0, 255), 40)


def test_load_rgb_multi_frame_gif_uses_first_frame(tmp_path: Path) -> None:
    path = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (16, 16), c) for c in [(255, 0, 0), (0, 0, 255), (0, 255, 0)]]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50)
    with Image.open(path) as raw:
        assert raw.n_frames == 3
    rgb = load_rgb(path)
    assert (rgb.mode, rgb.size) == ("RGB", (16, 16))
    assert pixel(rgb) == (255, 0, 0)


@pytest.mark.skipif(not features.check("webp"), reason="Pillow built without WebP")
def test_load_rgb_webp(tmp_path: Path) -> None:
    path = tmp_path / "green.webp"
    Image.new("RGB", (16, 12), (0, 255, 0)).save(path, lossless=True)
    rgb = load_rgb(path)
    assert (rgb.mode, rgb.size) == ("RGB", (16, 12))
    assert pixel(rgb, (5, 5)) == (0, 255, 0)


def test_load_rgb_jpeg_draft_never_goes_below_size(tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"
    Image.new("RGB", (400, 300), (10, 200, 30)).save(path, quality=95)
    rgb = load_rgb(path, size=64)
    assert rgb.mode == "RGB"
    assert min(rgb.size) >= 64
    assert rgb.size[0] < 400  # DCT scaling did reduce it
    assert close(pixel(rgb, (10, 10)), (10, 200, 30), 6)


# --------------------------------------------------------------------------------------------
# load_rgb: bad files raise BadImageError naming the path
# --------------------------------------------------------------------------------------------


def _zero_bytes(path: Path) -> None:
    path.write_bytes(b"")


def _truncated(fmt: str):
    def write(path: Path) -> None:
        buf = io.BytesIO()
        noise().save(buf, fmt)
        data = buf.getvalue()
        path.write_bytes(data[: len(data) // 2])

    return write


def _text(path: Path) -> None:
    path.write_text("this is not an image\n" * 10)


@pytest.mark.parametrize(
    ("name", "write"),
    [
        ("empty.jpg", _zero_bytes),
        ("empty.png", _zero_bytes),
        ("half.jpg", _truncated("JPEG")),
        ("half.png", _truncated("PNG")),
        ("text.jpg", _text),
    ],
)
def test_load_rgb_bad_files_raise_bad_image_error(tmp_path: Path, name: str, write) -> None:
    path = tmp_path / name
    write(path)
    with pytest.raises(BadImageError, match=re.escape(str(path))) as info:
        load_rgb(path)
    assert isinstance(info.value, ValueError)


def test_full_noise_files_are_fine(tmp_path: Path) -> None:
    """The untruncated versions of the files above decode (so truncation is what fails)."""
    for fmt, suffix in [("JPEG", ".jpg"), ("PNG", ".png")]:
        path = tmp_path / f"full{suffix}"
        noise().save(path, fmt)
        assert load_rgb(path).size == (48, 40)


def _png_claiming_size(width: int, height: int) -> bytes:
    """A 1x1 PNG whose header claims ``width x height`` (a decompression bomb header)."""
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    chunk = bytearray(data[12:29])  # b"IHDR" + 13 bytes
    chunk[4:12] = struct.pack(">II", width, height)
    data[12:29] = chunk
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(chunk)))
    return bytes(data)


def test_load_rgb_moderate_decompression_bomb_is_bad_image(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_claiming_size(13_000, 13_000))  # over MAX_IMAGE_PIXELS, under 2x
    with pytest.raises(BadImageError, match=re.escape(str(path))):
        load_rgb(path)


def test_load_rgb_huge_decompression_bomb_is_bad_image(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_claiming_size(20_000, 20_000))  # over 2x MAX_IMAGE_PIXELS
    with pytest.raises(BadImageError, match=re.escape(str(path))):
        load_rgb(path)


# --------------------------------------------------------------------------------------------
# Large photos: JPEGs decode at reduced size past PIL's bomb guard, up to MAX_JPEG_PIXELS
# --------------------------------------------------------------------------------------------


def _jpeg_claiming_size(width: int, height: int, progressive: bool = False) -> bytes:
    """A small JPEG whose frame header (SOF0, or SOF2 when progressive) claims ``width x
    height``."""
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(buf, "JPEG", progressive=progressive)
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc2" if progressive else b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def test_large_jpeg_decodes_at_reduced_size_past_the_bomb_guard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 160 x 120 photo against a guard lowered to 5,000 pixels stands for a 200 MP photo
    against PIL's 89 MP: over twice the guard, which PIL refuses outright."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5_000)
    path = tmp_path / "phone.jpg"
    Image.new("RGB", (160, 120), (20, 180, 40)).save(path, quality=95)
    with pytest.raises(BadImageError, match="PIL's limit for decoding at full size"):
        load_rgb(path)  # at full size the guard stays
    img = load_rgb(path, size=32)
    assert img.size == (80, 60)  # 1/2 of each side: 1/4 would bring the short side below 32
    assert np.abs(np.asarray(img, np.int16) - (20, 180, 40)).max() < 12


def test_jpeg_beyond_max_jpeg_pixels_is_refused_naming_the_bound(tmp_path: Path) -> None:
    path = tmp_path / "huge.jpg"
    path.write_bytes(_jpeg_claiming_size(40_000, 30_000))  # 1,200 MP
    with pytest.raises(BadImageError, match="MAX_JPEG_PIXELS") as info:
        load_rgb(path, size=64)
    assert str(path) in str(info.value) and "40000 x 30000" in str(info.value)
    assert f"{MAX_JPEG_PIXELS:,}" in str(info.value)


# Progressive JPEGs are decoded at full size whatever the size asked: bounded from the header


@pytest.mark.parametrize("size", [16, 64, 512])
def test_a_progressive_jpeg_above_the_bound_is_refused_from_its_header(
    tmp_path: Path, size: int
) -> None:
    """A 3 KiB file declaring 30000 x 30000 took 2.6 GB to decode at any requested size."""
    path = tmp_path / "bomb.jpg"
    path.write_bytes(_jpeg_claiming_size(30_000, 30_000, progressive=True))
    with pytest.raises(BadImageError, match="progressive JPEG of 30000 x 30000") as info:
        load_rgb(path, size=size)
    assert f"MAX_PROGRESSIVE_PIXELS ({MAX_PROGRESSIVE_PIXELS:,})" in str(info.value)


def test_a_progressive_jpeg_within_the_bound_decodes(tmp_path: Path) -> None:
    path = tmp_path / "web.jpg"
    Image.new("RGB", (400, 300), (20, 180, 40)).save(path, "JPEG", progressive=True)
    assert load_rgb(path, size=64).size == (100, 75)  # scaled output, coefficients held whole


PEAK_SCRIPT = """
import resource, sys, warnings
from pathlib import Path
from d2lhelpers import data
from d2lhelpers.images import load_rgb
folder = Path(sys.argv[1])
data.__dict__["_decode_workers"] = lambda: int(sys.argv[2])
warnings.simplefilter("ignore")
load_rgb(folder / "warm.jpg", size=64)  # imports and first-use allocations, before measuring
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
images = data.decode_folder(folder / "train", 64, ("hotdog", "not-hotdog"), folder / "cache")
print(len(images), (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


def test_decode_memory_is_bounded_for_every_jpeg_and_the_threads_together(tmp_path: Path) -> None:
    """Three small files declaring 30000 x 30000 progressive, beside ordinary photos, on two
    decode threads (3.8 GB before): the peak stays far below one of them decoded (2.6 GB)."""
    Image.new("RGB", (64, 64), (1, 2, 3)).save(tmp_path / "warm.jpg")
    for name in ("hotdog", "not-hotdog"):
        folder = tmp_path / "train" / name
        folder.mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (300, 200), (40 * i, 90, 30)).save(folder / f"ok{i}.jpg")
            Image.new("RGB", (300, 200), (90, 40 * i, 30)).save(
                folder / f"web{i}.jpg", progressive=True
            )
        for i in range(3):
            (folder / f"bomb{i}.jpg").write_bytes(_jpeg_claiming_size(30_000, 30_000, True))
    count, peak_mib = _decode_folder_peak(tmp_path, threads=2)
    assert count == 12  # the bombs skipped, every other photo decoded
    assert peak_mib < 100, f"peak RSS growth {peak_mib} MiB"


def _decode_folder_peak(folder: Path, threads: int) -> tuple[int, int]:
    """How many images ``decode_folder`` decoded from ``folder/train`` on ``threads`` threads,
    and by how many MiB that raised the peak memory of a fresh process."""
    done = subprocess.run(
        [sys.executable, "-c", PEAK_SCRIPT, str(folder), str(threads)],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    count, peak_mib = map(int, done.stdout.split())
    return count, peak_mib


def test_large_decodes_do_not_multiply_with_the_decode_threads(tmp_path: Path) -> None:
    """Eight 16-megapixel progressive JPEGs (about 50 MiB each to decode) on four threads: the
    peak stays that of about one of them (it was four: 200 MiB, each thread decoding one and
    its allocator keeping the freed memory)."""
    Image.new("RGB", (64, 64), (1, 2, 3)).save(tmp_path / "warm.jpg")
    for name in ("hotdog", "not-hotdog"):
        folder = tmp_path / "train" / name
        folder.mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (4600, 3500), (40 * i, 90, 30)).save(
                folder / f"web{i}.jpg", progressive=True
            )
    count, peak_mib = _decode_folder_peak(tmp_path, threads=4)
    assert count == 8
    assert peak_mib < 100, f"peak RSS growth {peak_mib} MiB"


def test_what_a_decode_holds_counts_a_progressive_jpegs_full_size(tmp_path: Path) -> None:
    for progressive in (False, True):
        path = tmp_path / f"photo-{progressive}.jpg"
        Image.new("RGB", (800, 600), (20, 180, 40)).save(path, progressive=progressive)
        with Image.open(path) as img:
            img.draft("RGB", (64, 64))  # 100 x 75
            pixels = 2 * PIL_BYTES_PER_PIXEL * 100 * 75  # decoded, and one converted copy
            coefficients = PROGRESSIVE_BYTES_PER_PIXEL * 800 * 600 if progressive else 0
            assert decode_bytes(img, (800, 600)) == pixels + coefficients
    with Image.open(tmp_path / "photo-False.jpg") as img:
        img.save(tmp_path / "photo.png")
    with Image.open(tmp_path / "photo.png") as img:
        assert decode_bytes(img, img.size) == 2 * PIL_BYTES_PER_PIXEL * 800 * 600


def test_a_large_decode_that_fails_names_the_file(tmp_path: Path) -> None:
    """Half of a 16-megapixel progressive JPEG: decoded on the large-decode thread, it fails
    there, and the error still names the file and says why."""
    buf = io.BytesIO()
    Image.new("RGB", (4600, 3500), (20, 180, 40)).save(buf, "JPEG", progressive=True)
    path = tmp_path / "cut.jpg"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(BadImageError, match=re.escape(f"{path}: image file is truncated")):
        load_rgb(path, size=64)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX")
def test_a_forked_child_decodes_large_images_on_its_own_thread(tmp_path: Path) -> None:
    """The child of a process that has used its large-decode thread gets its own (a copy of
    the parent's would wait for a thread the child does not have)."""
    path = tmp_path / "web.jpg"
    Image.new("RGB", (4600, 3500), (20, 180, 40)).save(path, progressive=True)
    assert load_rgb(path, size=64).size == (575, 438)
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from d2lhelpers.images import load_rgb\n"
        "path = Path(sys.argv[1])\n"
        "load_rgb(path, size=64)\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    os._exit(0 if load_rgb(path, size=64).size == (575, 438) else 1)\n"
        "print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert done.stdout.strip() == "0"
