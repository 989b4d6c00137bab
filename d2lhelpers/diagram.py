"""The four-step fine-tuning diagram (source model -> target model), drawn with matplotlib."""

from __future__ import annotations

from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

BODY_LAYERS = ("conv block 1", "conv block 2", "...", "conv block n")
BODY_COLOR, SOURCE_HEAD_COLOR, TARGET_HEAD_COLOR = "#cfe2f3", "#f4cccc", "#d9ead3"


def _box(ax, x: float, y: float, text: str, color: str, width: float = 2.9) -> None:
    ax.add_patch(
        FancyBboxPatch(
            (x - width / 2, y - 0.3),
            width,
            0.6,
            boxstyle="round,pad=0.04",
            facecolor=color,
            edgecolor="#444444",
        )
    )
    ax.text(x, y, text, ha="center", va="center", fontsize=9)


def _arrow(ax, start: tuple[float, float], end: tuple[float, float], text: str = "") -> None:
    ax.add_patch(
        FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=12, color="#444444", lw=1.2)
    )
    if text:
        ax.text(
            (start[0] + end[0]) / 2,
            (start[1] + end[1]) / 2 + 0.12,
            text,
            ha="center",
            va="bottom",
            fontsize=8,
            color="#444444",
        )


def _model(ax, x: float, title: str, head: str, head_color: str, data: str) -> None:
    ax.text(x, 5.35, title, ha="center", va="center", fontsize=11, weight="bold")
    _box(ax, x, 4.6, head, head_color)
    for i, name in enumerate(reversed(BODY_LAYERS)):
        _box(ax, x, 3.7 - 0.8 * i, name, BODY_COLOR)
    _box(ax, x, -0.3, data, "#fff2cc", width=3.1)
    _arrow(ax, (x, 0.0), (x, 0.75))


def finetune_diagram(source_classes: int = 1000, target_classes: int = 2) -> Figure:
    """Source model and target model side by side: the body is copied, the head is new."""
    fig = Figure(figsize=(7.2, 4.4), layout="constrained")
    ax = fig.subplots()
    ax.set_xlim(-1.8, 9.2)
    ax.set_ylim(-1.2, 5.7)
    ax.set_axis_off()
    _model(
        ax,
        0.0,
        "1. Source model",
        f"output layer ({source_classes} classes)",
        SOURCE_HEAD_COLOR,
        "source data (e.g. ImageNet)",
    )
    _model(
        ax,
        7.0,
        "2. Target model",
        f"new output layer ({target_classes} classes)",
        TARGET_HEAD_COLOR,
        "4. target data (e.g. hot dogs)",
    )
    for i in range(len(BODY_LAYERS)):
        y = 3.7 - 0.8 * i
        _arrow(ax, (1.55, y), (5.45, y), "copy parameters" if i == 0 else "")
    ax.text(
        3.5,
        4.6,
        "3. not copied:\nrandomly initialised",
        ha="center",
        va="center",
        fontsize=8,
        color="#990000",
    )
    ax.text(
        7.0,
        -0.95,
        "train: fine-tune the copied layers, learn the new one from scratch",
        ha="center",
        va="center",
        fontsize=7.5,
        color="#38761d",
    )
    ax.text(0.0, -0.95, "pretrain", ha="center", va="center", fontsize=7.5, color="#444444")
    return fig
