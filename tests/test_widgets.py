# ruff: noqa: RUF001  (Chinese text uses full-width punctuation on purpose)
"""The sweep panel: real tiny sweeps through its controls, and fake sweepers for the edge cases.

ipywidgets only logs an exception raised in an ``on_click`` handler, so these tests assert on
the panel's state after a click, never on "no exception". They also run against ipywidgets
7.7.1 (Colab's): ``bash scripts/ipywidgets7_env.sh DIR`` then ``PYTHONPATH=DIR pytest ...``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import ipywidgets
import pytest
import torch

from d2lhelpers.sweep import RECORD_FIELDS, Sweeper, SweepSetting, records_of
from d2lhelpers.sweep_plots import live_figure, summary_figure
from d2lhelpers.train import EpochStats, History
from d2lhelpers.widgets import SweepPanel
from d2lhelpers.workspace import Workspace

# ipywidgets 7 opens its comms through ipykernel's deprecated Comm class.
pytestmark = pytest.mark.filterwarnings(
    "ignore:The `ipykernel.comm.Comm` class has been deprecated:DeprecationWarning"
)
PNG = b"\x89PNG"
OnRun = Callable[[list[dict]], None] | None


@pytest.fixture(scope="module")
def sweeper(tiny_workspace: Workspace) -> Sweeper:
    """A real Sweeper on the miniature stand-in of conftest.py."""
    return Sweeper(tiny_workspace, batch_size=4, device=torch.device("cpu"))


def history(setting: SweepSetting, diverge_at: int | None = None) -> History:
    """A made-up History: full epochs, or the ones before ``diverge_at``, then diverged."""
    h = History("", "cpu", "fp32", {})
    last = setting.num_epochs if diverge_at is None else diverge_at - 1
    for e in range(1, last + 1):
        h.epochs.append(EpochStats(e, 0.7 / e, 0.6 + 0.05 * e, 0.55 + 0.05 * e, 100.0, 0.1))
    if diverge_at is not None:
        h.status, h.diverged_at = "diverged", (diverge_at, 2)
    return h


class FakeSweeper:
    """Records made by ``records_of`` without training; runs with head lr >= 1 diverge."""

    def __init__(self, fail_after: int | None = None, during: Callable | None = None) -> None:
        self.calls: list[list[SweepSetting]] = []
        self.fail_after, self.during = fail_after, during

    def run(
        self, settings: Sequence[SweepSetting], on_run: OnRun = None, progress: bool = True
    ) -> list[dict]:
        self.calls.append(list(settings))
        records: list[dict] = []
        for run, setting in enumerate(settings):
            if run == self.fail_after:
                raise RuntimeError("CUDA out of memory.\n  Tried to allocate 2 GiB")
            lr = setting.learning_rate * setting.head_multiplier
            records += records_of(run, setting, history(setting, 2 if lr >= 1 else None))
            if self.during is not None:
                self.during()
            if on_run is not None:
                on_run(records)
        return records


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


@pytest.mark.parametrize("version", [ipywidgets.__version__], ids=[ipywidgets.__version__])
def test_ipywidgets_version(version: str, record_property: Callable) -> None:
    """The test id shows the ipywidgets these tests ran against (7.7.1 on Colab)."""
    record_property("ipywidgets", version)
    print(f"ipywidgets {version}")
    assert version.split(".")[0] in ("7", "8")


def test_controls_and_display(monkeypatch: pytest.MonkeyPatch) -> None:
    panel = SweepPanel(FakeSweeper())
    assert panel.learning_rate.value == pytest.approx(6.4e-3)
    assert panel.multipliers.value == (1, 10)
    assert [value for _, value in panel.multipliers.options] == [1, 2, 5, 10, 20, 50, 100]
    assert (panel.epochs.value, panel.epochs.min, panel.epochs.max) == (3, 1, 10)
    assert not panel.freeze_body.value and not panel.init_hotdog_row.value
    assert isinstance(panel.widget, ipywidgets.VBox)
    labels = [
        panel.learning_rate.description, panel.multipliers.description, panel.epochs.description,
        panel.freeze_body.description, panel.init_hotdog_row.description,
        panel.run_button.description, panel.clear_button.description,
    ]  # fmt: skip
    assert labels == [
        "基础学习率 η", "输出层倍数", "迭代周期", "冻结主干", "用源模型的热狗类初始化输出层",
        "运行", "清除",
    ]  # fmt: skip
    assert panel.records == [] and panel.table.value == "" and png(panel.live_plot) == b""
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda *objs, **kw: shown.extend(objs))
    panel._ipython_display_()
    assert shown == [panel.widget]


def test_run_trains_and_shows_results(sweeper: Sweeper) -> None:
    panel = SweepPanel(sweeper)
    panel.learning_rate.value = 1e-2
    panel.multipliers.value = (10, 1)
    panel.epochs.value = 1
    panel.freeze_body.value = True
    panel.run_button.click()

    assert "完成：2 次运行，用时" in panel.status.value, panel.status.value
    assert len(panel.records) == 2 * 1
    assert all(tuple(r) == RECORD_FIELDS for r in panel.records)
    assert [r["head_multiplier"] for r in panel.records] == [1, 10]
    assert all(r["freeze_body"] and r["learning_rate"] == 1e-2 for r in panel.records)
    assert column(panel, "运行") == ["0", "1"]
    assert column(panel, "倍数") == ["1", "10"]
    assert column(panel, "输出层学习率") == ["1.0e-02", "1.0e-01"]
    assert column(panel, "冻结主干") == ["是", "是"]
    assert column(panel, "状态") == ["正常", "正常"]
    assert png(panel.summary_plot).startswith(PNG)
    assert png(panel.live_plot).startswith(PNG)
    assert panel.summary_plot.layout.display is None
    assert (panel.progress.value, panel.progress.max) == (2, 2)
    assert not panel.run_button.disabled

    # A second click adds its runs, numbered on from the first click's.
    first_summary = png(panel.summary_plot)
    panel.multipliers.value = (2,)
    panel.epochs.value = 2
    panel.freeze_body.value = False
    panel.init_hotdog_row.value = True
    panel.run_button.click()
    assert len(panel.records) == 2 * 1 + 1 * 2
    assert [r["run"] for r in panel.records] == [0, 1, 2, 2]
    assert column(panel, "运行") == ["0", "1", "2"]
    assert column(panel, "热狗类初始化") == ["否", "否", "是"]
    assert column(panel, "迭代周期") == ["1", "1", "2"]
    assert (panel.progress.value, panel.progress.max) == (1, 1)
    assert png(panel.summary_plot).startswith(PNG)
    assert png(panel.summary_plot) != first_summary

    panel.clear_button.click()
    assert panel.records == []
    assert panel.table.value == panel.status.value == ""
    assert png(panel.summary_plot) == png(panel.live_plot) == b""
    assert panel.summary_plot.layout.display == "none"
    assert panel.progress.value == 0

    # After Clear, run numbers start again from 0.
    panel.multipliers.value = (5,)
    panel.epochs.value = 1
    panel.freeze_body.value = True
    panel.run_button.click()
    assert [r["run"] for r in panel.records] == [0]


def test_live_figure_and_progress_update_after_each_run() -> None:
    seen = []
    fake = FakeSweeper()
    panel = SweepPanel(fake)
    fake.during = lambda: seen.append(
        (panel.run_button.disabled, panel.progress.value, png(panel.live_plot)[:4])
    )
    panel.multipliers.value = (1, 2, 5)
    panel.run_button.click()
    # Before each run's on_run: the button is off; the bar and figure show the runs before it.
    assert seen == [(True, 0, b""), (True, 1, PNG), (True, 2, PNG)]
    assert (panel.progress.value, panel.progress.max) == (3, 3)
    assert not panel.run_button.disabled


def test_run_click_while_running_is_ignored() -> None:
    fake = FakeSweeper()
    panel = SweepPanel(fake)
    fake.during = panel.run_button.click
    panel.multipliers.value = (1,)
    panel.run_button.click()
    assert len(fake.calls) == 1
    assert len(panel.records) == 3


def test_diverged_run_is_a_result_not_an_error() -> None:
    panel = SweepPanel(FakeSweeper())
    panel.learning_rate.value = 0.1
    panel.multipliers.value = (1, 100)  # head lr 0.1 trains; head lr 10 diverges in epoch 2
    panel.run_button.click()

    assert "完成：2 次运行，其中 1 次发散，用时" in panel.status.value
    assert column(panel, "状态") == ["正常", "在第 2 个迭代周期第 2 个批量发散"]
    assert column(panel, "测试精度") == ["0.700", "—"]
    assert column(panel, "训练损失")[1] == "—"
    assert "nan" not in panel.table.value.lower()
    assert "None" not in panel.table.value
    assert png(panel.summary_plot).startswith(PNG)
    assert panel.records[-1]["test_acc"] is None


def test_empty_selection_is_a_message() -> None:
    fake = FakeSweeper()
    panel = SweepPanel(fake)
    panel.multipliers.value = (1,)
    panel.run_button.click()
    before = ([dict(r) for r in panel.records], panel.table.value, png(panel.summary_plot))

    panel.multipliers.value = ()
    panel.run_button.click()
    assert "ValueError: select at least one head multiplier" in panel.status.value
    assert "Traceback" not in panel.status.value
    assert len(fake.calls) == 1  # no second sweep
    assert (panel.records, panel.table.value, png(panel.summary_plot)) == before
    assert not panel.run_button.disabled


def test_bad_setting_is_a_message() -> None:
    fake = FakeSweeper()
    panel = SweepPanel(fake, multipliers=(1, 2))
    panel.multipliers.options = [("0", 0), ("1", 1)]  # a bad option set after construction
    panel.multipliers.value = (0, 1)
    panel.run_button.click()
    assert "ValueError: head_multiplier must be a positive finite number, got 0." in (
        panel.status.value
    )
    assert fake.calls == [] and panel.records == []
    assert not panel.run_button.disabled


def test_sweeper_error_is_a_message_and_keeps_finished_runs() -> None:
    panel = SweepPanel(FakeSweeper(fail_after=1))
    panel.multipliers.value = (1, 10)
    panel.run_button.click()
    message = "RuntimeError: CUDA out of memory. Tried to allocate 2 GiB（2 次运行中已完成 1 次）"
    assert message in panel.status.value  # on one line
    assert "\n" not in panel.status.value
    assert not panel.run_button.disabled
    assert {r["run"] for r in panel.records} == {0}  # the run finished before the error
    assert column(panel, "倍数") == ["1"]
    assert png(panel.summary_plot).startswith(PNG)
    assert panel.progress.value == 1


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
    panel.run_button.click()

    (live,) = live_figure(panel.records).axes
    assert (live.get_xlabel(), live.get_ylabel()) == ("迭代周期", "测试精度")
    assert [t.get_text() for t in live.get_legend().get_texts()] == [
        "运行 0：输出层学习率 1.0e-01，冻结主干", "运行 1：输出层学习率 1.0e+01，冻结主干", "发散",
    ]  # fmt: skip
    (summary,) = summary_figure(panel.records).axes
    assert summary.get_xlabel() == "输出层学习率（基础学习率 × 倍数）"
    assert summary.get_title() == "各次运行的最终测试精度"
    assert [t.get_text() for t in summary.get_legend().get_texts()] == [
        "基础学习率 1.0e-01，3 个迭代周期，冻结主干", "发散（无精度）",
    ]  # fmt: skip


def test_status_while_training() -> None:
    seen = []
    fake = FakeSweeper()
    panel = SweepPanel(fake)
    fake.during = lambda: seen.append(panel.status.value)
    panel.multipliers.value = (1, 2)
    panel.run_button.click()
    assert len(seen) == 2 and all("正在训练，共 2 次运行……" in s for s in seen)
    assert "完成：2 次运行，用时" in panel.status.value
