# ruff: noqa: RUF001  (Chinese text uses full-width punctuation on purpose)
"""The sweep's figures and tables, drawn from its records (:data:`~d2lhelpers.sweep.RECORD_FIELDS`).

* :func:`live_figure`: validation accuracy per epoch, one line per setting (the mean over its
  seeds, their range as a band; a setting with one seed is one line per run, as it ran);
* :func:`summary_figure`: final validation accuracy against the head's learning rate, the
  mean over seeds with their range as error bars;
* :func:`results_table`: an HTML table, one row per setting, its seeds aggregated;

Runs that diverged, were stopped or interrupted have no accuracy: the figures mark them in a
grey strip below the accuracy axis (diverged above, stopped and interrupted below: never at an
accuracy of 0) and leave them out of means and ranges; the tables count them. Each setting has
a colour of its own however many there are (:func:`setting_colors`); a legend of more than
:data:`LEGEND_INSIDE` entries goes under the axes, in as many columns as its labels allow.
Numbers are formatted by :func:`format_lr`, :func:`format_acc` and :func:`format_loss`,
everywhere (the panel's readout too), so one learning rate reads the same in every place.

The text is Chinese, the figures' set in the package's own font (:mod:`d2lhelpers.book.fonts`).
The exercises page shows them directly, and :class:`~d2lhelpers.book.widgets.SweepPanel` shows
them after each run.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..seeds import per_epoch
from ..sweep import SETTING_FIELDS, final_records, records_by_run, seed_summary, setting_of
from .fonts import chinese_text
from .labels import STATUS_WORDS, status_kind, status_label, status_word

MISSING = "—"
LARGE_LOSS = 1e3  # losses from here on are written in scientific form, to keep columns narrow
FAILURE_MARKERS = {  # status kind: marker style
    "diverged": {"marker": "x", "color": "#c62828", "markersize": 9, "mew": 2},
    "stopped": {"marker": "s", "color": "#757575", "markersize": 6, "mfc": "none"},
    "interrupted": {"marker": "D", "color": "#757575", "markersize": 6, "mfc": "none"},
}
FAILED_Y = {"diverged": -0.09, "stopped": -0.15, "interrupted": -0.15}  # in the strip, not at 0
STRIP = (-0.2, -0.04)  # the strip's extent on the accuracy axis
LEGEND_INSIDE = 6  # legends of up to this many entries sit inside the axes, longer ones below
LEGEND_FONT = 7  # points
FIGURE_SIZE = (4.8, 3.2)  # inches, before a legend below the axes
TABLE_COLUMNS = (  # short headers: the table fits the book's text column (about 700 px)
    "学习率", "倍数", "周期", "其他", "种子", "训练损失", "验证精度", "测试精度", "状态",
)  # fmt: skip
TABLE_STYLE = "border-collapse:collapse;font-size:90%;max-width:100%"
CELL_STYLE = "padding:1px 6px;text-align:{align};vertical-align:top;white-space:nowrap"
RANGE_STYLE = "font-size:85%;color:#666"
EN_DASH = "\u2013"  # between the ends of a range


# --- numbers -----------------------------------------------------------------------------


def format_lr(value: Any) -> str:
    """A learning rate as ``6.4e-3`` (one decimal, exponent unpadded); — when missing."""
    number = _number(value)
    return MISSING if number is None else _scientific(number)


def format_acc(value: Any) -> str:
    """An accuracy with 3 decimals; — when missing."""
    number = _number(value)
    return MISSING if number is None else f"{number:.3f}"


def format_loss(value: Any) -> str:
    """A loss with 3 decimals, or as ``2.0e+14`` from :data:`LARGE_LOSS` on; — when missing."""
    number = _number(value)
    if number is None:
        return MISSING
    return f"{number:.3f}" if abs(number) < LARGE_LOSS else _scientific(number)


def _scientific(number: float) -> str:
    """``number`` as ``1.0e-3`` / ``2.0e+14``: one decimal, the exponent without padding."""
    mantissa, exponent = f"{number:.1e}".split("e")
    return f"{mantissa}e{exponent[0]}{exponent[1:].lstrip('0') or '0'}"


# --- statuses and settings ---------------------------------------------------------------


def _status_label(status: Any) -> str:
    """A record's status in Chinese, in full; — when missing."""
    return MISSING if status is None else status_label(str(status))


