# ruff: noqa: RUF001  (Chinese text uses full-width punctuation on purpose)
"""The sweep's figures and table, drawn from its records (:data:`~d2lhelpers.sweep.RECORD_FIELDS`).

* :func:`live_figure`: test accuracy per epoch, one line per run;
* :func:`summary_figure`: final test accuracy against the head's learning rate;
* :func:`results_table`: an HTML table, one row per run.

The text is Chinese, the figures' set in the package's own font (:mod:`d2lhelpers.fonts`).
The exercises page shows them directly, and :class:`~d2lhelpers.widgets.SweepPanel` shows
them after each run.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .fonts import chinese_text
from .plot import status_label
from .sweep import final_records, records_by_run

DIVERGED_STYLE = {"marker": "x", "color": "#c62828", "markersize": 9, "mew": 2, "ls": "none"}
GROUP_FIELDS = ("learning_rate", "num_epochs", "freeze_body", "init_hotdog_row")
TABLE_COLUMNS = (
    "运行", "基础学习率", "倍数", "输出层学习率", "迭代周期", "冻结主干", "热狗类初始化",
    "训练损失", "训练精度", "测试精度", "状态",
)  # fmt: skip


@chinese_text()
def live_figure(records: Sequence[dict]) -> Figure:
    """Test accuracy per epoch, one line per run; a diverged epoch is an x at the bottom."""
    fig = Figure(figsize=(4.8, 3.2), layout="constrained")
    ax = fig.subplots()
    diverged_label = "发散"
    runs = records_by_run(records)
    for i, run in enumerate(runs):
        first, color = run[0], f"C{i % 10}"
        done = [r for r in run if _number(r["test_acc"]) is not None]
        label = f"运行 {first['run']}：输出层学习率 {first['head_lr']:.1e}"
        label += "，冻结主干" if first["freeze_body"] else ""
        epochs, accs = [r["epoch"] for r in done], [r["test_acc"] for r in done]
        ax.plot(epochs, accs, marker=".", color=color, label=label)
        for r in run:
            if _number(r["test_acc"]) is None:
                ax.plot([r["epoch"]], [0.0], **DIVERGED_STYLE, label=diverged_label)
                diverged_label = "_nolegend_"
    ax.set_xlabel("迭代周期")
    ax.set_ylabel("测试精度")
    ax.set_ylim(-0.05, 1.05)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.set_title("每个迭代周期的测试精度", fontsize=10)
    if len(runs) <= 10:
        ax.legend(fontsize=7)
    return fig


@chinese_text()
def summary_figure(records: Sequence[dict]) -> Figure:
    """Final test accuracy against the head's learning rate (log axis), one line per setting.

    Runs that diverged have no accuracy: they are marked with an x at the bottom.
    """
    fig = Figure(figsize=(4.8, 3.2), layout="constrained")
    ax = fig.subplots()
    groups: dict[tuple, list[dict]] = {}
    for record in final_records(records):
        key = tuple(record[k] for k in GROUP_FIELDS)
        groups.setdefault(key, []).append(record)
    diverged = []
    for i, ((lr, epochs, frozen, init_row), finals) in enumerate(groups.items()):
        finals = sorted(finals, key=lambda r: r["head_lr"])
        ok = [r for r in finals if _number(r["test_acc"]) is not None]
        diverged += [r for r in finals if _number(r["test_acc"]) is None]
        label = f"基础学习率 {lr:.1e}，{epochs} 个迭代周期"
        label += "，冻结主干" if frozen else ""
        label += "，热狗类初始化" if init_row else ""
        ax.plot(
            [r["head_lr"] for r in ok], [r["test_acc"] for r in ok], marker="o",
            color=f"C{i % 10}", label=label,
        )  # fmt: skip
    if diverged:
        xs = [r["head_lr"] for r in diverged]
        ax.plot(xs, [0.0] * len(xs), **DIVERGED_STYLE, label="发散（无精度）")
    ax.set_xscale("log")
    ax.set_xlabel("输出层学习率（基础学习率 × 倍数）")
    ax.set_ylabel("最终测试精度")
    ax.set_ylim(-0.05, 1.05)
    ax.grid(alpha=0.3, which="both")
    ax.set_title("各次运行的最终测试精度", fontsize=10)
    ax.legend(fontsize=7)
    return fig


def results_table(records: Sequence[dict]) -> str:
    """An HTML table with one row per run (its final record); missing values show as —."""
    aligns = ["right"] * (len(TABLE_COLUMNS) - 1) + ["left"]  # numbers right, status left
    cells = [f'style="padding:1px 8px;text-align:{align}"' for align in aligns]
    head = "".join(
        f"<th {cell}>{html.escape(c)}</th>" for cell, c in zip(cells, TABLE_COLUMNS, strict=True)
    )
    rows = []
    for r in final_records(records):
        values = (
            str(r["run"]), _fmt(r["learning_rate"], ".1e"), _fmt(r["head_multiplier"], "g"),
            _fmt(r["head_lr"], ".1e"), str(r["num_epochs"]), _yes_no(r["freeze_body"]),
            _yes_no(r["init_hotdog_row"]), _fmt(r["train_loss"], ".3f"),
            _fmt(r["train_acc"], ".3f"), _fmt(r["test_acc"], ".3f"),
            status_label(str(r["status"] or "—")),
        )  # fmt: skip
        tds = (f"<td {cell}>{html.escape(v)}</td>" for cell, v in zip(cells, values, strict=True))
        rows.append("<tr>" + "".join(tds) + "</tr>")
    return (
        '<table style="border-collapse:collapse;font-size:90%">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _number(value: Any) -> float | None:
    """``value`` as a float, or None when it is missing or not finite."""
    if value is None or isinstance(value, bool):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _fmt(value: Any, spec: str) -> str:
    number = _number(value)
    return "—" if number is None else format(number, spec)


def _yes_no(value: Any) -> str:
    return "—" if value is None else ("是" if value else "否")
