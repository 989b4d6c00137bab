# ruff: noqa: RUF001  (Chinese text uses full-width punctuation on purpose)
"""The sweep panel: a real tiny sweep through its controls, and a fake sweeper for the rest.

The fake calls ``on_progress``, ``should_stop`` and ``on_run`` as :class:`Sweeper` does, batch
by batch, without training. Buttons are clicked for real (``button.click()``); a Run click
starts the sweep in the panel's worker thread, so the tests wait for it (:func:`click_run`).
ipywidgets only logs an exception raised in an ``on_click`` handler, so these tests assert on
the panel's state after a click, never on "no exception". They also run against ipywidgets 7.7.1
(Colab's): ``bash scripts/ipywidgets7_env.sh DIR`` then ``PYTHONPATH=DIR pytest ...``.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Sequence

import ipywidgets
import pytest
import torch

from d2lhelpers.book.sweep_plots import format_lr, live_figure, summary_figure
from d2lhelpers.book.tooltips import TOOLTIP_TRAIT
from d2lhelpers.book.widgets import BUSY_TEXT, FEATURES_TEXT, SweepPanel
from d2lhelpers.sweep import RECORD_FIELDS, Sweeper, SweepSetting, records_of
from d2lhelpers.train import EpochStats, History
from d2lhelpers.workspace import Workspace

# ipywidgets 7 opens its comms through ipykernel's deprecated Comm class.
pytestmark = pytest.mark.filterwarnings(
    "ignore:The `ipykernel.comm.Comm` class has been deprecated:DeprecationWarning"
)
PNG = b"\x89PNG"
OnRun = Callable[[list[dict]], None] | None
Hook = Callable[[int, int, int], None]  # (run, batches done, batches in the run)


@pytest.fixture(scope="module")
def sweeper(tiny_workspace: Workspace) -> Sweeper:
    """A real Sweeper on the miniature stand-in of conftest.py."""
    return Sweeper(tiny_workspace, batch_size=4, device=torch.device("cpu"))


class FakeSweeper:
    """Runs through the batches of every setting as :meth:`Sweeper.run` does, without training.

    A run with a head learning rate of 1 or more diverges at epoch 2, batch 2. ``fail_after``
    raises an error before that run; ``on_batch(run, done, total)`` is called before each
    batch's ``on_progress`` and ``after_batch`` after it; ``before_run(run)`` before each run.
    ``interrupt`` = (run, batch) records that run as interrupted there, as ``fit`` does when
    it catches Ctrl-C, and goes on with the next setting, as :meth:`Sweeper.run` does.
    """

    def __init__(
        self,
        batches: int = 4,
        fail_after: int | None = None,
        on_batch: Hook | None = None,
        after_batch: Hook | None = None,
        before_run: Callable[[int], None] | None = None,
        features_ready: bool = True,
        train_loss: float | None = None,
        interrupt: tuple[int, int] | None = None,
    ) -> None:
        self.calls: list[list[SweepSetting]] = []
        self.batches, self.fail_after, self.train_loss = batches, fail_after, train_loss
        self.on_batch, self.after_batch, self.before_run = on_batch, after_batch, before_run
        self.features_ready, self.interrupt = features_ready, interrupt

    def run(
        self,
        settings: Sequence[SweepSetting],
        on_run: OnRun = None,
        progress: bool = True,
        on_progress: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        first_run: int | None = None,
    ) -> list[dict]:
        self.calls.append(list(settings))
        records: list[dict] = []
        for run, setting in enumerate(settings, first_run or 0):
            if run == self.fail_after:
                raise RuntimeError("CUDA out of memory.\n  Tried to allocate 2 GiB")
            if self.before_run is not None:
                self.before_run(run)
            h = self.train(run, setting, on_progress, should_stop)
            if setting.freeze_body:
                self.features_ready = True
            records += records_of(
                run, setting, h, 0.7 + 0.01 * setting.seed if h.status == "ok" else None
            )
            if on_run is not None:
                on_run(records)
            if h.status == "stopped":
                break
        return records

    def train(self, run: int, setting: SweepSetting, on_progress, should_stop) -> History:
        h = History("", "cpu", "fp32", {})
        total = setting.num_epochs * self.batches
        diverges = setting.learning_rate * setting.head_multiplier >= 1
        for done in range(1, total + 1):
            epoch, batch = (done - 1) // self.batches + 1, (done - 1) % self.batches + 1
            if should_stop is not None and should_stop():
                h.status = "stopped"
                return h
            if (run, done) == self.interrupt:
                h.status = "interrupted"
                return h
            if diverges and (epoch, batch) == (2, 2):
                h.status, h.diverged_at, h.diverged_loss = "diverged", (2, 2), 2e14
                return h
            if self.on_batch is not None:
                self.on_batch(run, done, total)
            if on_progress is not None:
                on_progress(done, total)
            if self.after_batch is not None:
                self.after_batch(run, done, total)
            if batch == self.batches:
                loss = self.train_loss if self.train_loss is not None else 0.7 / epoch
                val = 0.55 + 0.05 * epoch + 0.01 * setting.seed
                h.epochs.append(EpochStats(epoch, loss, 0.6 + 0.05 * epoch, val, 100.0, 0.1))
        return h


class Delegate:
    """A real Sweeper whose ``on_progress`` also calls ``hook(done, total)`` (to click Stop)."""

    def __init__(self, sweeper: Sweeper, hook: Callable[[int, int], None]) -> None:
        self.sweeper, self.hook = sweeper, hook

    @property
    def features_ready(self) -> bool:
        return self.sweeper.features_ready

    def run(
        self,
        settings,
        on_run=None,
        progress=True,
        on_progress=None,
        should_stop=None,
        first_run=None,
    ):
        def both(done: int, total: int) -> None:
            on_progress(done, total)
            self.hook(done, total)

        return self.sweeper.run(settings, on_run, progress, both, should_stop, first_run)


def click_run(panel: SweepPanel) -> None:
    """Click Run and wait for the worker's sweep to end."""
    panel.run_button.click()
    assert panel.wait(timeout=60), "the sweep did not end within 60 s"