def setting_label(row: dict) -> str:
    """A setting in a few words: its head's learning rate and what differs from the default."""
    label = f"输出层学习率 {format_lr(row['head_lr'])}"
    tags = setting_tags(row)
    return label + (f"，{tags}" if tags else "")


def setting_tags(row: dict, sep: str = "、") -> str:
    """The setting's switches that are on, in short words (augmentation is on by default, so
    it is named only when it is off, and never for a frozen body, which never augments)."""
    tags = []
    if row.get("freeze_body"):
        tags.append("冻结主干")
    elif row.get("augment") is False:
        tags.append("不增广")
    if row.get("init_hotdog_row"):
        tags.append("热狗类初始化")
    return sep.join(tags)


def _groups(records: Sequence[dict]) -> list[list[list[dict]]]:
    """The runs grouped by setting (without seed), settings in order of their first run."""
    groups: dict[tuple, list[list[dict]]] = {}
    for run in records_by_run(records):
        groups.setdefault(setting_of(run[0]), []).append(run)
    return list(groups.values())


# --- figures -----------------------------------------------------------------------------


@chinese_text()
def live_figure(records: Sequence[dict]) -> Figure:
    """Validation accuracy per epoch: a line per run for a setting run once; for a setting
    run with several seeds, the mean over the seeds that reached each epoch, with their range
    as a band. A run that diverged, stopped or was interrupted is marked at the bottom, at
    its last epoch."""
    fig = Figure(figsize=FIGURE_SIZE, layout="constrained")
    ax = fig.subplots()
    groups = _groups(records)
    marked: set[str] = set()
    for color, runs in zip(setting_colors(len(groups)), groups, strict=True):
        if len(runs) == 1:
            first = runs[0][0]
            done = [r for r in runs[0] if _number(r["val_acc"]) is not None]
            label = f"运行 {first['run']}：{setting_label(first)}"
            ax.plot([r["epoch"] for r in done], [r["val_acc"] for r in done], marker=".",
                    color=color, label=label)  # fmt: skip
        else:
            _mean_band(ax, runs, color)
        for run in runs:
            for r in run:
                if _number(r["val_acc"]) is None and r["epoch"] is not None:
                    _mark_failure(ax, r["epoch"], r["status"], marked)
    ax.set_xlabel("迭代周期")
    _accuracy_axis(ax, "验证精度")
    last = max((r["epoch"] for r in records if r["epoch"] is not None), default=1)
    _integer_epochs(ax, last)
    ax.grid(alpha=0.3)
    ax.set_title("每个迭代周期的验证精度", fontsize=10)
    _legend(fig, ax)
    return fig


def setting_colors(count: int) -> list[Any]:
    """``count`` colours, one per setting, all told apart: matplotlib's ten default ones, then
    tab20's twenty, then as many evenly spaced colours of the turbo colour map."""
    if count <= 10:
        return [f"C{i}" for i in range(count)]
    if count <= 20:
        return [matplotlib.colormaps["tab20"](i) for i in range(count)]
    turbo = matplotlib.colormaps["turbo"]
    return [turbo(0.05 + 0.9 * i / (count - 1)) for i in range(count)]


