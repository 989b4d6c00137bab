# ruff: noqa: RUF001  (Chinese text uses full-width punctuation on purpose)
"""The sweep's figures and tables from made-up records: seeds aggregated, failures marked and
counted, numbers formatted one way, integer epoch ticks, every glyph in the shipped font."""

from __future__ import annotations

import html
import logging
import re
import warnings
from collections.abc import Callable
from io import BytesIO

import pytest
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_rgba
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure
from matplotlib.text import Text

from d2lhelpers.book import fonts
from d2lhelpers.book.sweep_plots import (
    STRIP,
    format_acc,
    format_loss,
    format_lr,
    live_figure,
    results_table,
    summary_figure,
)
from d2lhelpers.sweep import SweepSetting, records_of
from d2lhelpers.train import EpochStats, History


def history(
    setting: SweepSetting,
    diverge_at: int | None = None,
    status: str = "ok",
    loss: float | None = None,
) -> History:
    """Full epochs (val acc rising, 0.01 higher per seed), or the ones before ``diverge_at``;
    ``status`` "stopped" or "interrupted" ends it after its first epoch."""
    h = History("", "cpu", "fp32", {})
    last = setting.num_epochs if diverge_at is None else diverge_at - 1
    last = 1 if status != "ok" else last
    for e in range(1, last + 1):
        val = 0.55 + 0.05 * e + 0.01 * setting.seed
        h.epochs.append(EpochStats(e, loss or 0.7 / e, 0.6 + 0.05 * e, val, 100.0, 0.1))
    if diverge_at is not None:
        h.status, h.diverged_at, h.diverged_loss = "diverged", (diverge_at, 2), 2e14
    h.status = status if status != "ok" else h.status
    return h


def sweep(
    specs: list[tuple[SweepSetting, dict]],
) -> list[dict]:
    """Records of runs ``(setting, history kwargs)``, numbered in order."""
    records = []
    for run, (setting, kwargs) in enumerate(specs):
        h = history(setting, **kwargs)
        test = 0.7 + 0.01 * setting.seed if h.status == "ok" else None
        records += records_of(run, setting, h, test)
    return records


def seeded(lr: float = 0.01, multiplier: float = 10, epochs: int = 3, **kw) -> list[dict]:
    """Three seeds of one setting."""
    return sweep([(SweepSetting(lr, multiplier, epochs, seed=s, **kw), {}) for s in range(3)])


def mixed() -> list[dict]:
    """Three settings: three good seeds; two seeds one of which diverged; one stopped run."""
    good = [(SweepSetting(0.01, 1, 3, seed=s), {}) for s in range(3)]
    risky = [
        (SweepSetting(0.01, 100, 3, seed=0), {"diverge_at": 2}),
        (SweepSetting(0.01, 100, 3, seed=1), {}),
    ]
    stopped = [(SweepSetting(0.01, 10, 3, freeze_body=True), {"status": "stopped"})]
    return sweep(good + risky + stopped)


