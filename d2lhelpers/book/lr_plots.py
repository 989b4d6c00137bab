# ruff: noqa: RUF001  (Chinese text uses full-width punctuation on purpose)
"""The learning-rate range test's figure: the loss against the rate, the suggestion marked."""

from __future__ import annotations

from matplotlib.figure import Figure

from ..lr_range import RangeTest
from .fonts import chinese_text
from .sweep_plots import format_lr


def suggestion_label(test: RangeTest) -> str:
    """「建议的学习率 3.1e-3」 (rates written as the sweeps write them), with a warning when
    the range did not show its minimum clearly."""
    edge = "（在测试范围的边缘，请扩大范围）" if test.at_edge else ""
    return f"建议的学习率 {format_lr(test.suggestion)}{edge}"


@chinese_text()
def plot_range_test(
    test: RangeTest, reference: float | None = None, reference_label: str = "本章的学习率"
) -> Figure:
    """The smoothed loss (raw batch losses faint) against the rate on a log axis, the
    suggestion as a vertical line, and ``reference`` (a rate to compare, such as the
    chapter's), when given, as a second one labelled ``reference_label``."""
    fig = Figure(figsize=(6.4, 3.6), layout="constrained")
    ax = fig.subplots()
    ax.plot(test.rates, test.losses, color="C0", alpha=0.25, linewidth=1, label="每批的损失")
    ax.plot(test.rates, test.smoothed, color="C0", label="平滑后的损失")
    ax.axvline(test.suggestion, color="C2", linestyle="--", label=suggestion_label(test))
    if reference is not None:
        ax.axvline(
            reference, color="C3", linestyle=":", label=f"{reference_label} {format_lr(reference)}"
        )
    ax.set_xscale("log")
    ax.set_ylim(0, 1.05 * max(test.smoothed))
    ax.set_xlabel("学习率（对数刻度）")
    ax.set_ylabel("训练损失")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig
