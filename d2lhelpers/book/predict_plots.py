# ruff: noqa: RUF001  (Chinese text uses full-width punctuation on purpose)
"""Figures of a model's predictions (:mod:`d2lhelpers.predict`): a grid per model, the worst
mistakes, the confusion matrices.

The figures show each image as it is stored in the decoded split: the full square the photo
was squashed to (``recipe.resize_side``), of which the model saw the centre crop
(``recipe.size``, 7/8 of each side for the chapter's 224 of 256). Their text is Chinese.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..checks import positive_int
from ..data import DecodedImages
from ..predict import Predictions, confusion_matrix, spread_indices, top_losses
from .fonts import chinese_text
from .labels import class_label

RIGHT_COLOR = "#2e7d32"
WRONG_COLOR = "#c62828"


def _hwc(images: DecodedImages, index: int) -> np.ndarray:
    """Image ``index`` of the split as an HWC uint8 array (the full stored square)."""
    pixels, _ = images.gather(torch.tensor([index]))
    return pixels[0].permute(1, 2, 0).numpy()


def _verdict(pred: Predictions, i: int) -> tuple[str, str]:
    """The title of example ``i`` (对/错, predicted class, probability) and its colour."""
    right = bool(pred.correct[i])
    name = class_label(pred.classes[int(pred.predicted[i])])
    text = f"{'对' if right else '错'}：{name} {pred.confidence[i].item():.0%}"
    return text, RIGHT_COLOR if right else WRONG_COLOR


def _check_matches(images: DecodedImages, pred: Predictions, name: str = "") -> None:
    if len(pred) != len(images) or not torch.equal(pred.labels, images.labels.cpu()):
        where = f" of {name!r}" if name else ""
        raise ValueError(
            f"The predictions{where} ({len(pred)} examples) are not of these {len(images)} images: "
            "pass the images they were made from."
        )


@chinese_text()
def prediction_grid(
    images: DecodedImages,
    preds_by_model: Mapping[str, Predictions],
    n: int = 8,
    index: Sequence[int] | torch.Tensor | None = None,
    scale: float = 1.6,
) -> Figure:
    """The same ``n`` images in one row per model, each titled 对/错 (green/red), the predicted
    class in Chinese and its probability; the row starts with the model's name and accuracy.

    ``index`` picks the images (default: ``n`` spread evenly over the split).
    """
    if not preds_by_model:
        raise ValueError("preds_by_model is empty: pass {model name: Predictions}.")
    for name, pred in preds_by_model.items():
        _check_matches(images, pred, name)
    chosen = spread_indices(positive_int("n", n), len(images)) if index is None else index
    chosen = torch.as_tensor(chosen, dtype=torch.int64).flatten()
    rows, cols = len(preds_by_model), max(len(chosen), 1)
    fig = Figure(figsize=(cols * scale, rows * (scale + 0.3)), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for row, (name, pred) in zip(axes, preds_by_model.items(), strict=True):
        for ax, i in zip(row, chosen.tolist(), strict=False):
            text, color = _verdict(pred, i)
            framed_image(ax, _hwc(images, i), text, color)
        row[0].set_ylabel(f"{name}\n精度 {pred.accuracy:.1%}", fontsize=9)
    return fig


def framed_image(ax: Axes, image: np.ndarray, title: str, color: str = "black") -> None:
    """An image without ticks (the y label stays visible), framed and titled in ``color``."""
    ax.imshow(image)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_edgecolor(color)
        spine.set_linewidth(2)
    ax.set_title(title, fontsize=9, color=color)


@chinese_text()
def mistakes_figure(
    images: DecodedImages, pred: Predictions, k: int = 8, cols: int = 4, scale: float = 1.8
) -> Figure:
    """The ``k`` misclassified images of highest loss, highest first, each titled with its true
    class, the predicted class and that prediction's probability."""
    _check_matches(images, pred)
    index = top_losses(pred, k, mistakes_only=True).tolist()
    if not index:
        fig = Figure(figsize=(4, 1), layout="constrained")
        fig.text(0.5, 0.5, "没有分错的图像。", ha="center", va="center")
        return fig
    cols = min(positive_int("cols", cols), len(index))
    rows = -(-len(index) // cols)
    fig = Figure(figsize=(cols * scale, rows * (scale + 0.4)), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[len(index) :]:
        ax.set_axis_off()
    for ax, i in zip(axes, index, strict=False):
        true = class_label(pred.classes[int(pred.labels[i])])
        guess = class_label(pred.classes[int(pred.predicted[i])])
        title = f"真实：{true}\n预测：{guess} {pred.confidence[i].item():.0%}"
        framed_image(ax, _hwc(images, i), title, WRONG_COLOR)
    return fig


@chinese_text()
def confusion_figure(pred_by_model: Mapping[str, Predictions], scale: float = 2.6) -> Figure:
    """One confusion matrix per model, side by side: counts in the cells, rows 真实类别,
    columns 预测类别, titled with the model's name and accuracy."""
    if not pred_by_model:
        raise ValueError("pred_by_model is empty: pass {model name: Predictions}.")
    fig = Figure(figsize=(len(pred_by_model) * scale + 0.4, scale), layout="constrained")
    axes = fig.subplots(1, len(pred_by_model), squeeze=False)[0]
    for ax, (name, pred) in zip(axes, pred_by_model.items(), strict=True):
        _confusion_axes(ax, pred)
        ax.set_title(f"{name}（精度 {pred.accuracy:.1%}）", fontsize=10)
    return fig


def _confusion_axes(ax: Axes, pred: Predictions) -> None:
    matrix = confusion_matrix(pred).numpy()
    ax.imshow(matrix, cmap="Blues", vmin=0, vmax=max(int(matrix.max()), 1))
    labels = [class_label(name) for name in pred.classes]
    ticks = range(len(labels))
    ax.set_xticks(ticks, labels)
    ax.set_yticks(ticks, labels)
    ax.set_xlabel("预测类别")
    ax.set_ylabel("真实类别")
    high = matrix.max() / 2
    for (i, j), count in np.ndenumerate(matrix):
        color = "white" if count > high else "black"
        ax.text(j, i, str(count), ha="center", va="center", color=color)