def _legend(fig: Figure, ax: Axes) -> None:
    """The settings', then the failures' legend entries: inside the axes, or, past
    :data:`LEGEND_INSIDE` entries, under them in as many columns as the longest label allows,
    the figure made taller to hold them."""
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return
    order = sorted(range(len(labels)), key=lambda i: labels[i].endswith("（无精度）"))
    handles, labels = [handles[i] for i in order], [labels[i] for i in order]
    if len(handles) <= LEGEND_INSIDE:
        ax.legend(handles, labels, fontsize=LEGEND_FONT)
        return
    width = FIGURE_SIZE[0] * 72  # points
    columns = max(1, min(3, int(width // max(_label_points(label) for label in labels))))
    rows = math.ceil(len(handles) / columns)
    fig.set_size_inches(FIGURE_SIZE[0], FIGURE_SIZE[1] + 0.2 + rows * LEGEND_FONT * 1.4 / 72)
    fig.legend(handles, labels, loc="outside lower center", ncols=columns, fontsize=LEGEND_FONT)


def _label_points(label: str) -> float:
    """A legend entry's rough width in points: CJK characters 1 em, others 0.6 em, plus the
    marker and the gaps."""
    ems = sum(1.0 if ord(c) > 0x2E7F else 0.6 for c in label)
    return ems * LEGEND_FONT + 3.5 * LEGEND_FONT


def _mean_band(ax: Axes, runs: list[list[dict]], color: str) -> None:
    """The mean over seeds per epoch as a line, their low-high range as a band; the legend
    counts the seeds with an accuracy (a run stopped or diverged before its first epoch's end
    has none), and names no line when none has."""
    bands = per_epoch({r["epoch"]: _number(r["val_acc"]) for r in run} for run in runs)
    epochs = list(bands)
    seeds = sum(any(_number(r["val_acc"]) is not None for r in run) for run in runs)
    label = f"{setting_label(runs[0][0])}（{seeds} 个种子的平均）" if seeds else "_nolegend_"
    ax.plot(epochs, [bands[e].mean for e in epochs], marker=".", color=color, label=label)
    if epochs:
        lows, highs = [bands[e].low for e in epochs], [bands[e].high for e in epochs]
        ax.fill_between(epochs, lows, highs, color=color, alpha=0.2, lw=0)


def _mark_failure(ax: Axes, x: float, status: Any, marked: set[str]) -> None:
    """A marker at the bottom for a run without an accuracy; the legend names each kind once."""
    kind = status_kind(status)
    kind = kind if kind in FAILURE_MARKERS else "interrupted"
    word = status_word(kind)
    label = "_nolegend_" if word in marked else f"{word}（无精度）"
    marked.add(word)
    ax.plot([x], [FAILED_Y[kind]], ls="none", label=label, **FAILURE_MARKERS[kind])


def _accuracy_axis(ax: Axes, label: str) -> None:
    """Accuracy from 0 to 1, and below it the grey strip where runs without one are marked."""
    ax.set_ylabel(label)
    ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    marks = set(FAILED_Y.values())
    failed = any(line.get_ydata()[0] in marks for line in ax.lines if len(line.get_ydata()))
    ax.set_ylim(STRIP[0] if failed else -0.05, 1.05)
    if failed:
        ax.axhspan(*STRIP, color="0.92", zorder=0, lw=0)
        ax.text(0.01, sum(STRIP) / 2, "无精度", transform=ax.get_yaxis_transform(), ha="left",
                va="center", fontsize=7, color="0.4")  # fmt: skip


def _integer_epochs(ax: Axes, last: int) -> None:
    """Whole-number epoch ticks over 1..last (one epoch reads 1, not 0.95 to 1.05)."""
    ax.set_xlim(0.5, max(int(last), 1) + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


SUMMARY_AXES = {  # x: (the setting that varies along a line, axis label)
    "head_lr": ("head_multiplier", "输出层学习率（基础学习率 × 倍数）"),
    "learning_rate": ("learning_rate", "基础学习率 η（输出层为 η × 倍数）"),
}


@chinese_text()
def summary_figure(records: Sequence[dict], x: str = "head_lr") -> Figure:
    """Final validation accuracy against a learning rate (log axis): the head's (``x="head_lr"``),
    one line per group of settings that differ only in their head multiplier; or the body's
    (``x="learning_rate"``, η), one line per group that differ only in η.

    Each point is the mean over the setting's seeds, its error bar their range (none with a
    single seed). Runs without an accuracy (diverged, stopped, interrupted) are marked in a grey
    strip below the axis at their learning rate and are left out of the means.
    """
    if x not in SUMMARY_AXES:
        raise ValueError(f"x must be one of {', '.join(SUMMARY_AXES)}, got {x!r}.")
    varies, x_label = SUMMARY_AXES[x]
    fig = Figure(figsize=FIGURE_SIZE, layout="constrained")
    ax = fig.subplots()
    lines: dict[tuple, list[dict]] = {}
    for row in seed_summary(records, "val_acc"):
        key = tuple(row[k] for k in SETTING_FIELDS if k != varies)
        lines.setdefault(key, []).append(row)
    failed = [r for r in final_records(records) if _number(r["val_acc"]) is None]
    several = False
    for color, rows in zip(setting_colors(len(lines)), lines.values(), strict=True):
        rows = sorted((r for r in rows if r["mean"] is not None), key=lambda r: r[x])
        if not rows:
            continue
        first = rows[0]
        fixed = (
            f"基础学习率 {format_lr(first['learning_rate'])}"
            if x == "head_lr"
            else f"倍数 {first['head_multiplier']:g}"
        )
        label = f"{fixed}，{first['num_epochs']} 个迭代周期"
        tags = setting_tags(first)
        label += f"，{tags}" if tags else ""
        xs, means = [r[x] for r in rows], [r["mean"] for r in rows]
        errors = [[m - r["low"] for m, r in zip(means, rows, strict=True)],
                  [r["high"] - m for m, r in zip(means, rows, strict=True)]]  # fmt: skip
        several = several or any(len(r["seeds"]) > 1 for r in rows)
        ax.errorbar(xs, means, yerr=errors, marker="o", color=color, capsize=3,
                    label=label)  # fmt: skip
    marked: set[str] = set()
    for r in failed:
        _mark_failure(ax, r[x], r["status"], marked)
    ax.set_xscale("log")
    ax.set_xlabel(x_label)
    _accuracy_axis(ax, "最终验证精度")
    ax.grid(alpha=0.3, which="both")
    ax.set_title("各设置的最终验证精度" + ("（种子的平均与范围）" if several else ""), fontsize=10)
    _legend(fig, ax)
    return fig


# --- tables ------------------------------------------------------------------------------


def results_table(records: Sequence[dict]) -> str:
    """An HTML table, one row per setting with its seeds aggregated; missing values show as —.

    The seeds column counts the runs that finished (a stopped or interrupted run is no seed).
    Accuracies are the mean over the seeds that have one, the low-high range under it when
    there are several; the status counts the runs that diverged, stopped or were interrupted
    (each run's full status is the cell's tooltip). Columns are few and narrow, so that the
    table fits the book's text column.
    """
    val, test, loss = (seed_summary(records, key) for key in ("val_acc", "test_acc", "train_loss"))
    rows = []
    for v, t, lo in zip(val, test, loss, strict=True):
        cells = [
            _td(format_lr(v["learning_rate"])),
            _td(f"{v['head_multiplier']:g}"),
            _td(str(v["num_epochs"])),
            _td(setting_tags(v, "\n") or MISSING, "left"),
            _td(str(v["finished"])),
            _td(format_loss(lo["mean"])),
            _range_td(v),
            _range_td(t),
            _td(_short_status(v["statuses"]), "left", title=_full_status(v)),
        ]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return _table(TABLE_COLUMNS, rows, left={3, 8})


def _short_status(statuses: Sequence[Any]) -> str:
    """``正常`` when every run ended well; else the count of each kind of failure, briefly, one
    kind a line."""
    kinds = [status_kind(s) for s in statuses]
    failures = [k for k in kinds if k != "ok"]
    if not failures:
        return "正常"
    if len(kinds) == 1:
        return status_word(kinds[0]) if kinds[0] in STATUS_WORDS else _status_label(statuses[0])
    counts: dict[str, int] = {}
    for kind in failures:
        counts[kind] = counts.get(kind, 0) + 1
    words = [f"{n} 次{status_word(k).removeprefix('已')}" for k, n in counts.items()]
    return "\n".join(words)


def _full_status(row: dict) -> str:
    return "；".join(
        f"种子 {seed}：{_status_label(status)}"
        for seed, status in zip(row["seeds"], row["statuses"], strict=True)
    )


def _range_td(row: dict) -> str:
    """The mean, with the low-high range in a second, smaller line when there are several."""
    mean = format_acc(row["mean"])
    ok = len(row["seeds"]) - row["failed"]
    if row["mean"] is None or ok < 2:
        return _td(mean)
    spread = f"{format_acc(row['low'])}{EN_DASH}{format_acc(row['high'])}"
    return _td(f'{mean}<br><span style="{RANGE_STYLE}">{spread}</span>', escape=False)


def _td(text: str, align: str = "right", title: str = "", escape: bool = True) -> str:
    """A cell; a newline in ``text`` is a line break (so that the column stays narrow)."""
    body = html.escape(text, quote=False).replace("\n", "<br>") if escape else text
    tip = f' title="{html.escape(title)}"' if title else ""
    return f'<td style="{CELL_STYLE.format(align=align)}"{tip}>{body}</td>'


def _table(headers: Sequence[str], rows: Sequence[str], left: set[int]) -> str:
    head = "".join(
        f'<th style="{CELL_STYLE.format(align="left" if i in left else "right")}">'
        f"{html.escape(h)}</th>"
        for i, h in enumerate(headers)
    )
    return (
        f'<table style="{TABLE_STYLE}">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _number(value: Any) -> float | None:
    """``value`` as a float, or None when it is missing or not finite."""
    if value is None or isinstance(value, bool):
        return None
    value = float(value)
    return value if math.isfinite(value) else None
