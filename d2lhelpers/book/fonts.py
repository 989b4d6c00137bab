"""The Chinese font of the package's figures, shipped with it: no CJK font need be installed.

Matplotlib's own fonts have no Chinese glyphs and Colab has no CJK font, so the package ships
a subset of Noto Sans CJK SC (every GB2312 character, the figures' texts included; SIL Open
Font License 1.1, ``fontdata/OFL.txt``), renamed as the licence asks of a modified font.
``scripts/subset_cjk_font.py`` regenerates it. Nothing happens at import: :func:`register`
adds the font to matplotlib's font manager (in memory, once), and :func:`chinese_text`
sets it for the text drawn inside it only, without changing matplotlib's installation or its
global settings.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import matplotlib
from matplotlib import font_manager

FAMILY = "D2lhelpers Sans SC"
FONT_PATH = Path(__file__).parent / "fontdata" / "D2lhelpersSansSC-Regular.otf"


def register() -> str:
    """Add the shipped font to matplotlib's font manager unless it is there; its family name."""
    path = str(FONT_PATH)
    if not any(entry.fname == path for entry in font_manager.fontManager.ttflist):
        font_manager.fontManager.addfont(path)
    return FAMILY


@contextmanager
def chinese_text() -> Iterator[None]:
    """Text created inside (figures, axes, labels, legends) is set in the Chinese font.

    The reader's sans-serif font follows it for any symbol the subset lacks. matplotlib's
    settings are restored on leaving; the text keeps its font. Also usable as a decorator.
    """
    family = register()
    with matplotlib.rc_context({"font.family": [family, "sans-serif"]}):
        yield
