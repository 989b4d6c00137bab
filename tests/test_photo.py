# ruff: noqa: RUF001  (Chinese text uses full-width punctuation on purpose)
"""The learner's own photo: every kind of file and URL, the test transform as the test loader
applies it, and the panel through simulated uploads and clicks.

These tests also run against ipywidgets 7.7.1 (Colab's): ``bash scripts/ipywidgets7_env.sh DIR``
then ``PYTHONPATH=DIR pytest tests/test_photo.py``.
"""

from __future__ import annotations

import contextlib
import http.server
import re
import socket
import struct
import time
import urllib.error
import zlib
from collections.abc import Iterator
from datetime import datetime, timezone
from io import BytesIO
from pathlib import Path

import ipywidgets
import numpy as np
import pytest
import torch
from http_server import running
from PIL import Image
from torchvision.models import resnet18

from d2lhelpers.book import photo_panel
from d2lhelpers.book.cam_plots import photo_overlay
from d2lhelpers.book.photo_panel import (
    CAM_TEXT,
    DISPLAY_SIDE,
    READING_TEXT,
    UPLOAD_TOOLTIP,
    PhotoPanel,
    display_image,
    display_size,
    english_detail,
    jpeg_bytes,
    photo_reason,
    uploaded_files,
)
from d2lhelpers.data import HOTDOG_CLASSES, BatchLoader, Recipe, decode_folder
from d2lhelpers.photo import (
    PhotoError,
    classify_photo,
    fetch_photo,
    load_photo,
    photo_pixels,
    unquoted,
)
from d2lhelpers.precision import choose_precision

pytestmark = pytest.mark.filterwarnings(
    "ignore:The `ipykernel.comm.Comm` class has been deprecated:DeprecationWarning"
)
RECIPE = Recipe(32)  # stored_size 37
JPEG = b"\xff\xd8\xff"
IPYWIDGETS_7 = ipywidgets.__version__.startswith("7.")


