# ruff: noqa: RUF001  (Chinese text uses full-width punctuation on purpose)
"""The photo panel: upload a photo, or give its path or URL, and see the model's prediction.

The loading and classifying are :mod:`d2lhelpers.photo`'s; :meth:`PhotoPanel.show` classifies
an example up front, so the built book (saved widget state, no kernel) shows a result. The
model sees the photo decoded as the data set is (for ``recipe.resize_side``); the panel shows
a second decode, at display size (:data:`DISPLAY_SIDE` pixels at most, a small photo enlarged
at most :data:`MAX_ENLARGE` times), with the prediction beside it; ticking :data:`CAM_TEXT` lays
the Grad-CAM heat map of the predicted class over the part of it the model saw
(:func:`~d2lhelpers.book.cam_plots.photo_overlay`). A URL is fetched once for both decodes.
Errors are one Chinese line with one reason (:func:`photo_reason`).
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Sequence
from io import BytesIO
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import torch
from PIL import Image
from torch import nn
from traitlets import Unicode

from ..checks import one_line, positive_int
from ..data import Recipe
from ..fileutil import display_path
from ..photo import (
    MAX_DOWNLOAD_BYTES,
    PhotoError,
    Source,
    classify_photo,
    fetch_photo,
    is_url,
    load_photo,
    shown,
    unquoted,
)
from .cam_plots import photo_overlay
from .labels import class_label
from .tooltips import tooltip

DISPLAY_SIDE = 320  # the longer side of the photo shown in the panel, in pixels at most
MAX_ENLARGE = 2  # a small photo is shown at most this many times its size
READING_TEXT = "正在读取……"
UPLOAD_TOOLTIP = "选择一张照片（JPEG、PNG、WebP 等），选好后立即识别"
CAM_TEXT = "显示模型在看哪里（Grad-CAM）"
LABEL_CHARS = 60  # a longer name or address is shortened in messages
MIN_LABEL = 4  # a shorter name is not taken out of a message (it could be part of a word)
# What a PhotoError, its causes, or their types say -> the reason, in Chinese; the first match
# wins. The input's own name is taken out of the text before matching.
REASONS = (
    (("too large to decode", "decompression", "max_pixels"),
     "图片的像素太多，无法安全解码。请把它缩小（例如长边 4000 像素），或存为 JPEG 后再试。"),
    (("is larger than",),
     f"文件超过 {MAX_DOWNLOAD_BYTES >> 20} MiB。请换一张小一些的照片。"),
    (("not an image but",),
     "这个网址是网页，不是图片本身。请在图片上点右键，选「复制图片地址」。"),
    (("timed out", "timeout", "deadline"),
     "网址在限定时间内没有答完。请检查网址和网络，或把照片存下来再上传。"),
    (("gaierror", "name or service not known", "nodename nor servname", "getaddrinfo"),
     "找不到这个网址的服务器。请检查网址。"),
    (("refused",), "服务器拒绝了连接。请检查网址。"),
    (("only http",), "只能读取以 http:// 或 https:// 开头的网址。"),
    (("no such file", "filenotfounderror"), "找不到这个文件。请检查路径，或直接上传照片。"),
    (("a folder, not a file", "isadirectoryerror"), "这是一个文件夹，不是文件。"),
    (("permission", "access is denied"), "没有读取这个文件的权限。"),
    (("name too long",), "路径太长。"),
    (("is empty", "0 bytes"), "文件是空的（0 字节）。"),
    (("truncated",), "文件不完整（也许没有下载或复制完）。"),
    (("cannot identify image", "unidentifiedimageerror"),
     "这不是图片文件，或是无法识别的格式。请用 JPEG、PNG、WebP、GIF、BMP 或 TIFF。"),
    (("invalid url", "invalidurl", "invalid ipv6 url", "nonnumeric port", "malformed"),
     "网址的格式不对。请检查网址。"),
    (("downloading", "urlerror", "connection"),
     "下载失败。请检查网址和网络，或把照片存下来再上传。"),
)  # fmt: skip
HTTP_STATUS = re.compile(r"\bhttp(?: error)? (\d{3})\b")  # "HTTP 404", "HTTP Error 404"
CLASS_NAME = re.compile(r"\b[A-Z]\w*(?:Error|Exception|Warning)\b:?\s*")


def uploaded_files(value: Any) -> list[tuple[str, bytes]]:
    """A ``FileUpload.value`` as ``[(name, content bytes)]``, for ipywidgets 7 (a dict of name
    -> {"metadata", "content"}) and 8 (a tuple of dicts with "name" and "content")."""
    if isinstance(value, dict):
        return [(str(name), bytes(entry["content"])) for name, entry in value.items()]
    if isinstance(value, (tuple, list)):
        return [(str(entry["name"]), bytes(entry["content"])) for entry in value]
    raise TypeError(f"Not a FileUpload value: {type(value).__name__}.")


def display_size(width: int, height: int, side: int = DISPLAY_SIDE) -> tuple[int, int]:
    """The size a ``width`` x ``height`` photo is shown at: its longer side ``side`` pixels,
    but a small photo enlarged at most :data:`MAX_ENLARGE` times; the aspect ratio kept."""
    scale = min(side / max(width, height), MAX_ENLARGE)
    return max(1, round(width * scale)), max(1, round(height * scale))


def display_image(image: Image.Image, side: int = DISPLAY_SIDE) -> Image.Image:
    """A copy of ``image`` scaled down to at most ``side`` pixels on its longer side."""
    small = image.copy()
    small.thumbnail((side, side), Image.Resampling.BICUBIC)
    return small


def jpeg_bytes(image: Image.Image) -> bytes:
    """``image`` as JPEG bytes (quality 85)."""
    buffer = BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def photo_reason(err: BaseException, label: str = "") -> str | None:
    """Why ``err`` (a :class:`PhotoError`, its causes included) happened, in Chinese; None
    when the cause is not one :data:`REASONS` knows. ``label`` (the input's name, which the
    messages repeat) is left out of the matching."""
    text = " ".join(_chain_words(err)).lower()
    if len(label) >= MIN_LABEL:
        text = text.replace(label.lower(), " ")
    status = HTTP_STATUS.search(text)
    if status:
        return f"服务器答复 HTTP {status[1]}，没有给出图片。请检查网址，或把照片存下来再上传。"
    for needles, reason in REASONS:
        if any(needle in text for needle in needles):
            return reason
    return None


def _chain_words(err: BaseException | None) -> list[str]:
    """The types and messages of ``err`` and of the exceptions that caused it."""
    words, seen = [], set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        words += [type(err).__name__, str(err), str(getattr(err, "reason", ""))]
        err = err.__cause__ or err.__context__
    return words


def english_detail(err: BaseException, label: str = "") -> str:
    """``err``'s message on one line, for a reason :func:`photo_reason` does not know: without
    Python class names, and without ``label`` (which the Chinese line names already)."""
    text = CLASS_NAME.sub("", one_line(err, with_type=False))
    text = re.sub(r"<urlopen error (.*?)>", r"\1", text)
    if len(label) >= MIN_LABEL:
        text = text.replace(f"{label}: ", "").replace(label, "…")
    return " ".join(text.split())


class UploadButton(widgets.FileUpload):
    """ipywidgets' FileUpload with a ``tooltip`` on 7.x too: both front ends show the model's
    ``tooltip`` as the button's title, which 7.x's Python side lacks (the title read
    "undefined") and 8.x's leaves None (it read "null")."""

    tooltip = Unicode(None, allow_none=True, help="The button's tooltip.").tag(sync=True)


