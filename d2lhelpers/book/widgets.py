# ruff: noqa: RUF001  (Chinese text uses full-width punctuation on purpose)
"""A control panel for the exercises: choose learning rates and head multipliers, click Run.

The panel is thin: :meth:`Sweeper.run <d2lhelpers.sweep.Sweeper.run>` does all the training;
the panel only turns the controls into :class:`~d2lhelpers.sweep.SweepSetting` objects and
shows the records. Figures are PNG bytes in ``Image`` widgets (not ``Output`` widgets), so they
show without a running kernel and in the built book, whose widget state is saved when it is
built; the figures, the table and the number formats come from :mod:`d2lhelpers.book.sweep_plots`.
The text shown to the learner is Chinese; exceptions stay English. Only widgets and traits
that ipywidgets 7.7.1 (Colab's) and 8.x both have are used.
"""

from __future__ import annotations

import html
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from io import BytesIO
from typing import Any, Protocol

import ipywidgets as widgets
from matplotlib.figure import Figure

from ..chapter import CHAPTER_SETTINGS
from ..checks import one_line, positive_finite, positive_int
from ..sweep import (
    SETTING_FIELDS,
    UNFINISHED,
    SweepSetting,
    final_records,
    records_of,
    setting_of,
)
from ..train import History
from .labels import status_kind, status_word
from .sweep_plots import (
    format_lr,
    live_figure,
    results_table,
    summary_figure,
)
from .tooltips import tooltip

DEFAULT_LEARNING_RATE = CHAPTER_SETTINGS["real"]["finetune_lr"]  # d2l's, for the mean loss
DEFAULT_MULTIPLIERS = (1, 10)
LEARNING_RATE_RANGE = (1e-4, 10.0)  # the learning-rate slider's range
EPOCH_RANGE = (1, 10)  # the epochs slider's range
SEED_RANGE = (1, 5)  # the seeds slider's range: seeds per setting and click
FEATURES_TEXT = "正在计算冻结主干的特征（只需一次）……"
STOP_HINT = "（点「停止」在当前批量之后停止）"  # a sweep in the worker thread (the Run button)
STOP_HINT_CELL = "（点「停止」在当前批量之后停止；若无反应，请中断内核 ■）"  # run() in a cell
BUSY_TEXT = "已有一次扫描在运行：请等它结束，或点「停止」。"


class Runner(Protocol):
    """What the panel needs of a :class:`~d2lhelpers.sweep.Sweeper`."""

    features_ready: bool

    def run(
        self,
        settings: Sequence[SweepSetting],
        on_run: Callable[[list[dict]], None] | None = None,
        progress: bool = True,
        on_progress: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        first_run: int | None = None,
    ) -> list[dict]: ...