def png(image: ipywidgets.Image) -> bytes:
    """An Image widget's bytes (ipywidgets 8 holds a memoryview, 7 bytes)."""
    return bytes(image.value)


def table_rows(panel: SweepPanel) -> list[list[str]]:
    body = panel.table.value.split("<tbody>", 1)[1]
    rows = re.findall(r"<tr>.*?</tr>", body)
    return [re.findall(r"<td(?:\s[^>]*)?>(.*?)</td>", row) for row in rows]


def column(panel: SweepPanel, name: str) -> list[str]:
    header = re.findall(r"<th(?:\s[^>]*)?>(.*?)</th>", panel.table.value)
    return [row[header.index(name)] for row in table_rows(panel)]


def status(panel: SweepPanel) -> str:
    """The status line's text, without its markup."""
    return re.sub(r"<[^>]+>", "", panel.status.value)


def statuses(panel: SweepPanel) -> list[str]:
    return [r["status"] for r in panel.records if r is final(panel, r["run"])]


def final(panel: SweepPanel, run: int) -> dict:
    return [r for r in panel.records if r["run"] == run][-1]


def idle(panel: SweepPanel) -> bool:
    """Run and Clear usable, Stop not: the panel is ready for the next click."""
    return (
        not panel.run_button.disabled
        and not panel.clear_button.disabled
        and panel.stop_button.disabled
    )


@pytest.mark.parametrize("version", [ipywidgets.__version__], ids=[ipywidgets.__version__])
def test_ipywidgets_version(version: str, record_property: Callable) -> None:
    """The test id shows the ipywidgets these tests ran against (7.7.1 on Colab)."""
    record_property("ipywidgets", version)
    print(f"ipywidgets {version}")
    assert version.split(".")[0] in ("7", "8")


def test_every_described_control_has_a_tooltip() -> None:
    """ipywidgets 8 titles a label without a tooltip "null", shown on hovering it; 7.x calls
    the trait description_tooltip."""
    panel = SweepPanel(FakeSweeper())
    described = [w for w in _descendants(panel.widget) if getattr(w, "description", "")]
    controls = [w for w in described if not isinstance(w, ipywidgets.Button)]
    assert len(controls) == 8  # 3 sliders, the multipliers, 3 boxes, the bar
    for control in controls:
        assert getattr(control, TOOLTIP_TRAIT), control.description


