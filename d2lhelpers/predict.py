# ruff: noqa: RUF001  (Chinese text uses full-width punctuation on purpose)
"""After training: a model's predictions on a decoded split, its mistakes, and their figures.

:func:`predict` runs a model over a :class:`~d2lhelpers.data.DecodedImages` split with the test
transform (the centre crop of :class:`~d2lhelpers.data.BatchLoader`), in eval mode and under the
device's autocast, and keeps every example's class probabilities and loss. The summaries
(:func:`confusion_matrix`, :func:`per_class_accuracy`, :func:`top_losses`,
:func:`mistake_counts`) and the figures work on those :class:`Predictions`.

The figures show each image as it is stored in the decoded split: the full square the photo
was squashed to (``recipe.resize_side``), of which the model saw the centre crop
(``recipe.size``, 7/8 of each side for the chapter's 224 of 256). Their text is Chinese.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import nn

from .checks import positive_int
from .data import BatchLoader, DecodedImages, Recipe
from .fonts import chinese_text
from .precision import choose_precision

CLASS_LABELS = {"hotdog": "热狗", "not-hotdog": "非热狗"}
RIGHT_COLOR = "#2e7d32"
WRONG_COLOR = "#c62828"


@dataclass
class Predictions:
    """A model's outputs on N examples of C classes, all on the CPU.

    ``probabilities`` (N, C) float32 softmax outputs; ``labels`` (N,) the true classes;
    ``predicted`` (N,) the most probable classes; ``losses`` (N,) each example's cross-entropy.
    """

    probabilities: torch.Tensor
    labels: torch.Tensor
    predicted: torch.Tensor
    losses: torch.Tensor
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def correct(self) -> torch.Tensor:
        """(N,) bool: the prediction is the true class."""
        return self.predicted == self.labels

    @property
    def accuracy(self) -> float:
        return self.correct.float().mean().item() if len(self) else float("nan")

    @property
    def confidence(self) -> torch.Tensor:
        """(N,) the probability of each predicted class."""
        return self.probabilities.gather(1, self.predicted[:, None]).squeeze(1)


def class_label(name: str) -> str:
    """A class name in Chinese (热狗, 非热狗); other names as they are."""
    return CLASS_LABELS.get(name, name)


def _net_device(net: nn.Module, device: torch.device | str | None) -> torch.device:
    """``device``, or the device of the net's parameters; ValueError when they differ."""
    own = next(net.parameters()).device
    chosen = own if device is None else torch.device(device)
    if chosen.type != own.type or (chosen.index is not None and chosen != own):
        raise ValueError(f"The net is on {own}, not on {chosen}: move it first (net.to(device)).")
    return chosen


@torch.inference_mode()
def logits_of(
    net: nn.Module,
    images: DecodedImages,
    recipe: Recipe,
    device: torch.device | str | None = None,
    batch_size: int = 256,
) -> torch.Tensor:
    """(N, C) float32 logits of ``net`` for ``images`` with the test transform, on the CPU.

    Images stored at another size than ``recipe.resize_side`` (a training split) are first
    squashed to it, as the test images are. ``net`` runs in eval mode under the device's
    autocast; every module's training mode is restored afterwards. ``device`` (default: the
    net's) is where the batches are prepared; the net must already be there.
    """
    batch_size = positive_int("batch_size", batch_size)
    device = _net_device(net, device)
    loader = BatchLoader(
        images.resized(recipe.resize_side), batch_size, recipe, train=False, device=device
    )
    precision = choose_precision(device)
    modes = [(module, module.training) for module in net.modules()]
    net.eval()
    try:
        out = []
        for x, _ in loader:
            with precision.autocast():
                out.append(net(x).float().cpu())
    finally:
        for module, training in modes:
            module.training = training
    return torch.cat(out) if out else torch.empty(0, len(images.classes))


