# ruff: noqa: RUF001  (Chinese text uses full-width punctuation on purpose)
"""Figures: image grids, live training curves, and several Histories on one set of axes.

Figure text is Chinese, set in the font that the package ships (:mod:`d2lhelpers.book.fonts`), so
it shows wherever the book runs, Colab included. Figures are made with
``matplotlib.figure.Figure`` (not pyplot), so a notebook shows each one exactly once, where the
code displays it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..seeds import per_epoch
from ..train import History
from .fonts import chinese_text
from .labels import status_label

CURVES = (  # (axis, History field, name, line style)
    ("loss", "train_loss", "训练损失", "-"),
    ("accuracy", "train_acc", "训练精度", "--"),
    ("accuracy", "held_out_acc", "测试精度", ":"),
)


def _as_array(img) -> np.ndarray:
    if isinstance(img, torch.Tensor):
        img = img.detach().cpu()
        return img.permute(1, 2, 0).numpy() if img.ndim == 3 and img.shape[0] in (1, 3) else img
    return np.asarray(img)


@chinese_text()
def show_images(
    images: Sequence,
    num_rows: int,
    num_cols: int,
    titles: Sequence[str] | None = None,
    scale: float = 1.5,
) -> Figure:
    """A grid of images (PIL images, HWC arrays or CHW tensors), row by row."""
    fig = Figure(figsize=(num_cols * scale, num_rows * scale), layout="constrained")
    axes = fig.subplots(num_rows, num_cols, squeeze=False).ravel()
    for i, ax in enumerate(axes):
        ax.set_axis_off()
        if i < len(images):
            ax.imshow(_as_array(images[i]))
            if titles:
                ax.set_title(titles[i], fontsize=9)
    return fig


@chinese_text()
def plot_histories(histories: Sequence[History], title: str = "", num_classes: int = 2) -> Figure:
    """Each History's training loss (left, beside the loss of guessing, ln ``num_classes``)
    and its training and test accuracy (right, 0 to 1) per epoch: one colour per run."""
    fig = Figure(figsize=(7.2, 3.2), layout="constrained")
    loss_ax, acc_ax = fig.subplots(1, 2)
    for color, history in zip(_colors(len(histories)), histories, strict=False):
        epochs = [e.epoch for e in history.epochs]
        prefix = f"{history.label}：" if history.label and len(histories) > 1 else ""
        for ax, key, name, style in CURVES:
            values = [getattr(e, key) for e in history.epochs]
            target = loss_ax if ax == "loss" else acc_ax
            target.plot(epochs, values, style, color=color, marker=".", label=prefix + name)
        if history.status != "ok":
            text = status_label(history.status_text())
            loss_ax.annotate(text, (0.02, 0.02), xycoords="axes fraction", color=color)
    guess = math.log(num_classes)
    loss_ax.axhline(guess, color="0.5", linestyle="--", linewidth=1, label="随机猜测的损失")
    loss_ax.set_ylim(0, max(guess, _max_loss(histories)) * 1.1)
    acc_ax.set_ylim(0, 1)
    for ax, name in ((loss_ax, "训练损失"), (acc_ax, "精度")):
        ax.set_xlabel("迭代周期")
        ax.set_title(name)
        ax.grid(alpha=0.3)
    if histories and any(h.epochs for h in histories):
        for ax in (loss_ax, acc_ax):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


@chinese_text()
def plot_seed_curves(runs: Mapping[str, Sequence[History]], chance: float = 0.5) -> Figure:
    """Each model's curves over its seeds: the mean per epoch as a line, the range of the seeds
    as a band; training loss on the left, test accuracy on the right (``chance`` dashed)."""
    fig = Figure(figsize=(7.2, 3.2), layout="constrained")
    loss_ax, acc_ax = fig.subplots(1, 2)
    for color, (label, histories) in zip(_colors(len(runs)), runs.items(), strict=True):
        for ax, key in ((loss_ax, "train_loss"), (acc_ax, "held_out_acc")):
            epochs, mean, low, high = _seed_band(histories, key)
            ax.plot(
                epochs,
                mean,
                "-",
                color=color,
                marker=".",
                label=f"{label}（{len(histories)} 个种子）",
            )
            ax.fill_between(epochs, low, high, color=color, alpha=0.2, linewidth=0)
    acc_ax.axhline(chance, color="0.5", linestyle="--", linewidth=1, label="随机猜测")
    for ax, name in ((loss_ax, "训练损失"), (acc_ax, "测试精度")):
        ax.set_xlabel("迭代周期")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    acc_ax.legend(fontsize=8)
    return fig


def _seed_band(histories: Sequence[History], key: str) -> tuple[list, list, list, list]:
    """Epochs completed by every seed, and the mean, low and high of ``key`` at each."""
    count = min((len(h.epochs) for h in histories), default=0)
    bands = per_epoch({e.epoch: getattr(e, key) for e in h.epochs[:count]} for h in histories)
    epochs = list(bands)
    return (
        epochs,
        [bands[e].mean for e in epochs],
        [bands[e].low for e in epochs],
        [bands[e].high for e in epochs],
    )


def _max_loss(histories: Sequence[History]) -> float:
    return max((e.train_loss for h in histories for e in h.epochs), default=1.0)


def _colors(n: int) -> list:
    return [f"C{i % 10}" for i in range(n)]


class LivePlot:
    """A run's live view (``Run(live=LivePlot())``): redraws the curves of its History after
    every epoch, in place, in a notebook, titled ``title`` (default: the run's label).

    Outside an IPython kernel it draws nothing. The last drawing stays in the notebook, so the
    rendered book shows the final curves.
    """

    def __init__(self, title: str = "") -> None:
        self.title = title
        self._handle = None

    def __call__(self, history: History) -> None:
        display = _notebook_display()
        if display is None:
            return
        fig = plot_histories([history], self.title or history.label)
        if self._handle is None:
            self._handle = display(fig, display_id=True)
        else:
            self._handle.update(fig)


def _notebook_display():
    """IPython's ``display`` when running inside a kernel, else None."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return None
    shell = get_ipython()
    return display if shell is not None and hasattr(shell, "kernel") else None
