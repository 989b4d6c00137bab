# ruff: noqa: RUF001, RUF002  (Chinese text uses full-width punctuation on purpose)
"""Chinese sentences that read a result on the pages, written from the numbers of the run.

Every branch reads correctly: higher, lower, equal, and a difference inside the seed-to-seed
noise (overlapping ranges), which is called noise rather than a gain or a loss.
"""

from __future__ import annotations

from ..predict import Predictions, confusion_matrix, mistake_counts
from ..seeds import Spread
from .labels import class_label


def accuracy(s: Spread) -> str:
    """``0.718`` for one run, ``0.718（0.708～0.730）`` (mean, then the range) for several."""
    if len(s.values) == 1:
        return f"{s.mean:.3f}"
    return f"{s.mean:.3f}（{s.low:.3f}～{s.high:.3f}）"


def points(difference: float) -> str:
    """A difference of accuracies in percentage points, ``14.2 个百分点``."""
    return f"{abs(difference) * 100:.1f} 个百分点"


def compare(name_a: str, a: Spread, name_b: str, b: Spread) -> str:
    """One sentence comparing two measurements over seeds: which is higher, by how much, and
    whether the difference is larger than the seeds' spread."""
    seeds = min(len(a.values), len(b.values))
    opening = f"{name_a}为 {accuracy(a)}，{name_b}为 {accuracy(b)}"
    difference = a.mean - b.mean
    if round(difference * 1000) == 0:
        return f"{opening}：两者相同。"
    direction = "高" if difference > 0 else "低"
    gap = f"{name_a}比{name_b}{direction} {points(difference)}"
    if seeds < 2:
        return f"{opening}，{gap}；只跑了一个种子，无法判断这一差别是否超出随机波动。"
    if a.overlaps(b):
        noise = f"{points(difference)}的差别在随机波动之内"
        return f"{opening}：两者各 {seeds} 个种子的范围相互重叠，{noise}。"
    return f"{opening}，{gap}，而且各 {seeds} 个种子的范围互不重叠。"


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
