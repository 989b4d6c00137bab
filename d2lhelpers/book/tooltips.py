"""Tooltips for described widgets that ipywidgets 7.7.1 (Colab) and 8.x both show.

The two name the trait differently (7.x ``description_tooltip``, 8.x ``tooltip``), and 8.x
without one gives a control's label the title "null", which a learner sees on hovering it.
"""

from __future__ import annotations

import ipywidgets as widgets

TOOLTIP_TRAIT = "tooltip" if int(widgets.__version__.split(".")[0]) >= 8 else "description_tooltip"


def tooltip(text: str) -> dict[str, str]:
    """The keyword argument that gives a described widget (a slider, a checkbox, a progress
    bar) the tooltip ``text``: ``widgets.IntSlider(..., **tooltip("..."))``."""
    return {TOOLTIP_TRAIT: text}