def cells(table: str) -> list[list[str]]:
    body = table.split("<tbody>", 1)[1]
    return [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr>.*?</tr>", body)]


def headers(table: str) -> list[str]:
    return re.findall(r"<th(?:\s[^>]*)?>(.*?)</th>", table)


def text(cell: str) -> list[str]:
    """A cell's lines of text, without markup."""
    return [html.unescape(re.sub(r"<[^>]+>", "", line)) for line in cell.split("<br>")]


def width_px(line: str) -> float:
    """A rough width at the table's 90 % of 16 px: a CJK character 1 em, others 0.55 em."""
    em = 16 * 0.9
    return sum(em if ord(c) > 0x2E7F else 0.55 * em for c in line)


def test_number_formats() -> None:
    assert [format_lr(v) for v in (6.4e-3, 1e-3, 1e-4, 0.05, 1.0, 10.0)] == [
        "6.4e-3", "1.0e-3", "1.0e-4", "5.0e-2", "1.0e+0", "1.0e+1",
    ]  # fmt: skip
    assert [format_acc(v) for v in (0.7, 1, 0.12345)] == ["0.700", "1.000", "0.123"]
    assert [format_loss(v) for v in (0.693, 12.5, 999.0, 1e3, 2.0e14)] == [
        "0.693", "12.500", "999.000", "1.0e+3", "2.0e+14",
    ]  # fmt: skip
    for missing in (None, float("nan"), float("inf")):
        assert format_lr(missing) == format_acc(missing) == format_loss(missing) == "—"


def test_results_table_aggregates_seeds_and_counts_failures() -> None:
    table = results_table(mixed())
    assert headers(table) == [
        "学习率", "倍数", "周期", "其他", "种子", "训练损失", "验证精度", "测试精度", "状态",
    ]  # fmt: skip
    rows = [[text(c) for c in row] for row in cells(table)]
    assert len(rows) == 3  # one per setting
    good, risky, stopped = rows
    assert good[:6] == [["1.0e-2"], ["1"], ["3"], ["—"], ["3"], ["0.233"]]
    assert good[6] == ["0.710", "0.700–0.720"]  # the mean, then the range
    assert good[7] == ["0.710", "0.700–0.720"]
    assert good[8] == ["正常"]
    assert risky[4] == ["2"] and risky[6] == ["0.710"]  # one seed left: no range
    assert risky[8] == ["1 次发散"]
    assert stopped[3] == ["冻结主干"] and stopped[6:] == [["—"], ["—"], ["已停止"]]
    assert stopped[4] == ["0"]  # a stopped run is no seed
    assert 'title="种子 0：在第 2 个迭代周期第 2 个批量发散（损失 2e+14）；种子 1：正常"' in table
    assert "None" not in table and "nan" not in table.lower()


def test_results_table_fits_the_text_column() -> None:
    records = sweep(
        [
            (SweepSetting(6.4e-3, 100, 10, init_hotdog_row=True, seed=s), {"loss": 2.0e14})
            for s in range(3)
        ]
        + [(SweepSetting(6.4e-3, 50, 10, freeze_body=True, init_hotdog_row=True), {})]
        + [
            (SweepSetting(6.4e-3, 20, 10, augment=False, seed=s), {"status": "interrupted"})
            for s in range(2)
        ]
        + [(SweepSetting(6.4e-3, 10, 10, seed=0), {"diverge_at": 3})]
        + [(SweepSetting(6.4e-3, 10, 10, seed=1), {"status": "stopped"})]
    )
    table = results_table(records)
    assert "2.0e+14" in table
    columns = list(zip(*[[text(c) for c in row] for row in cells(table)], strict=True))
    padding = 12
    total = sum(
        max(width_px(line) for cell in [[h], *col] for line in cell) + padding
        for h, col in zip(headers(table), columns, strict=True)
    )
    assert total < 700, total
    assert text(cells(table)[-1][-1]) == ["1 次发散", "1 次停止"]  # one kind a line
    assert text(cells(table)[1][3]) == ["冻结主干", "热狗类初始化"]
    assert [text(c)[0] for c in cells(table)[2]][-1] == "2 次中断"


def test_an_interrupted_run_is_never_read_as_a_result() -> None:
    """``records_of`` ends an interrupted run with a record without numbers."""
    records = sweep([(SweepSetting(0.01, 10, 3), {"status": "interrupted"})])
    assert (records[-1]["epoch"], records[-1]["val_acc"], records[-1]["status"]) == (
        2, None, "interrupted",
    )  # fmt: skip
    assert [text(c)[0] for c in cells(results_table(records))[0]][6:] == ["—", "—", "已中断"]


def test_single_seed_figures_look_as_before() -> None:
    records = sweep([(SweepSetting(0.01, m, 3), {}) for m in (1, 10)])
    (live,) = live_figure(records).axes
    assert [t.get_text() for t in live.get_legend().get_texts()] == [
        "运行 0：输出层学习率 1.0e-2", "运行 1：输出层学习率 1.0e-1",
    ]  # fmt: skip
    assert not live.findobj(PolyCollection)  # no band
    (summary,) = summary_figure(records).axes
    (bars,) = [c for c in summary.containers if isinstance(c, ErrorbarContainer)]
    line, _, (segments,) = bars
    assert list(line.get_xdata()) == pytest.approx([0.01, 0.1])
    assert all(abs(s[0][1] - s[1][1]) < 1e-12 for s in segments.get_segments())  # no range


def test_several_seeds_draw_the_mean_and_range() -> None:
    records = mixed()
    (live,) = live_figure(records).axes
    labels = [t.get_text() for t in live.get_legend().get_texts()]
    assert labels[:2] == [
        "输出层学习率 1.0e-2（3 个种子的平均）", "输出层学习率 1.0e+0（2 个种子的平均）",
    ]  # fmt: skip
    assert "运行 5：输出层学习率 1.0e-1，冻结主干" in labels
    assert {"发散（无精度）", "已停止（无精度）"} <= set(labels)
    mean = live.get_lines()[0]
    assert list(mean.get_ydata()) == pytest.approx([0.61, 0.66, 0.71])
    assert live.findobj(PolyCollection)  # the band

    (summary,) = summary_figure(records).axes
    assert summary.get_title() == "各设置的最终验证精度（种子的平均与范围）"
    (bars,) = [c for c in summary.containers if isinstance(c, ErrorbarContainer)]
    line, _, (segments,) = bars
    assert list(line.get_xdata()) == pytest.approx([0.01, 1.0])  # the stopped one has no number
    assert list(line.get_ydata()) == pytest.approx([0.71, 0.71])  # seed 1 alone at 100
    low_high = [sorted((s[0][1], s[1][1])) for s in segments.get_segments()]
    assert low_high[0] == pytest.approx([0.70, 0.72])
    labels = [t.get_text() for t in summary.get_legend().get_texts()]
    assert labels == ["基础学习率 1.0e-2，3 个迭代周期", "发散（无精度）", "已停止（无精度）"]


@pytest.mark.parametrize("epochs", [1, 2, 10])
def test_epoch_axis_has_integer_ticks(epochs: int) -> None:
    for records in (sweep([(SweepSetting(0.01, 10, epochs), {})]), seeded(epochs=epochs)):
        fig = live_figure(records)
        fig.draw_without_rendering()
        (ax,) = fig.axes
        low, high = ax.get_xlim()
        assert (low, high) == (0.5, epochs + 0.5)
        labels = [t.label1.get_text() for t in ax.xaxis.get_major_ticks()
                  if low <= t.get_loc() <= high]  # fmt: skip
        assert labels and all(re.fullmatch(r"\d+", label) for label in labels), labels
        assert str(epochs) in labels or epochs > 2


FIGURES: dict[str, Callable[[], Figure]] = {
    "live_seeds": lambda: live_figure(mixed()),
    "summary_seeds": lambda: summary_figure(mixed()),
    "live_interrupted": lambda: live_figure(
        sweep([(SweepSetting(0.01, 10, 3), {"status": "interrupted"})])
    ),
    "summary_interrupted": lambda: summary_figure(
        sweep(
            [
                (
                    SweepSetting(0.01, 10, 3, augment=False, init_hotdog_row=True),
                    {"status": "interrupted"},
                )
            ]
        )
    ),
}


@pytest.mark.parametrize("name", FIGURES)
def test_figures_render_every_glyph_in_the_shipped_font(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """As tests/test_fonts.py checks the other figures: a missing glyph warns, and fails here."""
    with warnings.catch_warnings(), caplog.at_level(logging.WARNING, logger="matplotlib"):
        warnings.simplefilter("error")
        warnings.simplefilter("default", DeprecationWarning)
        fig = FIGURES[name]()
        fig.savefig(BytesIO(), format="png", dpi=40)
    assert [r for r in caplog.records if r.name.startswith("matplotlib.font_manager")] == []
    chinese = [
        t for t in fig.findobj(Text) if re.search(r"[\u3000-\u9fff\uff00-\uffef]", t.get_text())
    ]
    assert chinese and {t.get_fontfamily()[0] for t in chinese} == {fonts.FAMILY}


def test_summary_over_the_body_rate_draws_a_line_along_eta_and_marks_divergence_apart() -> None:
    """Exercise 1's figure: x is the body's rate η (the head at 10 η), a diverged run is marked
    in the grey strip below 0, never drawn as an accuracy of 0."""
    specs = [(SweepSetting(lr, 10, 3, seed=0), {}) for lr in (0.001, 0.01, 0.1)]
    specs.append((SweepSetting(1.0, 10, 3, seed=0), {"diverge_at": 1}))
    (ax,) = summary_figure(sweep(specs), x="learning_rate").axes
    line = next(c for c in ax.containers if isinstance(c, ErrorbarContainer))
    assert list(line.lines[0].get_xdata()) == [0.001, 0.01, 0.1]
    assert ax.get_xlabel().startswith("基础学习率 η")
    (marker,) = [m for m in ax.lines if list(m.get_xdata()) == [1.0]]
    assert marker.get_ydata()[0] < 0 < ax.get_yticks()[1]
    assert "无精度" in [t.get_text() for t in ax.texts]
    with pytest.raises(ValueError, match="x must be one of"):
        summary_figure(sweep(specs), x="seed")


def test_the_mean_counts_only_seeds_with_an_accuracy() -> None:
    """Seen in the classic Notebook: a sweep stopped in its first epoch was drawn as
    "2 seeds averaged" with no run finished. A seed that diverged before its first epoch's end
    adds no accuracy, so it is not counted; with none left, the setting names no line."""
    one = sweep(
        [
            (SweepSetting(0.01, 10, 3, seed=0), {}),
            (SweepSetting(0.01, 10, 3, seed=1), {"diverge_at": 1}),
        ]
    )
    (ax,) = live_figure(one).axes
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "输出层学习率 1.0e-1（1 个种子的平均）" in labels
    none = sweep([(SweepSetting(0.01, 10, 3, seed=s), {"diverge_at": 1}) for s in range(2)])
    (ax,) = live_figure(none).axes
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert not any("个种子的平均" in label for label in labels), labels
    assert "发散（无精度）" in labels


def test_runs_without_an_accuracy_are_marked_in_the_strip_apart_by_kind() -> None:
    """A diverged and a stopped run at the same epoch: both in the grey strip below 0 (never at
    an accuracy of 0), the two kinds at different heights."""
    records = sweep(
        [
            (SweepSetting(0.01, 100, 3, seed=0), {"diverge_at": 2}),
            (SweepSetting(0.01, 10, 3, seed=0), {"status": "stopped"}),
        ]
    )
    for fig in (live_figure(records), summary_figure(records)):
        (ax,) = fig.axes
        marks = {
            line.get_label(): line.get_ydata()[0]
            for line in ax.lines
            if line.get_linestyle() == "None"
        }
        assert set(marks) == {"发散（无精度）", "已停止（无精度）"}
        assert all(STRIP[0] < y < STRIP[1] < 0 for y in marks.values()), marks
        assert len(set(marks.values())) == 2
        assert ax.get_ylim()[0] <= STRIP[0]


@pytest.mark.parametrize("count", [11, 25])
def test_past_ten_settings_colours_stay_apart_and_the_legend_holds(count: int) -> None:
    specs = [(SweepSetting(0.001 * (i + 1), 10, 2), {}) for i in range(count - 1)]
    records = sweep([*specs, (SweepSetting(1.0, 10, 2), {"diverge_at": 2})])
    by_epochs = sweep([(SweepSetting(0.01, 10, e), {}) for e in range(1, count + 1)])
    for fig in (live_figure(records), summary_figure(by_epochs)):
        (ax,) = fig.axes
        drawn = [line for line in ax.lines if line.get_linestyle() != "None"]
        assert len({to_rgba(line.get_color()) for line in drawn}) == count
        (legend,) = fig.legends  # under the axes, not inside them
        assert ax.get_legend() is None
        fig.draw_without_rendering()
        box, page = legend.get_window_extent(), fig.bbox
        assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0, (box, page)
        assert box.y1 <= ax.get_window_extent().y0  # below the axes
    texts = [t.get_text() for t in live_figure(records).legends[0].get_texts()]
    assert len(texts) == count + 1 and texts[-1] == "发散（无精度）"  # failures last
