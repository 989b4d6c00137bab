# ruff: noqa: RUF001  (Chinese text uses full-width punctuation on purpose)
"""A control panel for the exercises: choose learning rates and head multipliers, click Run.

The panel is thin: :meth:`Sweeper.run <d2lhelpers.sweep.Sweeper.run>` does all the training;
the panel only turns the controls into :class:`~d2lhelpers.sweep.SweepSetting` objects and
shows the records. Figures are PNG bytes in ``Image`` widgets (not ``Output`` widgets), so they
show without a running kernel and in the built book, whose widget state is saved when it is
built. The text shown to the learner is Chinese, the figures' set in the package's own font
(:mod:`d2lhelpers.fonts`); exceptions stay English. Only widgets and traits that ipywidgets
7.7.1 (Colab's) and 8.x both have are used.
"""

from __future__ import annotations

import html
import math
import time
from collections.abc import Callable, Sequence
from io import BytesIO
from typing import Any, Protocol

import ipywidgets as widgets
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .checks import positive_finite, positive_int
from .finetune import CHAPTER_SETTINGS
from .fonts import chinese_text
from .plot import status_label
from .sweep import SweepSetting, final_records, records_by_run

DEFAULT_LEARNING_RATE = CHAPTER_SETTINGS["real"]["finetune_lr"]  # d2l's, for the mean loss
DEFAULT_MULTIPLIERS = (1, 10)
LEARNING_RATE_RANGE = (1e-4, 10.0)  # the learning-rate slider's range
EPOCH_RANGE = (1, 10)  # the epochs slider's range
DIVERGED_STYLE = {"marker": "x", "color": "#c62828", "markersize": 9, "mew": 2, "ls": "none"}
GROUP_FIELDS = ("learning_rate", "num_epochs", "freeze_body", "init_hotdog_row")
TABLE_COLUMNS = (
    "运行", "基础学习率", "倍数", "输出层学习率", "迭代周期", "冻结主干", "热狗类初始化",
    "训练损失", "训练精度", "测试精度", "状态",
)  # fmt: skip


class Runner(Protocol):
    """What the panel needs of a :class:`~d2lhelpers.sweep.Sweeper`."""

    def run(
        self,
        settings: Sequence[SweepSetting],
        on_run: Callable[[list[dict]], None] | None = None,
        progress: bool = True,
    ) -> list[dict]: ...


