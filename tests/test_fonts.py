# ruff: noqa: RUF001  (Chinese text uses full-width punctuation on purpose)
"""The shipped Chinese font: every figure renders without a missing glyph, the font is package
data, registering is idempotent, and matplotlib's global settings stay as they were."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import warnings
import zipfile
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from shutil import ignore_patterns

import matplotlib
import numpy as np
import pytest
from matplotlib import font_manager, ft2font
from matplotlib.figure import Figure
from matplotlib.text import Text

from d2lhelpers.book import fonts
from d2lhelpers.book.diagram import finetune_diagram
from d2lhelpers.book.labels import status_label
from d2lhelpers.book.plot import plot_histories, plot_seed_curves, show_images
from d2lhelpers.book.sweep_plots import live_figure, summary_figure
from d2lhelpers.sweep import SweepSetting, records_of
from d2lhelpers.train import EpochStats, History

ROOT = Path(__file__).resolve().parent.parent


def history(label: str, epochs: int, diverge_at: int | None = None) -> History:
    """Full epochs, or the ones before ``diverge_at`` and then a divergence with its loss."""
    h = History(label, "cpu", "fp32", {})
    last = epochs if diverge_at is None else diverge_at - 1
    for e in range(1, last + 1):
        h.epochs.append(EpochStats(e, 0.7 / e, 0.6 + 0.05 * e, 0.55 + 0.05 * e, 100.0, 0.1))
    if diverge_at is not None:
        h.status, h.diverged_at, h.diverged_loss = "diverged", (diverge_at, 7), 1.5e3
    return h


def sweep_records() -> list[dict]:
    """Four runs as the panel makes them: plain, frozen, hot-dog row, and one that diverges."""
    settings = [
        SweepSetting(0.01, 1, num_epochs=3),
        SweepSetting(0.01, 10, num_epochs=3, freeze_body=True),
        SweepSetting(0.01, 10, num_epochs=3, init_hotdog_row=True),
        SweepSetting(1.0, 10, num_epochs=3),
    ]
    records = []
    for run, setting in enumerate(settings):
        diverge_at = 2 if setting.learning_rate >= 1 else None
        records += records_of(run, setting, history("", 3, diverge_at))
    return records


def interrupted() -> History:
    h = history("中断的运行", 1)
    h.status = "interrupted"
    return h


FIGURES: dict[str, Callable[[], Figure]] = {
    "diagram": finetune_diagram,
    "diagram_standin": lambda: finetune_diagram(18, 2),
    "histories": lambda: plot_histories(
        [history("微调", 3), history("从头训练", 3, diverge_at=3), interrupted()], "微调与从头训练"
    ),
    "seed_curves": lambda: plot_seed_curves(
        {"微调": [history("", 3), history("", 3)], "从头训练": [history("", 2)]}
    ),
    "images": lambda: show_images([np.zeros((8, 8, 3), np.uint8)] * 2, 1, 2, ["热狗", "其他"]),
    "live": lambda: live_figure(sweep_records()),
    "summary": lambda: summary_figure(sweep_records()),
}


def render(fig: Figure) -> bytes:
    buffer = BytesIO()
    fig.savefig(buffer, format="png", dpi=40)
    return buffer.getvalue()


def strict_render(draw: Callable[[], Figure], caplog: pytest.LogCaptureFixture) -> Figure:
    """Draws and renders with every warning an error; fails on a font manager's complaint.

    Deprecation warnings stay warnings: matplotlib 3.10 (Colab's) calls pyparsing 3.3's
    deprecated names in its mathtext parser, which says nothing about the figure.
    """
    with warnings.catch_warnings(), caplog.at_level(logging.WARNING, logger="matplotlib"):
        warnings.simplefilter("error")
        warnings.simplefilter("default", DeprecationWarning)
        fig = draw()
        render(fig)
    complaints = [r for r in caplog.records if r.name.startswith("matplotlib.font_manager")]
    assert complaints == []  # e.g. "findfont: Font family ... not found"
    return fig


def chinese(text: str) -> bool:
    return any("\u3000" <= c <= "\u9fff" or "\uff00" <= c <= "\uffef" for c in text)


@pytest.mark.parametrize("name", FIGURES)
def test_figure_renders_every_glyph_in_the_shipped_font(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    fig = strict_render(FIGURES[name], caplog)
    texts = [t for t in fig.findobj(Text) if chinese(t.get_text())]
    assert texts, "the figure has Chinese text"
    assert {t.get_fontfamily()[0] for t in texts} == {fonts.FAMILY}


def test_a_character_outside_the_subset_is_caught(caplog: pytest.LogCaptureFixture) -> None:
    """The check above can fail: 龘 is not in GB2312, so the subset lacks it."""

    @fonts.chinese_text()
    def draw() -> Figure:
        fig = Figure()
        fig.text(0.5, 0.5, "龘")
        return fig

    # matplotlib 3.7 says "missing from current font"
    with pytest.raises(UserWarning, match=r"missing from (current )?font"):
        strict_render(draw, caplog)


def test_the_subset_has_every_character_of_the_package() -> None:
    """Every non-ASCII character in d2lhelpers' sources (the figures' texts) has a glyph."""
    charmap = ft2font.FT2Font(str(fonts.FONT_PATH)).get_charmap()
    text = "".join(p.read_text("utf-8") for p in (ROOT / "d2lhelpers").glob("*.py"))
    assert sorted({c for c in text if ord(c) > 0x7E and ord(c) not in charmap}) == []
    gb2312_hanzi = {bytes((0xB0 + row, 0xA1 + cell)) for row in range(40) for cell in range(94)}
    level1 = {b.decode("gb2312", errors="ignore") for b in gb2312_hanzi} - {""}
    assert len(level1) == 3755 and all(ord(c) in charmap for c in level1)


def test_status_label_follows_history_status_text() -> None:
    diverged = history("", 3, diverge_at=2)
    expected = "在第 2 个迭代周期第 7 个批量发散"
    assert status_label(diverged.status_text()) == expected + "（损失 1.5e+03）"
    diverged.diverged_loss = None
    assert status_label(diverged.status_text()) == expected
    assert status_label(history("", 1).status_text()) == "正常"
    assert status_label(interrupted().status_text()) == "已中断"
    assert status_label("something else") == "something else"


def test_register_twice_is_harmless() -> None:
    def entries() -> list:
        return [e for e in font_manager.fontManager.ttflist if e.fname == str(fonts.FONT_PATH)]

    assert fonts.register() == fonts.FAMILY
    first = entries()
    assert fonts.register() == fonts.FAMILY
    assert entries() == first and len(first) >= 1
    found = font_manager.findfont(font_manager.FontProperties(family=fonts.FAMILY))
    assert Path(found) == fonts.FONT_PATH


def test_drawing_leaves_global_rcparams_unchanged(caplog: pytest.LogCaptureFixture) -> None:
    before = dict(matplotlib.rcParams)
    for draw in FIGURES.values():
        strict_render(draw, caplog)
    assert dict(matplotlib.rcParams) == before
    assert fonts.FAMILY not in str(matplotlib.rcParams["font.family"])


def test_importing_registers_nothing() -> None:
    """Nor does decorating a drawing function (diagram's; plot and widgets do the same)."""
    code = (
        "import d2lhelpers.book.diagram, d2lhelpers.book.fonts\n"
        "from matplotlib import font_manager\n"
        "print(sum('D2lhelpers' in e.fname for e in font_manager.fontManager.ttflist))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"


def test_the_font_and_its_licence_are_in_the_wheel(tmp_path: Path) -> None:
    """Built from a copy of the sources, as pip builds it on Colab from the git URL."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        (src / name).write_bytes((ROOT / name).read_bytes())
    shutil.copytree(ROOT / "d2lhelpers", src / "d2lhelpers", ignore=ignore_patterns("__pycache__"))
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    subprocess.run([*pip, "-w", str(wheels), str(src)], check=True, capture_output=True)
    (wheel,) = wheels.glob("d2lhelpers-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for path in (fonts.FONT_PATH, fonts.FONT_PATH.with_name("OFL.txt")):
        assert path.relative_to(ROOT).as_posix() in names
    assert "d2lhelpers/book/plot.py" in names  # the subpackage too
    licence = zipfile.ZipFile(wheel).read("d2lhelpers/book/fontdata/OFL.txt").decode()
    assert "SIL OPEN FONT LICENSE Version 1.1" in licence and "Adobe" in licence