def encode(img: Image.Image, fmt: str, **options) -> bytes:
    buffer = BytesIO()
    img.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def gradient(width: int, height: int) -> Image.Image:
    """Red rising left to right, green top to bottom: orientation and scale are visible."""
    x = np.linspace(0, 255, width)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height)[:, None].repeat(width, 1)
    rgb = np.stack([x, y, np.full_like(x, 60)], 2).astype(np.uint8)
    return Image.fromarray(rgb)


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` pixels but holds almost none: a decoder that
    ignored the size would fail on it, not run out of memory."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10))


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    torch.manual_seed(0)
    model = resnet18(num_classes=2)
    model.train()
    with torch.no_grad():  # give BatchNorm non-trivial statistics
        model(torch.randn(4, 3, 32, 32) * 2 + 1)
    return model.eval()


@pytest.fixture(scope="module")
def good_jpeg() -> bytes:
    return encode(gradient(400, 300), "JPEG", quality=90)


@pytest.fixture(scope="session")
def huge_jpeg() -> bytes:
    """12000 x 9000 (108 megapixels, above PIL's 89-megapixel guard), 1.3 MB as JPEG."""
    return encode(Image.new("L", (12000, 9000), 128), "JPEG", quality=50)


def exif_rotated() -> bytes:
    """40 x 20 pixels stored, orientation 6: shown upright as 20 x 40."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(gradient(40, 20), "JPEG", exif=exif.tobytes())


def palette_with_transparency() -> bytes:
    img = Image.new("P", (30, 20), 0)
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    img.paste(1, (0, 0, 15, 20))
    return encode(img, "PNG", transparency=1)  # left half (index 1) transparent: white


# load_photo: files and bytes of every kind


def test_good_photo_from_path_and_bytes(tmp_path: Path, good_jpeg: bytes) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(good_jpeg)
    full = load_photo(path)
    assert full.mode == "RGB" and full.size == (400, 300)
    assert np.array_equal(np.asarray(load_photo(str(path))), np.asarray(full))
    assert np.array_equal(np.asarray(load_photo(good_jpeg)), np.asarray(full))
    assert load_photo(bytearray(good_jpeg), size=37).size == (50, 38)  # JPEG draft: 1/8
    assert load_photo(memoryview(good_jpeg), size=100).size == (200, 150)


@pytest.mark.parametrize(
    ("data", "size", "check"),
    [
        pytest.param(
            lambda: encode(Image.new("CMYK", (30, 20), (0, 255, 255, 0)), "JPEG"),
            (30, 20), lambda a: a[..., 0].min() > 200 and a[..., 1:].max() < 60, id="cmyk-jpeg",
        ),
        pytest.param(
            lambda: encode(Image.fromarray(np.full((20, 30), 65535 // 2, np.uint16)), "PNG"),
            (30, 20), lambda a: abs(int(a[0, 0, 0]) - 128) <= 1, id="16-bit-png",
        ),
        pytest.param(
            palette_with_transparency, (30, 20),
            lambda a: list(a[0, 0]) == [255, 255, 255] and list(a[0, -1]) == [255, 0, 0],
            id="palette-transparent-png",
        ),
        pytest.param(
            exif_rotated, (20, 40),
            lambda a: a[0, -1, 0] < 60 and a[-1, -1, 0] > 190,  # red now rises downwards
            id="exif-rotated-jpeg",
        ),
    ],
)  # fmt: skip
def test_unusual_images_become_upright_rgb(data, size, check) -> None:
    img = load_photo(data())
    assert img.mode == "RGB" and img.size == size
    assert check(np.asarray(img))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"hello, this is not an image", "not an image file"),
        (b"<html><body>a web page</body></html>", "not an image file"),
    ],
    ids=["empty", "text", "html"],
)
def test_bad_bytes_are_photo_errors_naming_the_input(data: bytes, reason: str) -> None:
    with pytest.raises(PhotoError, match=rf"^Could not read the photo cat\.jpg: .*{reason}") as err:
        load_photo(data, name="cat.jpg")
    assert "d2lhelpers-photo-" not in str(err.value)  # not the temporary file's name
    assert "complete image file" in str(err.value)
    assert isinstance(err.value, ValueError)


def test_truncated_jpeg(tmp_path: Path, good_jpeg: bytes) -> None:
    path = tmp_path / "cut.jpg"
    path.write_bytes(good_jpeg[: len(good_jpeg) // 2])
    with pytest.raises(PhotoError, match=rf"{path.name}: image file is truncated"):
        load_photo(path)
    with pytest.raises(PhotoError, match=r"uploaded photo: image file is truncated"):
        load_photo(path.read_bytes(), size=37)


def test_missing_file_folder_and_other_inputs(tmp_path: Path) -> None:
    with pytest.raises(PhotoError, match=r"nope\.jpg: no such file\. Check the path"):
        load_photo(tmp_path / "nope.jpg")
    with pytest.raises(PhotoError, match="a folder, not a file"):
        load_photo(tmp_path)
    with pytest.raises(PhotoError, match=r"only http:// and https://"):
        load_photo("ftp://example.com/cat.jpg")
    with pytest.raises(PhotoError, match="bytes, a file path or an http"):
        load_photo(12)  # type: ignore[arg-type]


def test_huge_jpeg_is_decoded_at_reduced_size(huge_jpeg: bytes) -> None:
    img = load_photo(huge_jpeg, size=RECIPE.resize_side)
    assert img.size == (1500, 1125)  # 1/8 of each side: never decoded at full size
    with pytest.raises(PhotoError, match=r"too large to decode safely \(12000 x 9000 pixels"):
        load_photo(huge_jpeg)  # at full size: refused before decoding


@pytest.mark.parametrize(
    ("width", "height", "reason"),
    [
        (12000, 9000, r"12000 x 9000 pixels, more than max_pixels"),
        (20000, 10000, r"more than 178,956,970 pixels"),
    ],
    ids=["above-max-pixels", "above-pil-bomb-error"],
)
def test_huge_png_is_refused_from_its_header(width: int, height: int, reason: str) -> None:
    with pytest.raises(PhotoError, match=reason) as err:
        load_photo(png_header(width, height), size=RECIPE.resize_side, name="huge.png")
    assert "huge.png is too large" in str(err.value) and "save it as JPEG" in str(err.value)
    small = encode(gradient(40, 30), "PNG")
    with pytest.raises(PhotoError, match="40 x 30 pixels, more than max_pixels=1,000"):
        load_photo(small, max_pixels=1000)


# URLs, served on 127.0.0.1


class Route:
    def __init__(self, body: bytes, status: int = 200, kind: str | None = None, **kw) -> None:
        self.body, self.status, self.kind = body, status, kind
        self.delay, self.length = kw.get("delay", 0.0), kw.get("length", True)


@pytest.fixture
def site(good_jpeg: bytes) -> Iterator[str]:
    """Base URL of a server with a photo, a 404, a web page, a slow and a large reply."""
    routes = {
        "/cat.jpg": Route(good_jpeg, kind="image/jpeg"),
        "/untyped.jpg": Route(good_jpeg),
        "/page": Route(b"<html>a page</html>", kind="text/html; charset=utf-8"),
        "/wrongly-typed": Route(b"not an image at all", kind="image/png"),
        "/slow.jpg": Route(good_jpeg, kind="image/jpeg", delay=1.0),
        "/big.bin": Route(b"\0" * 5000, kind="application/octet-stream"),
        "/big-unannounced": Route(b"\0" * 5000, length=False),
    }

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            route = routes.get(self.path) or Route(b"not found", status=404, kind="text/plain")
            time.sleep(route.delay)
            self.send_response(route.status)
            if route.kind:
                self.send_header("Content-Type", route.kind)
            if route.length:
                self.send_header("Content-Length", str(len(route.body)))
            self.end_headers()
            with contextlib.suppress(ConnectionError):  # the client gave up (timeout, too large)
                self.wfile.write(route.body)

        def log_message(self, *args: object) -> None:
            pass

    with running(http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)) as port:
        yield f"http://127.0.0.1:{port}"


def test_photo_from_url(site: str, good_jpeg: bytes) -> None:
    assert load_photo(f"{site}/cat.jpg").size == (400, 300)
    assert fetch_photo(f"  {site}/untyped.jpg\n") == good_jpeg
    assert load_photo(f"{site}/cat.jpg", size=37).size == (50, 38)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/missing.jpg", r"Downloading http://\S+/missing\.jpg failed: HTTP 404 Not Found"),
        ("/page", r"/page is not an image but text/html \(a web page\?\)"),
        ("/wrongly-typed", r"Could not read the photo http://\S+/wrongly-typed: "),
    ],
    ids=["404", "web-page", "not-an-image"],
)
def test_url_failures(site: str, path: str, message: str) -> None:
    with pytest.raises(PhotoError, match=message):
        load_photo(site + path)


def test_url_timeout_size_limit_and_no_server(site: str) -> None:
    # The server answers after 1 s: only a timeout below that (not the default 15 s) fails.
    with pytest.raises(
        PhotoError, match=r"slow\.jpg failed \((no complete reply within 0\.2 s|timed out)"
    ):
        fetch_photo(f"{site}/slow.jpg", timeout=0.2)
    for path in ("/big.bin", "/big-unannounced"):
        with pytest.raises(PhotoError, match="is larger than 0 MiB"):
            fetch_photo(site + path, max_bytes=1000)
    assert len(fetch_photo(f"{site}/big-unannounced", max_bytes=5000)) == 5000
    with pytest.raises(PhotoError, match=r"failed \([Cc]onnection refused"):
        fetch_photo("http://127.0.0.1:9/cat.jpg", timeout=2)


# classify_photo: exactly the test loader's transform


def test_classify_photo_equals_the_test_loader(
    tmp_path: Path, good_jpeg: bytes, net: torch.nn.Module
) -> None:
    split = tmp_path / "test"
    (split / "hotdog").mkdir(parents=True)
    (split / "not-hotdog").mkdir()
    (split / "hotdog" / "photo.jpg").write_bytes(good_jpeg)
    gradient(30, 50).save(split / "not-hotdog" / "other.png")
    images = decode_folder(split, RECIPE.resize_side, cache_dir=tmp_path / "cache")
    x, _ = next(iter(BatchLoader(images, 2, RECIPE, train=False)))
    with torch.inference_mode(), choose_precision(torch.device("cpu")).autocast():
        expected = net(x).float().softmax(1)

    for i, name in enumerate(["hotdog/photo.jpg", "not-hotdog/other.png"]):
        path = split / name
        decoded = photo_pixels(load_photo(path, size=RECIPE.resize_side), RECIPE)
        assert torch.equal(decoded, torch.as_tensor(images.pixels[i]))
        label, probability, probs = classify_photo(net, path, RECIPE, HOTDOG_CLASSES)
        assert torch.allclose(probs, expected[i], atol=1e-6)
        assert label == HOTDOG_CLASSES[int(expected[i].argmax())]
        assert probability == pytest.approx(expected[i].max().item(), abs=1e-6)
        from_bytes = classify_photo(net, path.read_bytes(), RECIPE, HOTDOG_CLASSES)
        assert torch.equal(from_bytes[2], probs)
    assert not net.training


def test_classify_photo_checks_the_classes(net: torch.nn.Module, good_jpeg: bytes) -> None:
    with pytest.raises(ValueError, match="2 outputs but classes are"):
        classify_photo(net, good_jpeg, RECIPE, ("a", "b", "c"))


# The panel


def test_uploaded_files_normalises_both_versions(good_jpeg: bytes) -> None:
    v7 = {"cat.jpg": {"metadata": {"name": "cat.jpg", "size": 3}, "content": b"abc"}}
    v8 = ({"name": "dog.png", "type": "image/png", "size": 3, "content": memoryview(b"xyz")},)
    assert uploaded_files(v7) == [("cat.jpg", b"abc")]
    assert uploaded_files(v8) == [("dog.png", b"xyz")]
    assert all(type(content) is bytes for _, content in uploaded_files(v8))
    assert uploaded_files({}) == uploaded_files(()) == []
    with pytest.raises(TypeError, match="Not a FileUpload value"):
        uploaded_files(b"abc")


UPLOADED_AT = datetime(2026, 1, 2, tzinfo=timezone.utc)  # a file's time: the same each upload


def upload(panel: PhotoPanel, name: str, content: bytes) -> None:
    """Simulate the browser's upload as the running ipywidgets receives one."""
    if IPYWIDGETS_7:  # the front end sends metadata and data, then bumps the counter
        panel.upload.metadata = [{"name": name, "type": "image/jpeg", "size": len(content)}]
        panel.upload.data = [content]
        panel.upload._counter += 1
    else:  # the same file again is the same value, as the front end sends it
        entry = {"name": name, "type": "image/jpeg", "size": len(content),
                 "content": memoryview(content), "last_modified": UPLOADED_AT}  # fmt: skip
        panel.upload.value = (entry,)


def shown(panel: PhotoPanel) -> bytes:
    return bytes(panel.image.value)


def shown_size(panel: PhotoPanel) -> tuple[tuple[int, int], tuple[str, str]]:
    """The shown JPEG's pixels, and the size the page draws it at."""
    pixels = Image.open(BytesIO(shown(panel))).size
    return pixels, (panel.image.layout.width, panel.image.layout.height)


def assert_prediction(panel: PhotoPanel) -> None:
    assert "预测：<b>" in panel.result.value, panel.result.value
    assert "热狗</b>（概率 " in panel.result.value and "%）" in panel.result.value
    assert shown(panel).startswith(JPEG) and panel.image.layout.display is None
    (width, height), (css_width, css_height) = shown_size(panel)
    assert max(width, height) <= DISPLAY_SIDE
    drawn = int(css_width.removesuffix("px")), int(css_height.removesuffix("px"))
    assert max(drawn) <= DISPLAY_SIDE and drawn[0] * height == pytest.approx(
        drawn[1] * width, 0.02 * drawn[0] * height
    )


def assert_error(panel: PhotoPanel, chinese: str, name: str = "") -> None:
    """A red line with the Chinese reason; the input named once, no English class name."""
    value = panel.result.value
    assert chinese in value and "#c62828" in value, value
    assert "Traceback" not in value and not re.search(r"[A-Za-z]*(Error|Exception)\b", value)
    assert "decompression bomb" not in value.lower()
    assert not name or value.count(name) <= 1, value
    assert READING_TEXT not in value
    assert shown(panel) == b"" and panel.image.layout.display == "none"


def test_panel_controls(monkeypatch: pytest.MonkeyPatch, net: torch.nn.Module) -> None:
    panel = PhotoPanel(net, RECIPE, HOTDOG_CLASSES)
    assert (panel.upload.accept, panel.upload.multiple) == ("image/*", False)
    assert panel.button.description == "识别" and panel.upload.description == "上传照片"
    assert isinstance(panel.widget, ipywidgets.VBox) and panel.result.value == ""
    # The button's title: the front ends show the model's tooltip ("null" when it is None).
    assert panel.upload.get_state()["tooltip"] == UPLOAD_TOOLTIP
    assert panel.button.get_state()["tooltip"]
    # The prediction sits beside the photo, not under a full-width image.
    assert panel.image in panel.widget.children[1].children
    assert panel.result in panel.widget.children[1].children
    seen = []
    monkeypatch.setattr("IPython.display.display", lambda *objs, **kw: seen.extend(objs))
    panel._ipython_display_()
    assert seen == [panel.widget]


def test_panel_uploads(net: torch.nn.Module, good_jpeg: bytes, huge_jpeg: bytes) -> None:
    panel = PhotoPanel(net, RECIPE, HOTDOG_CLASSES)
    upload(panel, "cat.jpg", good_jpeg)
    assert_prediction(panel)
    upload(panel, "notes.txt", b"not an image")
    assert_error(panel, "无法读取「notes.txt」：这不是图片文件", "notes.txt")
    upload(panel, "cut.jpg", good_jpeg[:500])
    assert_error(panel, "无法读取「cut.jpg」：文件不完整", "cut.jpg")
    upload(panel, "empty.jpg", b"")
    assert_error(panel, "无法读取「empty.jpg」：文件是空的（0 字节）。", "empty.jpg")
    upload(panel, "cmyk.jpg", encode(Image.new("CMYK", (30, 20), (0, 255, 255, 0)), "JPEG"))
    assert_prediction(panel)
    upload(panel, "16bit.png", encode(Image.fromarray(np.full((20, 30), 9000, np.uint16)), "PNG"))
    assert_prediction(panel)
    upload(panel, "palette.png", palette_with_transparency())
    assert_prediction(panel)
    upload(panel, "rotated.jpg", exif_rotated())
    assert_prediction(panel)
    assert shown_size(panel) == ((20, 40), ("40px", "80px"))  # upright, enlarged twice only
    upload(panel, "huge.jpg", huge_jpeg)
    assert_prediction(panel)
    assert shown_size(panel) == ((320, 240), ("320px", "240px"))
    upload(panel, "huge.png", png_header(12000, 9000))
    assert_error(panel, "无法读取「huge.png」：图片的像素太多", "huge.png")
    upload(panel, "bomb.png", png_header(20000, 10000))  # PIL's own guard
    assert_error(panel, "无法读取「bomb.png」：图片的像素太多", "bomb.png")


def test_the_same_file_uploaded_again_is_classified_again(
    net: torch.nn.Module, good_jpeg: bytes
) -> None:
    panel = PhotoPanel(net, RECIPE, HOTDOG_CLASSES)
    for _ in range(3):
        panel.result.value = ""
        upload(panel, "cat.jpg", good_jpeg)
        assert_prediction(panel)
    upload(panel, "notes.txt", b"not an image")
    panel.result.value = ""
    upload(panel, "notes.txt", b"not an image")  # an error is shown again, not left as it was
    assert_error(panel, "这不是图片文件", "notes.txt")


def test_the_photo_is_decoded_for_display_at_display_size(
    net: torch.nn.Module, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 512 x 600 JPEG: the model sees the 1/8 decode (64 x 75, as the data set's decoding for
    32 px crops); the page shows a decode at its own size, not that one enlarged."""
    photo = encode(gradient(512, 600), "JPEG", quality=90)
    seen = []
    real = photo_panel.classify_photo
    monkeypatch.setattr(
        photo_panel, "classify_photo",
        lambda net, image, *args: seen.append(image.size) or real(net, image, *args),
    )  # fmt: skip
    panel = PhotoPanel(net, RECIPE, HOTDOG_CLASSES)
    upload(panel, "big.jpg", photo)
    assert_prediction(panel)
    assert seen == [(64, 75)]
    assert shown_size(panel) == ((273, 320), ("273px", "320px"))
    small = encode(gradient(61, 76), "JPEG", quality=90)  # the book's example's size
    upload(panel, "small.jpg", small)
    assert shown_size(panel) == ((61, 76), ("122px", "152px"))  # enlarged twice, not 4 times


@pytest.mark.parametrize(("width", "height", "size"), [
    (61, 76, (122, 152)), (400, 300, (320, 240)), (300, 4000, (24, 320)), (160, 160, (320, 320)),
    (1, 1, (2, 2)),
])  # fmt: skip
def test_display_size(width: int, height: int, size: tuple[int, int]) -> None:
    assert display_size(width, height) == size


def test_reading_shows_while_a_photo_is_read_and_never_stays(
    tmp_path: Path, net: torch.nn.Module, good_jpeg: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    panel = PhotoPanel(net, RECIPE, HOTDOG_CLASSES)
    panel.show(good_jpeg)  # an earlier result, which must not read as the next one's
    seen = []
    real = photo_panel.load_photo

    def spy(source, **kwargs):
        seen.append((panel.result.value, shown(panel)))
        return real(source, **kwargs)

    monkeypatch.setattr(photo_panel, "load_photo", spy)
    path = tmp_path / "cat.jpg"
    path.write_bytes(good_jpeg)
    for address, outcome in [(str(path), "预测："), (str(tmp_path / "nope.jpg"), "找不到这个文件")]:
        seen.clear()
        panel.address.value = address
        panel.button.click()
        assert seen and all(READING_TEXT in text and image == b"" for text, image in seen)
        assert outcome in panel.result.value and READING_TEXT not in panel.result.value

    def fail(source, **kwargs):
        raise KeyboardInterrupt  # the kernel interrupted while reading

    monkeypatch.setattr(photo_panel, "load_photo", fail)
    with pytest.raises(KeyboardInterrupt):
        panel.classify(good_jpeg, "cat.jpg")
    assert panel.result.value == ""


def test_panel_path_and_url(
    tmp_path: Path, site: str, net: torch.nn.Module, good_jpeg: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    fetched = []
    real = photo_panel.fetch_photo
    monkeypatch.setattr(photo_panel, "fetch_photo", lambda url: fetched.append(url) or real(url))
    panel = PhotoPanel(net, RECIPE, HOTDOG_CLASSES)
    panel.button.click()
    assert_error(panel, "请先输入图片的路径或网址。")
    path = tmp_path / "cat.jpg"
    path.write_bytes(good_jpeg)
    for typed in (f"  {path}  ", f'"{path}"', f"'{path}'", f" “{path}” "):  # pasted with quotes
        panel.result.value = ""
        panel.address.value = typed
        panel.button.click()
        assert_prediction(panel)
    panel.address.value = str(tmp_path / "missing.jpg")
    panel.button.click()
    assert_error(panel, "missing.jpg」：找不到这个文件", "missing.jpg")
    panel.address.value = f"{site}/cat.jpg"
    panel.button.click()
    assert_prediction(panel)
    assert fetched == [f"{site}/cat.jpg"]  # fetched once, decoded for the model and the page
    panel.address.value = f"{site}/missing.jpg"
    panel.button.click()
    assert_error(panel, "服务器答复 HTTP 404", f"{site}/missing.jpg")
    panel.address.value = f"{site}/page"
    panel.button.click()
    assert_error(panel, "这个网址是网页，不是图片本身", f"{site}/page")
    panel.address.value = "ftp://example.com/cat.jpg"
    panel.button.click()
    assert_error(panel, "只能读取以 http:// 或 https:// 开头的网址", "ftp://example.com")


def chained(message: str, cause: BaseException) -> PhotoError:
    """A PhotoError raised from ``cause``, as :mod:`d2lhelpers.photo` raises them."""
    try:
        raise PhotoError(message) from cause
    except PhotoError as err:
        return err


URLError, HTTPError = urllib.error.URLError, urllib.error.HTTPError
BOMB = (
    "The photo u is too large to decode safely (Image size (200000000 pixels) exceeds limit of "
    "178956970 pixels, could be decompression bomb DOS attack.)."
)
KNOWN_CAUSES = {  # id: (the error, its Chinese reason)
    "http": (chained("u failed: HTTP 503.", HTTPError("u", 503, "Unavailable", {}, None)),  # type: ignore[arg-type]
             "HTTP 503"),
    "timeout": (chained("u failed.", URLError(TimeoutError("timed out"))), "没有答完"),
    "dns": (chained("u failed.", URLError(socket.gaierror(-2, "Name or service not known"))),
            "找不到这个网址的服务器"),
    "refused": (chained("u failed.", URLError(ConnectionRefusedError(111, "Connection refused"))),
                "拒绝了连接"),
    "permission": (chained("u.", PermissionError(13, "Permission denied")), "没有读取这个文件"),
    "too-long": (chained("u.", OSError(36, "File name too long")), "路径太长"),
    "bomb": (PhotoError(BOMB), "像素太多"),
    "bad-url": (chained("u is no address.", ValueError("Invalid IPv6 URL")), "网址的格式不对"),
    "bytes": (PhotoError("u is larger than 20 MiB; save a smaller version."), "文件超过 20 MiB"),
}  # fmt: skip


@pytest.mark.parametrize(("err", "reason"), KNOWN_CAUSES.values(), ids=KNOWN_CAUSES)
def test_known_causes_have_chinese_reasons(err: PhotoError, reason: str) -> None:
    assert reason in (photo_reason(err, "u") or "")
    assert reason in (photo_reason(err, "timeout.jpg") or "")


def test_unknown_causes_keep_a_clean_english_detail() -> None:
    err = PhotoError(
        "Could not read the photo timeout.jpg: timeout.jpg: FancyDecoderError: the "
        "quantum flux is inverted."
    )
    assert photo_reason(err, "timeout.jpg") is None  # its name is no cause
    detail = english_detail(err, "timeout.jpg")
    assert detail == "Could not read the photo the quantum flux is inverted."


def test_unquoted() -> None:
    assert unquoted(' "C:\\Users\\me\\cat.jpg" ') == "C:\\Users\\me\\cat.jpg"
    assert unquoted("'a b.jpg'") == "a b.jpg" and unquoted("“a.jpg”") == "a.jpg"
    assert unquoted('"a.jpg') == '"a.jpg' and unquoted('"') == '"' and unquoted("  ") == ""


def test_panel_shows_a_model_failure_as_a_message(net: torch.nn.Module, good_jpeg: bytes) -> None:
    panel = PhotoPanel(net, RECIPE, ("a", "b", "c"))
    assert panel.classify(good_jpeg, "cat.jpg") is False
    assert_error(panel, "识别时出错：<small>The net has 2 outputs")


def test_show_classifies_up_front(tmp_path: Path, net: torch.nn.Module, good_jpeg: bytes) -> None:
    """The built book keeps the widgets' state: the example's result is in it."""
    path = tmp_path / "example.jpg"
    path.write_bytes(good_jpeg)
    panel = PhotoPanel(net, RECIPE, HOTDOG_CLASSES)
    assert panel.show(path) is panel
    assert_prediction(panel)
    label, probability, _ = classify_photo(net, path, RECIPE, HOTDOG_CLASSES)
    expected = {"hotdog": "热狗", "not-hotdog": "非热狗"}[label]
    assert f"<b>{expected}</b>（概率 {probability:.1%}）" in panel.result.value
    state = panel.image.get_state()
    assert bytes(state["value"]).startswith(JPEG)
    assert panel.image.layout.get_state()["width"] == "320px"  # in the saved state too
    assert panel.show(good_jpeg).result.value == panel.result.value


def test_grad_cam_box_off_by_default_leaves_the_photo_as_it_was(
    net: torch.nn.Module, good_jpeg: bytes
) -> None:
    panel = PhotoPanel(net, RECIPE, HOTDOG_CLASSES)
    assert (panel.cam.value, panel.cam.description) == (False, CAM_TEXT)
    assert panel.cam in panel.widget.children[0].children
    upload(panel, "cat.jpg", good_jpeg)
    assert_prediction(panel)
    plain = jpeg_bytes(display_image(load_photo(good_jpeg, size=DISPLAY_SIDE)))
    assert shown(panel) == plain


def pixels_of(jpeg: bytes) -> np.ndarray:
    return np.asarray(Image.open(BytesIO(jpeg)), dtype=float)


def test_grad_cam_box_lays_the_heat_map_over_the_photo(
    net: torch.nn.Module, good_jpeg: bytes
) -> None:
    """Ticked from the start: the heat map of the model's input over the centre of the photo
    the model saw (7/8 of each side at 32 of 37 px), the photo unchanged around it."""
    panel = PhotoPanel(net, RECIPE, HOTDOG_CLASSES, gradcam=True)
    assert panel.cam.value is True
    upload(panel, "cat.jpg", good_jpeg)
    assert_prediction(panel)
    small = display_image(load_photo(good_jpeg, size=DISPLAY_SIDE))
    model_view = load_photo(good_jpeg, size=RECIPE.resize_side)
    assert shown(panel) == jpeg_bytes(photo_overlay(net, model_view, small, RECIPE))
    difference = np.abs(pixels_of(shown(panel)) - np.asarray(small, dtype=float)).mean(2)
    assert small.size == (320, 240)  # centre box 277 x 208 at (21, 16)
    assert difference[:, :16].mean() < 3 and difference[:12].mean() < 3  # around: JPEG noise
    assert difference[20:220, 25:295].mean() > 20


def test_ticking_and_unticking_redraw_the_photo(net: torch.nn.Module, good_jpeg: bytes) -> None:
    panel = PhotoPanel(net, RECIPE, HOTDOG_CLASSES)
    panel.cam.value = True  # no photo yet: nothing to draw, no error
    assert shown(panel) == b"" and panel.result.value == ""
    panel.cam.value = False
    upload(panel, "cat.jpg", good_jpeg)
    plain, text = shown(panel), panel.result.value
    panel.cam.value = True
    assert shown(panel) != plain and panel.result.value == text
    assert (
        shown(panel)
        == PhotoPanel(net, RECIPE, HOTDOG_CLASSES, gradcam=True).show(good_jpeg).image.value
    )
    panel.cam.value = False
    assert shown(panel) == plain and panel.result.value == text


def test_the_grad_cam_layer_can_be_chosen(net: torch.nn.Module, good_jpeg: bytes) -> None:
    panel = PhotoPanel(net, RECIPE, HOTDOG_CLASSES, gradcam=True, cam_layer="layer2")
    upload(panel, "cat.jpg", good_jpeg)
    small = display_image(load_photo(good_jpeg, size=DISPLAY_SIDE))
    model_view = load_photo(good_jpeg, size=RECIPE.resize_side)
    assert shown(panel) == jpeg_bytes(photo_overlay(net, model_view, small, RECIPE, "layer2"))
    assert shown(panel) != jpeg_bytes(photo_overlay(net, model_view, small, RECIPE))


def test_a_net_without_a_last_stage_shows_a_message(good_jpeg: bytes) -> None:
    tiny = torch.nn.Sequential(
        torch.nn.Conv2d(3, 2, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()
    )
    panel = PhotoPanel(tiny, RECIPE, HOTDOG_CLASSES)
    upload(panel, "cat.jpg", good_jpeg)
    assert_prediction(panel)
    panel.cam.value = True
    assert_error(panel, "无法画出 Grad-CAM 热图：<small>Sequential has no layer4")
    assert PhotoPanel(tiny, RECIPE, HOTDOG_CLASSES, gradcam=True).classify(good_jpeg) is False


def test_ipywidgets_version() -> None:
    """Shows which ipywidgets ran the panel tests (run again with 7.7.1, see the docstring)."""
    print(f"ipywidgets {ipywidgets.__version__}")
    assert ipywidgets.__version__.split(".")[0] in ("7", "8")