def predict(
    net: nn.Module,
    images: DecodedImages,
    recipe: Recipe,
    device: torch.device | str | None = None,
    batch_size: int = 256,
) -> Predictions:
    """The :class:`Predictions` of ``net`` on ``images`` (see :func:`logits_of`)."""
    logits = logits_of(net, images, recipe, device, batch_size)
    if logits.shape[1] != len(images.classes):
        raise ValueError(
            f"The net has {logits.shape[1]} outputs but the images have "
            f"{len(images.classes)} classes {images.classes}."
        )
    labels = images.labels.to(torch.int64).cpu()
    return Predictions(
        probabilities=logits.softmax(1),
        labels=labels,
        predicted=logits.argmax(1),
        losses=F.cross_entropy(logits, labels, reduction="none"),
        classes=tuple(images.classes),
    )


def confusion_matrix(pred: Predictions) -> torch.Tensor:
    """(C, C) int64 counts: row = true class, column = predicted class."""
    c = len(pred.classes)
    counts = torch.bincount(pred.labels * c + pred.predicted, minlength=c * c)
    return counts.reshape(c, c)


def per_class_accuracy(pred: Predictions) -> dict[str, float]:
    """Accuracy within each true class (NaN for a class without examples)."""
    matrix = confusion_matrix(pred).double()
    totals = matrix.sum(1)
    return {
        name: (matrix[i, i] / totals[i]).item() if totals[i] else float("nan")
        for i, name in enumerate(pred.classes)
    }


def top_losses(pred: Predictions, k: int, *, mistakes_only: bool = False) -> torch.Tensor:
    """Indices of the ``k`` examples of highest loss, highest first; with ``mistakes_only``,
    of the misclassified ones only (fewer when there are fewer mistakes)."""
    k = positive_int("k", k)
    candidates = (
        torch.nonzero(~pred.correct).flatten() if mistakes_only else torch.arange(len(pred))
    )
    order = torch.argsort(pred.losses[candidates], descending=True, stable=True)
    return candidates[order[:k]]


def mistake_counts(pred: Predictions) -> dict[tuple[str, str], int]:
    """How many examples of each true class were predicted as each other class:
    ``{(true, predicted): count}``, every pair of different classes, in class order."""
    matrix = confusion_matrix(pred)
    return {
        (t, p): int(matrix[i, j])
        for i, t in enumerate(pred.classes)
        for j, p in enumerate(pred.classes)
        if i != j
    }


def describe_mistakes(pred: Predictions) -> str:
    """A short Chinese reading of the mistakes: how many images and how many wrong, then each
    kind of mistake (true class judged as another) with its count and share of its true class.
    The page's author writes the conclusion."""
    totals = confusion_matrix(pred).sum(1).tolist()
    wrong = int((~pred.correct).sum())
    head = f"共 {len(pred)} 张图像，分错 {wrong} 张"
    if not wrong:
        return head + "。"
    parts = []
    for (true, predicted), count in mistake_counts(pred).items():
        if count:
            total = totals[pred.classes.index(true)]
            parts.append(
                f"{class_label(true)}被判为{class_label(predicted)} {count} 张"
                f"（占{class_label(true)}的 {count / total:.1%}）"
            )
    return head + "：" + "，".join(parts) + "。"


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


def spread_indices(n: int, total: int) -> torch.Tensor:
    """``n`` indices spread evenly over ``0 .. total - 1`` (all of them when ``total <= n``);
    a split sorted by class then shows every class."""
    if total <= n:
        return torch.arange(total)
    return torch.linspace(0, total - 1, n).round().long()


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
            _show(ax, _hwc(images, i), text, color)
        row[0].set_ylabel(f"{name}\n精度 {pred.accuracy:.1%}", fontsize=9)
    return fig


def _show(ax: Axes, image: np.ndarray, title: str, color: str = "black") -> None:
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
        _show(ax, _hwc(images, i), title, WRONG_COLOR)
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