def _descendants(widget: ipywidgets.Widget) -> list[ipywidgets.Widget]:
    children = getattr(widget, "children", ())
    return [widget, *(w for child in children for w in _descendants(child))]


def test_controls_and_display(monkeypatch: pytest.MonkeyPatch) -> None:
    panel = SweepPanel(FakeSweeper())
    assert panel.learning_rate.value == pytest.approx(6.4e-3)
    assert panel.learning_rate_readout.value == "6.4e-3"
    assert panel.multipliers.value == (1, 10)
    assert [value for _, value in panel.multipliers.options] == [1, 2, 5, 10, 20, 50, 100]
    assert (panel.epochs.value, panel.epochs.min, panel.epochs.max) == (3, 1, 10)
    assert (panel.seeds.value, panel.seeds.min, panel.seeds.max) == (1, 1, 5)
    assert not panel.freeze_body.value and not panel.init_hotdog_row.value
    assert panel.augment.value
    assert isinstance(panel.widget, ipywidgets.VBox)
    assert isinstance(panel.progress, ipywidgets.FloatProgress)
    labels = [
        panel.learning_rate.description, panel.multipliers.description, panel.epochs.description,
        panel.seeds.description, panel.freeze_body.description, panel.augment.description,
        panel.init_hotdog_row.description, panel.run_button.description,
        panel.stop_button.description, panel.clear_button.description,
    ]  # fmt: skip
    assert labels == [
        "基础学习率 η", "输出层倍数", "迭代周期", "种子数", "冻结主干", "数据增广",
        "用源模型的热狗类初始化输出层", "运行", "停止", "清除",
    ]  # fmt: skip
    assert idle(panel)
    assert panel.records == [] and panel.table.value == "" and png(panel.live_plot) == b""
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda *objs, **kw: shown.extend(objs))
    panel._ipython_display_()
    assert shown == [panel.widget]


def test_freezing_disables_augmentation() -> None:
    fake = FakeSweeper()
    panel = SweepPanel(fake)
    panel.freeze_body.value = True
    assert panel.augment.disabled
    panel.multipliers.value = (1,)
    click_run(panel)
    assert [s.augment for s in fake.calls[0]] == [False]
    panel.freeze_body.value = False
    assert not panel.augment.disabled


def test_real_sweep_trains_shows_results_and_stops(sweeper: Sweeper) -> None:
    panel = SweepPanel(sweeper)
    panel.update_interval = 0.0
    panel.learning_rate.value = 1e-2
    panel.multipliers.value = (10, 1)
    panel.epochs.value = 1
    panel.freeze_body.value = True
    click_run(panel)

    assert "完成：2 次运行，用时" in status(panel), panel.status.value
    assert len(panel.records) == 2 * 1
    assert all(tuple(r) == RECORD_FIELDS for r in panel.records)
    assert [r["head_multiplier"] for r in panel.records] == [1, 10]
    assert all(r["freeze_body"] and r["learning_rate"] == 1e-2 for r in panel.records)
    assert all(r["val_acc"] is not None and r["test_acc"] is not None for r in panel.records)
    assert column(panel, "学习率") == [panel.learning_rate_readout.value] * 2 == ["1.0e-2"] * 2
    assert column(panel, "倍数") == ["1", "10"]
    assert column(panel, "其他") == ["冻结主干", "冻结主干"]
    assert column(panel, "状态") == ["正常", "正常"]
    assert png(panel.summary_plot).startswith(PNG)
    assert png(panel.live_plot).startswith(PNG)
    assert panel.summary_plot.layout.display is None
    assert (panel.progress.value, panel.progress.max) == (2, 2)
    assert re.fullmatch(r"第 2/2 次运行：批量 (\d+)/\1", panel.progress_text.value)
    assert idle(panel)

    # Stop clicked between two batches of a real run, in the worker's thread.
    stopper = Delegate(sweeper, lambda done, total: done == 1 and panel.stop_button.click())
    panel.sweeper = stopper
    panel.freeze_body.value = False
    panel.multipliers.value = (2, 5)
    click_run(panel)
    assert statuses(panel) == ["ok", "ok", "stopped"]  # the second setting never ran
    assert column(panel, "状态") == ["正常", "正常", "已停止"]
    assert "已停止：2 次运行中完成 0 次，第 1 次运行已停止，其余 1 次未运行" in status(panel)
    assert idle(panel)