class SweepPanel:
    """Controls for one sweep per Run click; results accumulate until Clear.

    ``widget`` is what a notebook shows (displaying the panel shows it); ``records`` holds the
    records of every run so far (see :data:`~d2lhelpers.sweep.RECORD_FIELDS`), with run numbers
    continuing across clicks. Each click runs every selected multiplier with ``seeds`` seeds:
    the smallest seeds that setting has not finished with yet, so a second click on the same
    setting adds new seeds rather than repeating one.

    **Run and Stop.** The Run button starts the sweep in a worker thread and returns at once,
    so that the kernel, free again, handles Stop's click as its next message (whether or not
    it runs widget messages on a subshell, as ipykernel 7 may). The worker updates the widgets
    itself (ipykernel sends their changes from any thread), coarsely: the bar at most every
    :attr:`update_interval` seconds, the figures after each run. One sweep runs at a time (Run
    is disabled meanwhile, and a click that arrives anyway only shows :data:`BUSY_TEXT`). Stop
    sets a :class:`threading.Event` that the sweeper reads between batches: the run in
    progress ends after its current batch, is recorded as stopped, and no later setting runs.
    :meth:`wait` waits for the worker.

    :meth:`run` is the same sweep on the calling thread, returning when it has ended: a page
    calls it in a cell so that the built book shows finished results. There Stop works only
    where the kernel handles widget messages while a cell runs (ipykernel 7's subshells);
    interrupting the kernel (■, Ctrl-C) always does: the run in progress is recorded as
    interrupted and the runs before it are kept.
    """

    update_interval = 0.2  # seconds between two redraws of the progress bar (besides a run's end)

    def __init__(
        self,
        sweeper: Runner,
        multipliers: Sequence[float] = (1, 2, 5, 10, 20, 50, 100),
        learning_rate: float = DEFAULT_LEARNING_RATE,
        epochs: int = 3,
        seeds: int = 1,
        dpi: int = 100,
    ) -> None:
        multipliers, learning_rate, epochs, seeds = _check_panel(
            multipliers, learning_rate, epochs, seeds
        )
        dpi = positive_int("dpi", dpi)
        self.sweeper, self.dpi = sweeper, dpi
        self.records: list[dict] = []
        self._next_run = 0  # the number of the next click's first run
        self._click: dict[str, Any] = {}  # the sweep under way: its settings, offset, runs done
        self._running = False  # a sweep is under way (in the worker or in run())
        self._stop = threading.Event()  # set by Stop, read by the sweeper between batches
        self._lock = threading.Lock()  # Run, Stop and a sweep's end, one at a time
        self._worker: threading.Thread | None = None
        self._hint = STOP_HINT
        self._error = False  # whether the status shows an error (cleared when a control changes)
        self._last_update = 0.0

        style = {"description_width": "initial"}
        low, high = (math.log10(bound) for bound in LEARNING_RATE_RANGE)
        self.learning_rate = widgets.FloatLogSlider(
            value=learning_rate, base=10, min=low, max=high, step=0.1, readout=False,
            description="基础学习率 η", continuous_update=False, style=style,
            **tooltip("主干各层的学习率 η；输出层的学习率是 η 乘以所选的倍数"),
        )  # fmt: skip
        self.learning_rate_readout = widgets.Label(value=format_lr(learning_rate))
        chosen = tuple(m for m in multipliers if m in DEFAULT_MULTIPLIERS) or tuple(multipliers[:1])
        self.multipliers = widgets.SelectMultiple(
            options=[(f"{m:g}", m) for m in multipliers], value=chosen,
            rows=min(len(multipliers), 7), description="输出层倍数", style=style,
            **tooltip("输出层的学习率是 η 的几倍；按住 Ctrl 或 Shift 可多选，每个倍数各训练一次"),
        )  # fmt: skip
        self.epochs = widgets.IntSlider(
            value=epochs, min=EPOCH_RANGE[0], max=EPOCH_RANGE[1], description="迭代周期",
            continuous_update=False, style=style, **tooltip("每次运行训练的迭代周期数"),
        )  # fmt: skip
        self.seeds = widgets.IntSlider(
            value=seeds, min=SEED_RANGE[0], max=SEED_RANGE[1], description="种子数",
            continuous_update=False, style=style,
            **tooltip("每个设置用几个随机种子各训练一次：结果之间的差别是种子之间的波动"),
        )  # fmt: skip
        self.freeze_body = widgets.Checkbox(
            value=False, description="冻结主干", indent=False,
            **tooltip("只训练输出层，主干保持源模型的参数（这时不做数据增广）"),
        )  # fmt: skip
        self.augment = widgets.Checkbox(
            value=True, description="数据增广", indent=False,
            **tooltip("训练时随机裁剪、翻转图像"),
        )  # fmt: skip
        self.init_hotdog_row = widgets.Checkbox(
            value=False, description="用源模型的热狗类初始化输出层", indent=False,
            **tooltip("输出层的“热狗”一行取自源模型热狗类的权重，另一行取它的相反数"),
        )  # fmt: skip
        self.run_button = widgets.Button(description="运行", button_style="primary", icon="play")
        self.stop_button = widgets.Button(
            description="停止", button_style="warning", icon="stop", disabled=True
        )
        self.clear_button = widgets.Button(description="清除", icon="trash")
        self.progress = widgets.FloatProgress(
            value=0, min=0, max=1, description="进度", style=style,
            **tooltip("这次扫描的进度：每次运行占一段，随批量前进"),
        )  # fmt: skip
        self.progress_text = widgets.Label(value="")
        self.status = widgets.HTML(value="")
        self.live_plot = _image()
        self.summary_plot = _image()
        self.table = widgets.HTML(value="")
        self.run_button.on_click(self.start)
        self.stop_button.on_click(self.stop)
        self.clear_button.on_click(self.clear)
        for control in self.controls():
            control.observe(self._control_changed, names="value")

        row = widgets.Layout(flex_flow="row wrap", align_items="flex-start")
        options = [self.seeds, self.freeze_body, self.augment, self.init_hotdog_row]
        buttons = [self.run_button, self.stop_button, self.clear_button]
        self.widget = widgets.VBox(
            [
                widgets.HBox(
                    [self.learning_rate, self.learning_rate_readout, self.epochs], layout=row
                ),
                widgets.HBox([self.multipliers, widgets.VBox(options)], layout=row),
                widgets.HBox([*buttons, self.progress, self.progress_text], layout=row),
                self.status,
                widgets.HBox([self.live_plot, self.summary_plot], layout=row),
                self.table,
            ]
        )

    def _ipython_display_(self, **kwargs) -> None:
        from IPython.display import display

        display(self.widget)

    def controls(self) -> list[widgets.Widget]:
        """The widgets that choose the settings."""
        return [self.learning_rate, self.multipliers, self.epochs, self.seeds, self.freeze_body,
                self.augment, self.init_hotdog_row]  # fmt: skip

    def settings(self) -> list[SweepSetting]:
        """The settings of one click, from the controls (ValueError if no multiplier is chosen):
        every selected multiplier, smallest first, with ``seeds`` seeds it has not finished."""
        if not self.multipliers.value:
            raise ValueError("select at least one head multiplier.")
        frozen = self.freeze_body.value
        settings = []
        for multiplier in sorted(self.multipliers.value):
            base = SweepSetting(
                learning_rate=self.learning_rate.value,
                head_multiplier=multiplier,
                num_epochs=self.epochs.value,
                freeze_body=frozen,
                init_hotdog_row=self.init_hotdog_row.value,
                augment=self.augment.value and not frozen,  # a frozen body never augments
            )
            used = self._finished_seeds(base)
            seeds = [s for s in range(len(used) + self.seeds.value) if s not in used]
            settings += [
                SweepSetting(**{**asdict(base), "seed": s}) for s in seeds[: self.seeds.value]
            ]
        return settings

    def _finished_seeds(self, setting: SweepSetting) -> set[int]:
        key = tuple(getattr(setting, name) for name in SETTING_FIELDS)
        return {
            r["seed"] for r in final_records(self.records)
            if setting_of(r) == key and r["status"] not in UNFINISHED
        }  # fmt: skip

    def run(self) -> None:
        """One sweep over the chosen settings on the calling thread, returning when it has
        ended (a page's cell calls it: the built book shows its results); errors go to the
        status line."""
        if self._begin(STOP_HINT_CELL):
            self._sweep()

    def start(self, _button: widgets.Button | None = None) -> bool:
        """The Run button: the sweep of :meth:`run` in a daemon worker thread; returns at once,
        True when a sweep started (False while one is under way)."""
        if not self._begin(STOP_HINT):
            return False
        self._worker = threading.Thread(target=self._sweep, name="SweepPanel", daemon=True)
        self._worker.start()
        return True

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the worker's sweep to end (at most ``timeout`` seconds); True when no sweep
        is under way any more."""
        if self._worker is not None:
            self._worker.join(timeout)
        return not self._running

    def _begin(self, hint: str) -> bool:
        """Claim the panel for one sweep; False, with a message, while another is under way."""
        with self._lock:
            if self._running:
                self._show_status(BUSY_TEXT)
                return False
            self._running, self._hint = True, hint
            self._stop.clear()
            self._set_buttons()
        return True

    def _sweep(self) -> None:
        """One sweep, then its results, final status and buttons, whatever happened."""
        start = time.perf_counter()
        text, error = "", False
        try:
            text, error = self._train(start)
        except KeyboardInterrupt:  # Ctrl-C outside the trainer's loop (run() in a cell)
            if self._click:
                self._record_interrupted()
                text = self._done_text(time.perf_counter() - start)
        except Exception as err:
            text, error = f"出错：{one_line(err, with_type=False)}", True
            if self._click:
                done, runs = self._click["done"], len(self._click["settings"])
                text += f"（{runs} 次运行中已完成 {done} 次）"
        finally:
            self._finish(text, error)

    def _train(self, start: float) -> tuple[str, bool]:
        """Run the sweeper over the controls' settings; the final status (text, is an error)."""
        if not self.multipliers.value:
            return "请至少选择一个输出层倍数。", True
        settings = self.settings()
        self._click = {"earlier": list(self.records), "offset": self._next_run, "done": 0,
                       "settings": settings, "current": 0, "batches": (0, 0),
                       "records": []}  # fmt: skip
        self.progress.value, self.progress.max = 0, len(settings)
        self.progress.bar_style, self.progress_text.value = "", ""
        self._announce(0)
        records = self.sweeper.run(  # numbered from 0: _merge places them after earlier clicks
            settings, on_run=self._on_run, progress=False, on_progress=self._on_progress,
            should_stop=self._stop.is_set, first_run=0,
        )  # fmt: skip
        self._merge(records)
        return self._done_text(time.perf_counter() - start), False

    def _finish(self, text: str, error: bool) -> None:
        """The sweep's end: its results and final status shown, the panel ready again."""
        with self._lock:
            try:
                if self._click:
                    self._show_results()
            finally:  # the panel is usable again even if a figure failed
                if text:
                    self._show_status(text, error=error)
                self.progress.bar_style = self._bar_style(error)
                self._click = {}
                self._running = False
                self._set_buttons()

    def _bar_style(self, error: bool) -> str:
        """The bar's colour at a sweep's end: red for an error, orange when it was stopped or
        interrupted before its last run ended, green when every run ended; none before a sweep
        began."""
        if not self._click:
            return ""
        if error:
            return "danger"
        kinds = self._click_kinds()
        ended = len(kinds) == len(self._click["settings"])
        broken = any(kind in ("stopped", "interrupted") for kind in kinds)
        return "warning" if broken or not ended else "success"

    def _click_kinds(self) -> list[str]:
        """The status kind (:func:`status_kind`) of each run of this click that has ended."""
        offset = self._click["offset"]
        return [status_kind(r["status"]) for r in final_records(self.records) if r["run"] >= offset]

    def stop(self, _button: widgets.Button | None = None) -> None:
        """The Stop button: end the sweep after the current batch (see the class docstring)."""
        with self._lock:
            if not self._running or self._stop.is_set():
                return  # a click delivered after the sweep ended, or a second one
            self._stop.set()
            self.stop_button.disabled = True
            self._show_status("正在停止：当前批量结束后停止……")

    def clear(self, _button: widgets.Button | None = None) -> None:
        """The Clear button: forget every record; empty the figures, table and status."""
        if self._running:
            return
        self.records, self._next_run = [], 0
        self.progress.value = 0
        self.progress.bar_style, self.progress_text.value = "", ""
        self.status.value = self.table.value = ""
        self._error = False
        for image in (self.live_plot, self.summary_plot):
            _set_png(image, b"")

    def _set_buttons(self) -> None:
        self.run_button.disabled = self.clear_button.disabled = self._running
        self.stop_button.disabled = not self._running

    def _control_changed(self, change: dict) -> None:
        self.learning_rate_readout.value = format_lr(self.learning_rate.value)
        self.augment.disabled = self.freeze_body.value  # a frozen body never augments
        if self._error:
            self.status.value, self._error = "", False

    def _announce(self, run: int) -> None:
        """The status before run ``run`` of this click starts (the feature step if it is due)."""
        settings = self._click["settings"]
        self._click["current"], self._click["batches"] = run, (0, 0)
        if run >= len(settings) or self._stop.is_set():
            return
        self.progress_text.value = f"第 {run + 1}/{len(settings)} 次运行：准备中"
        features = settings[run].freeze_body and not getattr(self.sweeper, "features_ready", True)
        self._click["features"] = features
        if features:
            self._show_status(FEATURES_TEXT)
        elif run == 0:
            self._show_status(f"正在训练，共 {len(settings)} 次运行……{self._hint}")

    def _on_progress(self, done: int, total: int) -> None:
        """After each batch: move the bar; the text says which run and batch."""
        click = self._click
        click["batches"] = (done, total)
        if click.get("features"):
            click["features"] = False
            self._show_status(f"正在训练，共 {len(click['settings'])} 次运行……{self._hint}")
        now = time.perf_counter()
        if done < total and now - self._last_update < self.update_interval:
            return
        self._last_update = now
        self._move_bar(click["done"], done, total, "批量")

    def _move_bar(self, run: int, done: int, total: int, where: str) -> None:
        """The bar at batch ``done`` of ``total`` in run ``run`` of this click; the text names
        the run and, after ``where``, the batch."""
        runs = len(self._click["settings"])
        self.progress.value = min(run + done / max(total, 1), runs)
        self.progress_text.value = f"第 {run + 1}/{runs} 次运行：{where} {done}/{total}"

    def _on_run(self, records: list[dict]) -> None:
        """After each run: keep its records, advance the bar, redraw the live figure. A run the
        trainer recorded as interrupted (Ctrl-C caught in its loop) ends the sweep here."""
        run = self._click["done"]
        self._click["done"] += 1
        self._merge(records)
        finals = [r for r in records if r["run"] == run]
        kind = status_kind(finals[-1]["status"]) if finals else "ok"
        if kind in ("stopped", "interrupted"):  # the bar stays where the run ended
            self._move_bar(run, *self._click["batches"], "停在批量")
        else:
            self.progress.value = min(self._click["done"], self.progress.max)
        _set_png(self.live_plot, self._png(live_figure(self.records)))
        if kind == "interrupted":
            self._click["current"] = None
            raise KeyboardInterrupt
        self._announce(run + 1)

    def _record_interrupted(self) -> None:
        """Ctrl-C outside the trainer's loop: record the run in progress as interrupted."""
        click = self._click
        run = click["current"]
        if run is None or run >= len(click["settings"]):
            return
        if any(r["run"] == run for r in click["records"]):
            return
        setting = click["settings"][run]
        done, total = click["batches"]
        epoch = min(setting.num_epochs, done * setting.num_epochs // total + 1) if total else 1
        (row,) = records_of(run, setting, History("", "", "", {}, status="stopped"))
        row.update(epoch=epoch, status="interrupted")
        self._merge([*click["records"], row])

    def _merge(self, records: Sequence[dict]) -> None:
        """This click's records so far (runs counted from 0) after the earlier clicks' ones."""
        offset = self._click["offset"]
        self._click["records"] = list(records)
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

    def _done_text(self, seconds: float) -> str:
        """What this click did: its runs, those that diverged, and where it stopped."""
        runs = len(self._click["settings"])
        kinds = self._click_kinds()
        diverged = kinds.count("diverged")
        extra = f"，其中 {diverged} 次发散" if diverged else ""
        ended = next((k for k in kinds if k in ("stopped", "interrupted")), None)
        took = f"用时 {seconds:.0f} 秒" if seconds >= 1 else "用时不到 1 秒"
        if ended is None:
            return f"完成：{runs} 次运行{extra}，{took}。"
        word = status_word(ended)
        finished = len(kinds) - 1
        skipped = runs - len(kinds)
        text = f"{word}：{runs} 次运行中完成 {finished} 次{extra}，第 {finished + 1} 次运行{word}"
        text += f"，其余 {skipped} 次未运行" if skipped else ""
        return text + f"，{took}。"

    def _show_status(self, text: str, error: bool = False) -> None:
        color = "#c62828" if error else "inherit"
        self.status.value = f'<span style="color:{color}">{html.escape(text, quote=False)}</span>'
        self._error = error

    def _png(self, fig: Figure) -> bytes:
        buffer = BytesIO()
        fig.savefig(buffer, format="png", dpi=self.dpi)
        return buffer.getvalue()


def _check_panel(
    multipliers: Sequence[float], learning_rate: float, epochs: int, seeds: int
) -> tuple[tuple[float, ...], float, int, int]:
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
    seeds = positive_int("seeds", seeds)
    if seeds > SEED_RANGE[1]:
        raise ValueError(f"seeds must lie within the slider's range {SEED_RANGE}, got {seeds}.")
    return tuple(multipliers), learning_rate, epochs, seeds


def _image() -> widgets.Image:
    return widgets.Image(value=b"", format="png", layout=widgets.Layout(display="none"))


def _set_png(image: widgets.Image, png: bytes) -> None:
    """Show ``png`` in ``image``, or hide the widget when there is nothing to show."""
    image.value = png
    image.layout.display = None if png else "none"
