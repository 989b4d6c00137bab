# ruff: noqa: RUF001  (Chinese text uses full-width punctuation on purpose)
"""The range test's figure from a made-up RangeTest: labels, log axis, the suggestion's line at
its rate, the reference line, every glyph in the shipped font."""

from __future__ import annotations

import logging
import warnings
from io import BytesIO

import pytest
from matplotlib.text import Text

from d2lhelpers.book import fonts
from d2lhelpers.book.lr_plots import plot_range_test, suggestion_label
from d2lhelpers.lr_range import RangeTest

RATES = [1e-4 * 10 ** (i / 10) for i in range(41)]  # 1e-4 to 1
LOSSES = [0.7 - 0.5 * (i / 30) if i <= 30 else 0.2 + 0.3 * (i - 30) for i in range(41)]


def found(minimum: int = 30) -> RangeTest:
    return RangeTest(RATES, LOSSES, LOSSES, "diverged", minimum)


def test_loss_against_rate_on_a_log_axis_with_the_suggestion_and_a_reference(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with warnings.catch_warnings(), caplog.at_level(logging.WARNING, logger="matplotlib"):
        warnings.simplefilter("error")
        warnings.simplefilter("default", DeprecationWarning)
        fig = plot_range_test(found(), reference=5e-3, reference_label="本章的学习率")
        fig.savefig(BytesIO(), format="png", dpi=40)
    assert [r for r in caplog.records if r.name.startswith("matplotlib.font_manager")] == []
    (ax,) = fig.axes
    assert ax.get_xscale() == "log"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("学习率（对数刻度）", "训练损失")
    raw, smooth, suggestion, reference = ax.lines
    assert list(smooth.get_xdata()) == RATES and raw.get_alpha() < 1
    assert list(suggestion.get_xdata()) == pytest.approx([RATES[30] / 10] * 2)
    assert list(reference.get_xdata()) == pytest.approx([5e-3] * 2)
    names = [t.get_text() for t in ax.get_legend().get_texts()]
    assert names[2:] == ["建议的学习率 1.0e-2", "本章的学习率 5.0e-3"]
    texts = [t for t in fig.findobj(Text) if "学习率" in t.get_text()]
    assert {t.get_fontfamily()[0] for t in texts} == {fonts.FAMILY}


def test_without_a_reference_only_the_suggestion_is_marked() -> None:
    (ax,) = plot_range_test(found()).axes
    assert len(ax.lines) == 3


def test_a_suggestion_at_the_edge_says_so() -> None:
    assert suggestion_label(found(30)) == "建议的学习率 1.0e-2"
    assert "边缘" in suggestion_label(found(0))
    assert "边缘" in suggestion_label(found(40))