def test_live_figure_and_progress_update_after_each_run() -> None:
    seen = []
    fake = FakeSweeper()
    panel = SweepPanel(fake)
    fake.before_run = lambda run: seen.append(
        (panel.run_button.disabled, panel.stop_button.disabled, panel.progress.value,
         png(panel.live_plot)[:4])
    )  # fmt: skip
    panel.multipliers.value = (1, 2, 5)
    click_run(panel)
    # Before each run: Run is off and Stop on; the bar and figure show the runs before it.
    assert seen == [(True, False, 0, b""), (True, False, 1, PNG), (True, False, 2, PNG)]
    assert (panel.progress.value, panel.progress.max) == (3, 3)
    assert idle(panel)


def test_progress_moves_per_batch() -> None:
    seen = []
    fake = FakeSweeper(batches=4)
    panel = SweepPanel(fake, epochs=2)
    panel.update_interval = 0.0
    fake.after_batch = lambda run, done, total: seen.append(
        (run, done, panel.progress.value, panel.progress_text.value)
    )
    panel.multipliers.value = (1, 2, 5)
    click_run(panel)
    assert len(seen) == 3 * 8
    assert seen[0] == (0, 1, pytest.approx(1 / 8), "第 1/3 次运行：批量 1/8")
    assert seen[10] == (1, 3, pytest.approx(1 + 3 / 8), "第 2/3 次运行：批量 3/8")
    assert seen[-1] == (2, 8, pytest.approx(3), "第 3/3 次运行：批量 8/8")
    values = [value for _, _, value, _ in seen]
    assert values == sorted(values)


def test_progress_redraws_are_throttled_but_reach_each_runs_end() -> None:
    seen = []
    fake = FakeSweeper(batches=50)
    panel = SweepPanel(fake, epochs=1)
    panel.update_interval = 3600.0
    fake.after_batch = lambda run, done, total: seen.append(panel.progress_text.value)
    panel.multipliers.value = (1, 2)
    click_run(panel)
    assert len(set(seen)) <= 4  # not one redraw per batch
    assert seen[49] == "第 1/2 次运行：批量 50/50" and seen[-1] == "第 2/2 次运行：批量 50/50"


def test_feature_step_is_announced_once() -> None:
    seen = []
    fake = FakeSweeper(features_ready=False)
    panel = SweepPanel(fake)
    fake.before_run = lambda run: seen.append(("before", run, status(panel)))
    fake.after_batch = lambda run, done, total: (
        done == 1 and seen.append(("batch", run, status(panel)))
    )
    panel.freeze_body.value = True
    panel.multipliers.value = (1, 2)
    click_run(panel)
    assert seen[0] == ("before", 0, FEATURES_TEXT)
    assert seen[1][:2] == ("batch", 0) and seen[1][2].startswith("正在训练，共 2 次运行……")
    assert FEATURES_TEXT not in seen[2][2]  # the second frozen run reuses the features
    assert "停止" in seen[1][2]  # the status says how to stop

    # Not for a full fine-tuning run, whose body is trained.
    seen.clear()
    panel = SweepPanel(
        FakeSweeper(features_ready=False, before_run=lambda run: seen.append(status(panel)))
    )
    panel.multipliers.value = (1,)
    click_run(panel)
    assert FEATURES_TEXT not in seen[0]


