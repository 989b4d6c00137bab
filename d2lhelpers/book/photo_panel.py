# ruff: noqa: RUF001  (Chinese text uses full-width punctuation on purpose)
"""The photo panel: upload a photo, or give its path or URL, and see the model's prediction.

The loading and classifying are :mod:`d2lhelpers.photo`'s; :meth:`PhotoPanel.show` classifies
an example up front, so the built book (saved widget state, no kernel) shows a result.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from io import BytesIO
from typing import Any

import ipywidgets as widgets
import torch
from PIL import Image
from torch import nn

from ..checks import one_line, positive_int
from ..data import Recipe
from ..photo import PhotoError, Source, classify_photo, load_photo
from .labels import class_label

DISPLAY_SIDE = 320  # the longer side of the photo shown in the panel, in pixels


def uploaded_files(value: Any) -> list[tuple[str, bytes]]:
    """A ``FileUpload.value`` as ``[(name, content bytes)]``, for ipywidgets 7 (a dict of name
    -> {"metadata", "content"}) and 8 (a tuple of dicts with "name" and "content")."""
    if isinstance(value, dict):
        return [(str(name), bytes(entry["content"])) for name, entry in value.items()]
    if isinstance(value, (tuple, list)):
        return [(str(entry["name"]), bytes(entry["content"])) for entry in value]
    raise TypeError(f"Not a FileUpload value: {type(value).__name__}.")


def display_jpeg(image: Image.Image, side: int = DISPLAY_SIDE) -> bytes:
    """``image`` scaled down to at most ``side`` pixels on its longer side, as JPEG bytes."""
    small = image.copy()
    small.thumbnail((side, side), Image.Resampling.BICUBIC)
    buffer = BytesIO()
    small.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


class PhotoPanel:
    """Upload a photo, or type its path or URL and click 识别: the panel shows the photo and
    the model's prediction. Errors appear as a short message, never as a traceback.

    ``widget`` is what a notebook shows (displaying the panel shows it). Only widgets and
    traits that ipywidgets 7.7.1 and 8.x both have are used.
    """

    def __init__(
        self,
        net: nn.Module,
        recipe: Recipe,
        classes: Sequence[str],
        device: torch.device | str | None = None,
        display_side: int = DISPLAY_SIDE,
    ) -> None:
        self.net, self.recipe, self.classes, self.device = net, recipe, tuple(classes), device
        self.display_side = positive_int("display_side", display_side)
        self.upload = widgets.FileUpload(accept="image/*", multiple=False, description="上传照片")
        self.address = widgets.Text(
            value="", placeholder="图片文件的路径，或 http(s) 网址", description="路径或网址",
            style={"description_width": "initial"}, layout=widgets.Layout(width="28em"),
        )  # fmt: skip
        self.button = widgets.Button(description="识别", button_style="primary")
        self.image = widgets.Image(value=b"", format="jpeg", layout=widgets.Layout(display="none"))
        self.result = widgets.HTML(value="")
        self.upload.observe(self._on_upload, names="value")
        self.button.on_click(self._on_click)
        row = widgets.Layout(flex_flow="row wrap", align_items="center")
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.upload, self.address, self.button], layout=row),
                self.image,
                self.result,
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
        """Show ``source`` and its prediction, or an error message; True when it worked."""
        try:
            image = load_photo(source, size=self.recipe.resize_side, name=name)
            label, probability, _ = classify_photo(
                self.net, image, self.recipe, self.classes, self.device
            )
        except PhotoError as err:
            self._show_error("无法读取这张照片。", err)
            return False
        except Exception as err:
            self._show_error("识别时出错。", err)
            return False
        self._show_image(display_jpeg(image, self.display_side))
        self._show_text(f"预测：<b>{class_label(label)}</b>（概率 {probability:.1%}）")
        return True

    def _on_click(self, _button: widgets.Button | None = None) -> None:
        text = self.address.value.strip()
        if not text:
            self._show_error("请先输入图片的路径或网址。", None)
            return
        self.classify(text)

    def _on_upload(self, change: dict) -> None:
        try:
            files = uploaded_files(change["new"])
        except (TypeError, KeyError) as err:
            self._show_error("无法读取上传的文件。", err)
            return
        if files:
            name, content = files[-1]
            self.classify(content, name)

    def _show_image(self, jpeg: bytes) -> None:
        self.image.value = jpeg
        self.image.layout.display = None if jpeg else "none"

    def _show_text(self, markup: str, error: bool = False) -> None:
        color = "#c62828" if error else "inherit"
        self.result.value = f'<span style="color:{color}">{markup}</span>'

    def _show_error(self, text: str, err: BaseException | None) -> None:
        self._show_image(b"")
        reason = "" if err is None else one_line(err)
        detail = f"<br><small>{html.escape(reason, quote=False)}</small>" if reason else ""
        self._show_text(html.escape(text, quote=False) + detail, error=True)
