# ruff: noqa: RUF001  (Chinese text uses full-width punctuation on purpose)
"""The four-step fine-tuning diagram (source model -> target model), drawn with matplotlib.

Its text is Chinese, in the terms of the Chinese edition of d2l (section 13.2).
"""

from __future__ import annotations

from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from .fonts import chinese_text

BODY_LAYERS = ("卷积块 1", "卷积块 2", "…", "卷积块 n")
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
            fontsize=9,
            color="#444444",
        )


def _model(ax, x: float, title: str, head: str, head_color: str, data: str) -> None:
    ax.text(x, 5.35, title, ha="center", va="center", fontsize=11)
    _box(ax, x, 4.6, head, head_color)
    for i, name in enumerate(reversed(BODY_LAYERS)):
        _box(ax, x, 3.7 - 0.8 * i, name, BODY_COLOR)
    _box(ax, x, -0.3, data, "#fff2cc", width=3.1)
    _arrow(ax, (x, 0.0), (x, 0.75))


@chinese_text()
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
        "① 源模型",
        f"输出层（{source_classes} 类）",
        SOURCE_HEAD_COLOR,
        "源数据集（如 ImageNet）",
    )
    _model(
        ax,
        7.0,
        "② 目标模型",
        f"新的输出层（{target_classes} 类）",
        TARGET_HEAD_COLOR,
        "④ 目标数据集（如热狗）",
    )
    for i in range(len(BODY_LAYERS)):
        y = 3.7 - 0.8 * i
        _arrow(ax, (1.55, y), (5.45, y), "复制模型参数" if i == 0 else "")
    ax.text(
        3.2,
        4.6,
        "③ 添加输出层，\n随机初始化其参数",
        ha="center",
        va="center",
        fontsize=9,
        color="#990000",
    )
    ax.add_patch(  # ③ points at the new output layer
        FancyArrowPatch(
            (4.45, 4.6), (5.45, 4.6), arrowstyle="-|>", mutation_scale=12, color="#990000", lw=1.2
        )
    )
    ax.text(
        7.0,
        -0.95,
        "训练：复制的层微调，新的输出层从头训练",
        ha="center",
        va="center",
        fontsize=9,
        color="#38761d",
    )
    ax.text(0.0, -0.95, "预训练", ha="center", va="center", fontsize=9, color="#444444")
    return fig