def test_stop_clicked_from_another_thread_mid_sweep() -> None:
    """Stop's handler runs on the kernel's thread while the worker trains: the flag is a
    threading.Event, read before the next batch."""
    seen = {}

    def click_stop(run: int, done: int, total: int) -> None:
        if (run, done) == (1, 3):
            seen["stop enabled"] = not panel.stop_button.disabled
            thread = threading.Thread(target=panel.stop_button.click)
            thread.start()
            thread.join()
            seen["status"] = status(panel)

    fake = FakeSweeper(on_batch=click_stop)
    panel = SweepPanel(fake)
    panel.multipliers.value = (1, 2, 5)
    click_run(panel)

    assert seen["stop enabled"] and "正在停止" in seen["status"]
    assert sorted({r["run"] for r in panel.records}) == [0, 1]  # the third setting never ran
    assert statuses(panel) == ["ok", "stopped"]
    stopped = final(panel, 1)
    assert (stopped["epoch"], stopped["val_acc"], stopped["test_acc"]) == (1, None, None)
    assert column(panel, "状态") == ["正常", "已停止"]
    assert column(panel, "验证精度")[1] == "—"
    assert "已停止：3 次运行中完成 1 次，第 2 次运行已停止，其余 1 次未运行" in status(panel)
    assert idle(panel)
    assert png(panel.summary_plot).startswith(PNG)

    # The panel works again, and the stopped seed is run again (it never finished).
    fake.on_batch = None
    panel.multipliers.value = (2,)
    click_run(panel)
    assert "完成：1 次运行" in status(panel)
    assert [s.seed for s in fake.calls[-1]] == [0]
    assert statuses(panel) == ["ok", "stopped", "ok"]
    assert column(panel, "种子") == ["1", "1"]  # the stopped run is no seed
    assert column(panel, "状态") == ["正常", "1 次停止"]


def test_stop_clicked_within_a_progress_callback() -> None:
    fake = FakeSweeper()
    panel = SweepPanel(fake)
    fake.after_batch = lambda run, done, total: (run, done) == (0, 2) and panel.stop_button.click()
    panel.multipliers.value = (1, 2)
    click_run(panel)
    assert statuses(panel) == ["stopped"]
    assert "已停止：2 次运行中完成 0 次，第 1 次运行已停止，其余 1 次未运行" in status(panel)
    assert idle(panel)


def test_the_bar_of_a_stopped_sweep_stays_where_it_stopped() -> None:
    """Stopped after batch 2 of the first run's 12: the bar shows 2/12 of a run, not a run
    done, says where, and turns orange; a sweep that ran to its end turns green."""
    fake = FakeSweeper()
    panel = SweepPanel(fake)
    fake.after_batch = lambda run, done, total: (run, done) == (0, 2) and panel.stop_button.click()
    panel.multipliers.value = (1, 2)
    click_run(panel)
    assert panel.progress.value == pytest.approx(2 / 12)
    assert panel.progress_text.value == "第 1/2 次运行：停在批量 2/12"
    assert panel.progress.bar_style == "warning"
    fake.after_batch = None
    click_run(panel)
    assert (panel.progress.value, panel.progress.bar_style) == (2, "success")
    panel.clear_button.click()
    assert (panel.progress.value, panel.progress.bar_style) == (0, "")


def test_the_bar_of_a_failed_sweep_is_red() -> None:
    panel = SweepPanel(FakeSweeper(fail_after=1))
    panel.multipliers.value = (1, 2)
    click_run(panel)
    assert (panel.progress.value, panel.progress.bar_style) == (1, "danger")


def test_stop_click_after_the_sweep_is_ignored() -> None:
    """A Stop click that arrives after the sweep has ended changes nothing."""
    fake = FakeSweeper()
    panel = SweepPanel(fake)
    panel.multipliers.value = (1,)
    click_run(panel)
    done = panel.status.value
    panel.stop_button.click()  # disabled in the front end; a late click is a no-op
    assert panel.status.value == done
    panel.multipliers.value = (2,)
    click_run(panel)
    assert statuses(panel) == ["ok", "ok"]


def test_kernel_interrupt_keeps_earlier_runs_and_records_the_current_one() -> None:
    """Ctrl-C reaches a sweep that runs in a cell (``run()``, on the kernel's main thread)."""

    def interrupt(run: int, done: int, total: int) -> None:
        if (run, done) == (1, 7):
            raise KeyboardInterrupt

    fake = FakeSweeper(on_batch=interrupt)
    panel = SweepPanel(fake, epochs=3)
    panel.multipliers.value = (1, 2, 5)
    panel.run()
    assert statuses(panel) == ["ok", "interrupted"]
    interrupted = final(panel, 1)
    assert interrupted["epoch"] == 2 and interrupted["val_acc"] is None  # in batch 7 of 4 x 3
    assert interrupted["head_multiplier"] == 2
    assert tuple(interrupted) == RECORD_FIELDS
    assert column(panel, "状态") == ["正常", "已中断"]
    assert "已中断：3 次运行中完成 1 次，第 2 次运行已中断，其余 1 次未运行" in status(panel)
    assert idle(panel)
    assert png(panel.summary_plot).startswith(PNG)

    fake.on_batch = None  # usable again; run numbers go on
    panel.multipliers.value = (10,)
    panel.run()
    assert final(panel, 2)["status"] == "ok"