class SweepPanel:
    """Controls for one sweep per Run click; results accumulate until Clear.

    ``widget`` is what a notebook shows (displaying the panel shows it); ``records`` holds the
    records of every run so far (see :data:`~d2lhelpers.sweep.RECORD_FIELDS`), with run numbers
    continuing across clicks.
    """

    def __init__(
        self,
        sweeper: Runner,
        multipliers: Sequence[float] = (1, 2, 5, 10, 20, 50, 100),
        learning_rate: float = DEFAULT_LEARNING_RATE,
        epochs: int = 3,
        dpi: int = 100,
    ) -> None:
        multipliers, learning_rate, epochs = _check_panel(multipliers, learning_rate, epochs)
        dpi = positive_int("dpi", dpi)
        self.sweeper, self.dpi = sweeper, dpi
        self.records: list[dict] = []
        self._next_run = 0  # the number of the next click's first run
        self._click: dict[str, Any] = {}  # earlier records, run offset and runs done this click
        self._running = False

        style = {"description_width": "initial"}
        low, high = (math.log10(bound) for bound in LEARNING_RATE_RANGE)
        self.learning_rate = widgets.FloatLogSlider(
            value=learning_rate, base=10, min=low, max=high, step=0.1, readout_format=".1e",
            description="基础学习率 η", continuous_update=False, style=style,
        )  # fmt: skip
        chosen = tuple(m for m in multipliers if m in DEFAULT_MULTIPLIERS) or tuple(multipliers[:1])
        self.multipliers = widgets.SelectMultiple(
            options=[(f"{m:g}", m) for m in multipliers], value=chosen,
            rows=min(len(multipliers), 7), description="输出层倍数", style=style,
        )  # fmt: skip
        self.epochs = widgets.IntSlider(
            value=epochs, min=EPOCH_RANGE[0], max=EPOCH_RANGE[1], description="迭代周期",
            continuous_update=False, style=style,
        )  # fmt: skip
        self.freeze_body = widgets.Checkbox(value=False, description="冻结主干", indent=False)
        self.init_hotdog_row = widgets.Checkbox(
            value=False, description="用源模型的热狗类初始化输出层", indent=False
        )
        self.run_button = widgets.Button(description="运行", button_style="primary", icon="play")
        self.clear_button = widgets.Button(description="清除", icon="trash")
        self.progress = widgets.IntProgress(value=0, min=0, max=1, description="进度", style=style)
        self.status = widgets.HTML(value="")
        self.live_plot = _image()
        self.summary_plot = _image()
        self.table = widgets.HTML(value="")
        self.run_button.on_click(self.run)
        self.clear_button.on_click(self.clear)

        row = widgets.Layout(flex_flow="row wrap", align_items="flex-start")
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.learning_rate, self.epochs], layout=row),
                widgets.HBox(
                    [self.multipliers, widgets.VBox([self.freeze_body, self.init_hotdog_row])],
                    layout=row,
                ),
                widgets.HBox([self.run_button, self.clear_button, self.progress], layout=row),
                self.status,
                widgets.HBox([self.live_plot, self.summary_plot], layout=row),
                self.table,
            ]
        )

    def _ipython_display_(self, **kwargs) -> None:
        from IPython.display import display

        display(self.widget)

    def settings(self) -> list[SweepSetting]:
        """One setting per selected multiplier, from the controls (ValueError if none)."""
        if not self.multipliers.value:
            raise ValueError("select at least one head multiplier.")
        return [
            SweepSetting(
                learning_rate=self.learning_rate.value,
                head_multiplier=multiplier,
                num_epochs=self.epochs.value,
                freeze_body=self.freeze_body.value,
                init_hotdog_row=self.init_hotdog_row.value,
            )
            for multiplier in sorted(self.multipliers.value)
        ]

    def run(self, _button: widgets.Button | None = None) -> None:
        """The Run button: one sweep over the selected multipliers; errors go to the status."""
        if self._running:
            return
        self._running, self.run_button.disabled = True, True
        start = time.perf_counter()
        try:
            settings = self.settings()
            self._click = {"earlier": list(self.records), "offset": self._next_run, "done": 0}
            self.progress.value, self.progress.max = 0, len(settings)
            self._show_status(f"正在训练，共 {len(settings)} 次运行……")
            self._merge(self.sweeper.run(settings, on_run=self._on_run, progress=False))
            self._show_status(self._done_text(len(settings), time.perf_counter() - start))
        except (Exception, KeyboardInterrupt) as err:
            message = " ".join(str(err).split())  # one line, however long the original
            text = f"{type(err).__name__}: {message}" if message else type(err).__name__
            if self._click:
                text += f"（{self.progress.max} 次运行中已完成 {self._click['done']} 次）"
            self._show_status(text, error=True)
        finally:
            if self._click:
                self._show_results()
            self._click = {}
            self._running, self.run_button.disabled = False, False

    def clear(self, _button: widgets.Button | None = None) -> None:
        """The Clear button: forget every record; empty the figures, table and status."""
        if self._running:
            return
        self.records, self._next_run = [], 0
        self.progress.value = 0
        self.status.value = self.table.value = ""
        for image in (self.live_plot, self.summary_plot):
            _set_png(image, b"")

    def _on_run(self, records: list[dict]) -> None:
        """After each run: keep its records, advance the bar, redraw the live figure."""
        self._click["done"] += 1
        self._merge(records)
        self.progress.value = min(self._click["done"], self.progress.max)
        _set_png(self.live_plot, self._png(live_figure(self.records)))

    def _merge(self, records: Sequence[dict]) -> None:
        """This click's records so far (runs counted from 0) after the earlier clicks' ones."""
        offset = self._click["offset"]
        shifted = [{**record, "run": record["run"] + offset} for record in records]
        self.records = self._click["earlier"] + shifted
        last = max((record["run"] + 1 for record in shifted), default=offset)
        self._next_run = max(self._next_run, last, offset + self._click["done"])

    def _show_results(self) -> None:
        if not self.records:
            return
        _set_png(self.live_plot, self._png(live_figure(self.records)))
        _set_png(self.summary_plot, self._png(summary_figure(self.records)))
        self.table.value = results_table(self.records)

    def _done_text(self, runs: int, seconds: float) -> str:
        finals = [r for r in final_records(self.records) if r["run"] >= self._click["offset"]]
        diverged = sum(str(r["status"]).startswith("diverged") for r in finals)
        extra = f"，其中 {diverged} 次发散" if diverged else ""
        return f"完成：{runs} 次运行{extra}，用时 {seconds:.0f} 秒。"

    def _show_status(self, text: str, error: bool = False) -> None:
        color = "#c62828" if error else "inherit"
        self.status.value = f'<span style="color:{color}">{html.escape(text, quote=False)}</span>'

    def _png(self, fig: Figure) -> bytes:
        buffer = BytesIO()
        fig.savefig(buffer, format="png", dpi=self.dpi)
        return buffer.getvalue()


def _check_panel(
    multipliers: Sequence[float], learning_rate: float, epochs: int
) -> tuple[tuple[float, ...], float, int]:
    """The panel's values checked (ValueError naming the argument): the sliders would clamp
    a value outside their range silently."""
    if isinstance(multipliers, (str, bytes)) or not multipliers:
        raise ValueError(f"multipliers must be a non-empty sequence, got {multipliers!r}.")
    for multiplier in multipliers:
        positive_finite("multipliers", multiplier)
    learning_rate = positive_finite("learning_rate", learning_rate)
    if not LEARNING_RATE_RANGE[0] <= learning_rate <= LEARNING_RATE_RANGE[1]:
        raise ValueError(
            f"learning_rate must lie within the slider's range {LEARNING_RATE_RANGE}, "
            f"got {learning_rate!r}."
        )
    epochs = positive_int("epochs", epochs)
    if epochs > EPOCH_RANGE[1]:
        raise ValueError(f"epochs must lie within the slider's range {EPOCH_RANGE}, got {epochs}.")
    return tuple(multipliers), learning_rate, epochs


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


def _image() -> widgets.Image:
    return widgets.Image(value=b"", format="png", layout=widgets.Layout(display="none"))


def _set_png(image: widgets.Image, png: bytes) -> None:
    """Show ``png`` in ``image``, or hide the widget when there is nothing to show."""
    image.value = png
    image.layout.display = None if png else "none"


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