class PhotoPanel:
    """Upload a photo, or type its path or URL and click 识别: the panel shows the photo and
    the model's prediction beside it. Errors appear as a short message, never as a traceback.

    ``gradcam`` ticks the :data:`CAM_TEXT` box at the start: the photo is then shown with the
    Grad-CAM heat map of the predicted class over it, of the net's ``layer4`` (a ResNet's last
    stage) or of the module named ``cam_layer`` (``"layer2"`` for 32 px inputs, where
    ``layer4`` sees 1 x 1); ticking or unticking the box redraws the photo shown.

    ``widget`` is what a notebook shows (displaying the panel shows it). Only widgets and
    traits that ipywidgets 7.7.1 and 8.x both have are used. The same file uploaded again is
    classified again: the panel listens to 7.x's upload counter, and empties 8.x's value after
    each upload (the front end sends an unchanged value as no change).
    """

    def __init__(
        self,
        net: nn.Module,
        recipe: Recipe,
        classes: Sequence[str],
        device: torch.device | str | None = None,
        display_side: int = DISPLAY_SIDE,
        gradcam: bool = False,
        cam_layer: str | None = None,
    ) -> None:
        self.net, self.recipe, self.classes, self.device = net, recipe, tuple(classes), device
        self.display_side = positive_int("display_side", display_side)
        self.cam_layer = cam_layer
        self._photo: tuple[Image.Image, Image.Image] | None = None  # (net's decode, display's)
        self.upload = UploadButton(
            accept="image/*", multiple=False, description="上传照片", tooltip=UPLOAD_TOOLTIP
        )
        self.address = widgets.Text(
            value="", placeholder="图片文件的路径，或 http(s) 网址", description="路径或网址",
            style={"description_width": "initial"}, layout=widgets.Layout(width="28em"),
            **tooltip("图片文件的路径，或 http(s) 网址；填好后点“识别”"),
        )  # fmt: skip
        self.button = widgets.Button(
            description="识别", button_style="primary", tooltip="识别左边路径或网址处的照片"
        )
        self.image = widgets.Image(
            value=b"", format="jpeg", layout=widgets.Layout(display="none", flex="0 0 auto")
        )
        self.result = widgets.HTML(value="", layout=widgets.Layout(margin="0 0 0 12px"))
        self.cam = widgets.Checkbox(
            value=bool(gradcam), description=CAM_TEXT, indent=False,
            layout=widgets.Layout(width="auto"),
            **tooltip("在照片上叠加热力图：越红的区域，对预测的类别贡献越大"),
        )  # fmt: skip
        self.cam.observe(self._on_cam, names="value")
        counter = "_counter" if self.upload.has_trait("_counter") else "value"  # 7.x or 8.x
        self.upload.observe(self._on_upload, names=counter)
        self.button.on_click(self._on_click)
        row = widgets.Layout(flex_flow="row wrap", align_items="flex-start")
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.upload, self.address, self.button, self.cam], layout=row),
                widgets.HBox([self.image, self.result], layout=row),
            ]
        )

    def _ipython_display_(self, **kwargs) -> None:
        from IPython.display import display

        display(self.widget)

    def show(self, source: Source, name: str | None = None) -> PhotoPanel:
        """Classify ``source`` now and show it (the built book keeps it); returns the panel."""
        self.classify(source, name)
        return self

    def classify(self, source: Source, name: str | None = None) -> bool:
        """Show ``source`` and its prediction, or an error message; True when it worked.
        :data:`READING_TEXT` shows while the photo is read, and never outlasts the reading."""
        self._photo = None
        self._show_image(b"")
        self._show_text(READING_TEXT)
        try:
            return self._classify(source, name, name or _label_of(source))
        finally:
            if self.result.value == _markup(READING_TEXT):  # interrupted (Ctrl-C)
                self._show_text("")

    def _classify(self, source: Source, name: str | None, label: str) -> bool:
        """:meth:`classify` once the reading shows; ``label`` names ``source`` in messages."""
        try:
            if isinstance(source, str) and is_url(source):  # fetched once, decoded twice
                source, name = fetch_photo(source), name or source.strip()
            image = load_photo(source, size=self.recipe.resize_side, name=name)
            prediction, probability, _ = classify_photo(
                self.net, image, self.recipe, self.classes, self.device
            )
            displayed = load_photo(source, size=self.display_side, name=name)
            self._photo = image, displayed
            jpeg = self._picture()
        except PhotoError as err:
            reason = photo_reason(err, label)
            text = f"无法读取「{shown(label, LABEL_CHARS, '…')}」："
            self._show_error(text, reason, None if reason else err, label)
            return False
        except Exception as err:
            self._show_error("识别时出错：", None, err, label)
            return False
        self._show_image(jpeg, displayed.size)
        word = html.escape(class_label(prediction))
        self._show_text("预测：", f"<b>{word}</b>（概率 {probability:.1%}）")
        return True

    def _picture(self) -> bytes:
        """The photo shown, as JPEG bytes: with the heat map over it when :attr:`cam` is ticked."""
        image, displayed = self._photo
        small = display_image(displayed, self.display_side)
        if self.cam.value:
            small = photo_overlay(self.net, image, small, self.recipe, self.cam_layer)
        return jpeg_bytes(small)

    def _on_cam(self, _change: dict) -> None:
        """The box ticked or unticked: the photo shown (if any) drawn again."""
        if self._photo is None:
            return
        try:
            self._show_image(self._picture(), self._photo[1].size)
        except Exception as err:
            self._show_error("无法画出 Grad-CAM 热图：", None, err)

    def _on_click(self, _button: widgets.Button | None = None) -> None:
        text = unquoted(self.address.value)
        if not text:
            self._show_error("请先输入图片的路径或网址。", None, None)
            return
        self.classify(text)

    def _on_upload(self, change: dict) -> None:
        """A new upload (7.x: the counter moved; 8.x: the value changed): classify it, then
        empty 8.x's value so that the same file uploaded again is a change."""
        try:
            files = uploaded_files(self.upload.value)
        except (TypeError, KeyError) as err:
            self._show_error("无法读取上传的文件：", None, err)
            return
        if not files:
            return  # 8.x's value emptied by the panel
        name, content = files[-1]
        try:
            self.classify(content, name)
        finally:
            if not self.upload.has_trait("_counter"):
                self.upload.value = ()

    def _show_image(self, jpeg: bytes, size: tuple[int, int] = (0, 0)) -> None:
        """Show ``jpeg`` at :func:`display_size` of ``size`` (the decoded photo's), or hide."""
        self.image.value = jpeg
        width, height = display_size(*size, self.display_side) if jpeg else (None, None)
        self.image.layout.width = f"{width}px" if jpeg else None
        self.image.layout.height = f"{height}px" if jpeg else None
        self.image.layout.display = None if jpeg else "none"

    def _show_text(self, text: str, markup: str = "", error: bool = False) -> None:
        self.result.value = _markup(text, markup, error) if text or markup else ""

    def _show_error(
        self, text: str, reason: str | None, err: BaseException | None, label: str = ""
    ) -> None:
        """One red line: ``text``, then ``reason`` (Chinese) or ``err``'s English detail; no
        photo."""
        self._photo = None
        self._show_image(b"")
        if reason:
            self._show_text(text + reason, error=True)
            return
        detail = english_detail(err, label) if err is not None else ""
        small = f"<small>{html.escape(detail, quote=False)}</small>" if detail else ""
        self._show_text(text.removesuffix("：") + ("：" if small else ""), small, error=True)


def _label_of(source: Source) -> str:
    """How messages name ``source``: its path or address, or 上传的照片 for bytes."""
    if isinstance(source, str):
        text = source.strip()
        return text if "://" in text else display_path(Path(text))
    if isinstance(source, os.PathLike):
        return display_path(source)
    return "上传的照片"


def _markup(text: str, markup: str = "", error: bool = False) -> str:
    """``text`` escaped, then ``markup`` as it is, in the panel's colour (red for an error)."""
    color = "#c62828" if error else "inherit"
    return f'<span style="color:{color}">{html.escape(text, quote=False)}{markup}</span>'