def test_interrupt_caught_by_the_trainer_ends_the_sweep() -> None:
    """``fit`` catches Ctrl-C and returns an "interrupted" History; the sweep must end there."""
    fake = FakeSweeper(interrupt=(0, 6))  # after epoch 1 of run 0
    panel = SweepPanel(fake, epochs=3)
    panel.multipliers.value = (1, 2)
    panel.run()
    assert sorted({r["run"] for r in panel.records}) == [0]
    last = final(panel, 0)
    assert (last["status"], last["epoch"], last["val_acc"]) == ("interrupted", 2, None)
    assert column(panel, "验证精度") == ["—"]
    assert "已中断" in status(panel) and idle(panel)


def test_run_click_while_running_is_ignored() -> None:
    seen = []
    fake = FakeSweeper()
    panel = SweepPanel(fake)
    fake.before_run = lambda run: seen.extend([panel.start(), status(panel)])
    panel.multipliers.value = (1,)
    click_run(panel)
    assert seen == [False, BUSY_TEXT]
    assert len(fake.calls) == 1
    assert len(panel.records) == 3
    assert status(panel).startswith("完成：1 次运行")


def test_two_sweeps_in_a_row_are_each_stopped_by_a_click() -> None:
    """The Run click returns at once; Stop, clicked on the test's thread (the kernel's) while
    the worker trains, ends each sweep after the batch in progress."""
    batches: list[int] = []  # the batches of this sweep's first run
    training = threading.Event()

    def slow_batch(run: int, done: int, total: int) -> None:
        batches.append(done)
        training.set()
        time.sleep(0.005)  # 2 settings x 3 epochs x 100 batches: 3 s if never stopped

    panel = SweepPanel(FakeSweeper(batches=100, on_batch=slow_batch), epochs=3)
    panel.multipliers.value = (1, 2)
    for sweep in range(2):
        training.clear()
        batches.clear()
        begun = time.perf_counter()
        panel.run_button.click()
        assert time.perf_counter() - begun < 0.5  # the handler did not train
        assert training.wait(timeout=5)
        assert panel.run_button.disabled and not panel.stop_button.disabled
        panel.stop_button.click()
        assert panel.wait(timeout=5)
        assert time.perf_counter() - begun < 2.0
        assert statuses(panel) == ["stopped"] * (sweep + 1)
        assert max(batches) < 100, max(batches)  # stopped within its first epoch
        assert status(panel).startswith(
            "已停止：2 次运行中完成 0 次，第 1 次运行已停止，其余 1 次未运行"
        ), status(panel)
        assert "用时 0 秒" not in status(panel)  # a stop within a second says 不到 1 秒
        assert idle(panel)
    assert column(panel, "种子") == ["0"]  # stopped runs are not seeds
    assert column(panel, "状态") == ["2 次停止"]


def test_the_status_advises_what_stops_the_sweep() -> None:
    """Stop always stops a sweep started by the button; in a cell, the kernel's ■ does."""
    seen = []
    panel = SweepPanel(FakeSweeper(before_run=lambda run: seen.append(status(panel))))
    panel.multipliers.value = (1,)
    click_run(panel)
    panel.run()
    assert seen[0] == "正在训练，共 1 次运行……（点「停止」在当前批量之后停止）"
    assert seen[1].endswith("若无反应，请中断内核 ■）")


def test_diverged_run_is_a_result_not_an_error() -> None:
    panel = SweepPanel(FakeSweeper())
    panel.learning_rate.value = 0.1
    panel.multipliers.value = (1, 100)  # head lr 0.1 trains; head lr 10 diverges in epoch 2
    click_run(panel)

    assert "完成：2 次运行，其中 1 次发散，用时" in status(panel)
    assert column(panel, "状态") == ["正常", "发散"]
    assert "在第 2 个迭代周期第 2 个批量发散" in panel.table.value  # the tooltip
    assert column(panel, "验证精度") == ["0.700", "—"]
    assert column(panel, "测试精度") == ["0.700", "—"]
    assert column(panel, "训练损失")[1] == "—"
    assert "nan" not in panel.table.value.lower()
    assert "None" not in panel.table.value
    assert png(panel.summary_plot).startswith(PNG)
    assert panel.records[-1]["test_acc"] is None


