# ruff: noqa: RUF001  (Chinese text uses full-width punctuation on purpose)
"""The pages' generated readings say the right thing in every branch."""

from __future__ import annotations

from d2lhelpers.book.readings import accuracy, compare, points
from d2lhelpers.seeds import Spread, spread


def test_accuracy_shows_the_range_only_for_several_seeds() -> None:
    assert accuracy(Spread((0.7,))) == "0.700"
    assert accuracy(Spread((0.7, 0.8, 0.75))) == "0.750（0.700～0.800）"


def test_points_are_unsigned() -> None:
    assert points(-0.032) == "3.2 个百分点"
    assert points(0.142) == "14.2 个百分点"


def test_higher_and_separate() -> None:
    text = compare(
        "微调模型", Spread((0.70, 0.72, 0.73)), "从头训练的模型", Spread((0.55, 0.58, 0.59))
    )
    assert "微调模型比从头训练的模型高 14.3 个百分点" in text
    assert "互不重叠" in text and "随机波动之内" not in text


def test_lower_reads_lower_never_not_higher() -> None:
    text = compare("冻结主干", Spread((0.60, 0.61, 0.62)), "完整微调", Spread((0.70, 0.72, 0.74)))
    assert "冻结主干比完整微调低 11.0 个百分点" in text
    assert "不高于" not in text


def test_overlapping_ranges_are_noise() -> None:
    text = compare("A", Spread((0.70, 0.74, 0.78)), "B", Spread((0.69, 0.72, 0.75)))
    assert "范围相互重叠" in text and "随机波动之内" in text
    assert "高" not in text.split("：", 1)[1]


def test_a_tie_is_a_tie() -> None:
    text = compare("A", Spread((0.7, 0.71)), "B", Spread((0.71, 0.70)))
    assert text.endswith("两者相同。")
    assert "0.0 个百分点" not in text


def test_one_seed_says_the_noise_is_unknown() -> None:
    text = compare("A", Spread((0.8,)), "B", Spread((0.7,)))
    assert "A比B高 10.0 个百分点" in text and "只跑了一个种子" in text


def test_spread_skips_missing_values() -> None:
    assert spread([None, 0.5, 0.7]) == Spread((0.5, 0.7))
    assert spread([None]) is None
    assert Spread((0.5, 0.7)).overlaps(Spread((0.7, 0.9)))
    assert not Spread((0.5, 0.69)).overlaps(Spread((0.7, 0.9)))
