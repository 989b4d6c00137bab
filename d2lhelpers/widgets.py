# ruff: noqa: RUF001  (Chinese text uses full-width punctuation on purpose)
"""A control panel for the exercises: choose learning rates and head multipliers, click Run.

The panel is thin: :meth:`Sweeper.run <d2lhelpers.sweep.Sweeper.run>` does all the training;
the panel only turns the controls into :class:`~d2lhelpers.sweep.SweepSetting` objects and
shows the records. Figures are PNG bytes in ``Image`` widgets (not ``Output`` widgets), so they
show without a running kernel and in the built book, whose widget state is saved when it is
built; the figures and the table come from :mod:`d2lhelpers.sweep_plots`. The text shown to
the learner is Chinese; exceptions stay English. Only widgets and traits that ipywidgets 7.7.1
(Colab's) and 8.x both have are used.
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

from .checks import positive_finite, positive_int
from .finetune import CHAPTER_SETTINGS
from .sweep import SweepSetting, final_records
from .sweep_plots import live_figure, results_table, summary_figure

DEFAULT_LEARNING_RATE = CHAPTER_SETTINGS["real"]["finetune_lr"]  # d2l's, for the mean loss
DEFAULT_MULTIPLIERS = (1, 10)
LEARNING_RATE_RANGE = (1e-4, 10.0)  # the learning-rate slider's range
EPOCH_RANGE = (1, 10)  # the epochs slider's range


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


def _image() -> widgets.Image:
    return widgets.Image(value=b"", format="png", layout=widgets.Layout(display="none"))


def _set_png(image: widgets.Image, png: bytes) -> None:
    """Show ``png`` in ``image``, or hide the widget when there is nothing to show."""
    image.value = png
    image.layout.display = None if png else "none"