def test_huge_loss_is_compact() -> None:
    panel = SweepPanel(FakeSweeper(train_loss=2.0e14))
    panel.multipliers.value = (1,)
    click_run(panel)
    assert column(panel, "训练损失") == ["2.0e+14"]


def test_learning_rates_read_the_same_everywhere() -> None:
    panel = SweepPanel(FakeSweeper())
    panel.learning_rate.value = 1e-3
    assert panel.learning_rate_readout.value == "1.0e-3" == format_lr(panel.learning_rate.value)
    panel.multipliers.value = (10,)
    click_run(panel)
    assert column(panel, "学习率") == [panel.learning_rate_readout.value]
    (live,) = live_figure(panel.records).axes
    assert [t.get_text() for t in live.get_legend().get_texts()] == ["运行 0：输出层学习率 1.0e-2"]
    (summary,) = summary_figure(panel.records).axes
    assert summary.get_legend().get_texts()[0].get_text().startswith("基础学习率 1.0e-3，")


def test_one_epoch_axis_has_integer_ticks() -> None:
    panel = SweepPanel(FakeSweeper(), epochs=1)
    panel.multipliers.value = (1, 2)
    click_run(panel)
    fig = live_figure(panel.records)
    fig.draw_without_rendering()
    (ax,) = fig.axes
    low, high = ax.get_xlim()
    labels = [t.label1.get_text() for t in ax.xaxis.get_major_ticks() if low <= t.get_loc() <= high]
    assert labels == ["1"]


def test_seeds_add_repeats_and_aggregate() -> None:
    fake = FakeSweeper()
    panel = SweepPanel(fake, seeds=2)
    panel.multipliers.value = (1,)
    click_run(panel)
    assert [s.seed for s in fake.calls[-1]] == [0, 1]
    assert column(panel, "种子") == ["2"]
    assert column(panel, "验证精度") == [
        '0.705<br><span style="font-size:85%;color:#666">0.700–0.710</span>'
    ]
    # Another click on the same setting adds new seeds; another setting starts from seed 0.
    panel.seeds.value = 1
    panel.multipliers.value = (1, 2)
    click_run(panel)
    assert [(s.head_multiplier, s.seed) for s in fake.calls[-1]] == [(1, 2), (2, 0)]
    assert column(panel, "种子") == ["3", "1"]
    assert [r["run"] for r in panel.records if r["epoch"] == 1] == [0, 1, 2, 3]


def test_empty_selection_is_a_message_cleared_by_a_change() -> None:
    fake = FakeSweeper()
    panel = SweepPanel(fake)
    panel.multipliers.value = (1,)
    click_run(panel)
    before = ([dict(r) for r in panel.records], panel.table.value, png(panel.summary_plot))

    panel.multipliers.value = ()
    click_run(panel)
    assert status(panel) == "请至少选择一个输出层倍数。"
    assert "Error" not in panel.status.value and "Traceback" not in panel.status.value
    assert len(fake.calls) == 1  # no second sweep
    assert (panel.records, panel.table.value, png(panel.summary_plot)) == before
    assert idle(panel)
    panel.multipliers.value = (2,)  # fixing the input clears the error
    assert panel.status.value == ""


def test_bad_setting_is_a_message() -> None:
    fake = FakeSweeper()
    panel = SweepPanel(fake, multipliers=(1, 2))
    panel.multipliers.options = [("0", 0), ("1", 1)]  # a bad option set after construction
    panel.multipliers.value = (0, 1)
    click_run(panel)
    assert status(panel) == "出错：head_multiplier must be a positive finite number, got 0."
    assert fake.calls == [] and panel.records == []
    assert idle(panel)


def test_sweeper_error_is_a_message_and_keeps_finished_runs() -> None:
    fake = FakeSweeper(fail_after=1)
    panel = SweepPanel(fake)
    panel.multipliers.value = (1, 10)
    click_run(panel)
    message = "出错：CUDA out of memory. Tried to allocate 2 GiB（2 次运行中已完成 1 次）"
    assert status(panel) == message  # on one line, without the exception's class name
    assert "RuntimeError" not in panel.status.value and "\n" not in panel.status.value
    assert idle(panel)
    assert {r["run"] for r in panel.records} == {0}  # the run finished before the error
    assert column(panel, "倍数") == ["1"]
    assert png(panel.summary_plot).startswith(PNG)
    assert panel.progress.value == 1

    fake.fail_after = None  # the next successful run replaces the error
    click_run(panel)
    assert status(panel).startswith("完成：2 次运行")


def test_accumulate_and_clear() -> None:
    panel = SweepPanel(FakeSweeper())
    panel.multipliers.value = (1, 2)
    click_run(panel)
    first_summary = png(panel.summary_plot)
    panel.multipliers.value = (5,)
    panel.epochs.value = 2
    panel.init_hotdog_row.value = True
    click_run(panel)
    assert [r["run"] for r in panel.records] == [0, 0, 0, 1, 1, 1, 2, 2]
    assert column(panel, "周期") == ["3", "3", "2"]
    assert column(panel, "其他") == ["—", "—", "热狗类初始化"]
    assert png(panel.summary_plot) != first_summary

    panel.clear_button.click()
    assert panel.records == []
    assert panel.table.value == panel.status.value == panel.progress_text.value == ""
    assert png(panel.summary_plot) == png(panel.live_plot) == b""
    assert panel.summary_plot.layout.display == "none"
    assert panel.progress.value == 0
    click_run(panel)  # after Clear, run numbers and seeds start again from 0
    assert {r["run"] for r in panel.records} == {0}
    assert panel.records[0]["seed"] == 0


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"multipliers": (0, 1)}, "multipliers"),
        ({"multipliers": (1, float("nan"))}, "multipliers"),
        ({"multipliers": (1, float("inf"))}, "multipliers"),
        ({"multipliers": ()}, "multipliers"),
        ({"learning_rate": float("nan")}, "learning_rate"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"learning_rate": 100.0}, "learning_rate"),  # the slider would clamp it to 10
        ({"epochs": 0}, "epochs"),
        ({"epochs": 11}, "epochs"),  # the slider would clamp it to 10
        ({"epochs": 2.5}, "epochs"),
        ({"seeds": 0}, "seeds"),
        ({"seeds": 6}, "seeds"),
        ({"dpi": 0}, "dpi"),
    ],
)
def test_bad_panel_values_are_refused_at_construction(kwargs: dict, word: str) -> None:
    with pytest.raises(ValueError, match=word):
        SweepPanel(FakeSweeper(), **kwargs)


def test_figures_are_labelled_in_chinese() -> None:
    panel = SweepPanel(FakeSweeper())
    panel.learning_rate.value = 0.1
    panel.multipliers.value = (1, 100)  # the second run diverges
    panel.freeze_body.value = True
    click_run(panel)

    (live,) = live_figure(panel.records).axes
    assert (live.get_xlabel(), live.get_ylabel()) == ("迭代周期", "验证精度")
    assert [t.get_text() for t in live.get_legend().get_texts()] == [
        "运行 0：输出层学习率 1.0e-1，冻结主干", "运行 1：输出层学习率 1.0e+1，冻结主干",
        "发散（无精度）",
    ]  # fmt: skip
    (summary,) = summary_figure(panel.records).axes
    assert summary.get_xlabel() == "输出层学习率（基础学习率 × 倍数）"
    assert summary.get_ylabel() == "最终验证精度"
    assert summary.get_title() == "各设置的最终验证精度"
    assert [t.get_text() for t in summary.get_legend().get_texts()] == [
        "基础学习率 1.0e-1，3 个迭代周期，冻结主干", "发散（无精度）",
    ]  # fmt: skip


def test_a_failing_figure_leaves_the_panel_usable(monkeypatch: pytest.MonkeyPatch) -> None:
    panel = SweepPanel(FakeSweeper())
    panel.multipliers.value = (1,)
    monkeypatch.setattr(panel, "_show_results", lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        panel.run()
    assert idle(panel) and status(panel).startswith("完成：1 次运行")
