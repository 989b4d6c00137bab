"""Helpers for the fine-tuning (微调) book.

The core (no matplotlib, ipywidgets or IPython): downloads and image files (``download``,
``images``), the decode-once data path (``data``), the offline stand-in (``standin``,
``standin_draw``) and the choice between it and the real data (``workspace``), model surgery
(``models``), precision, the training loop and its History (``train``), how a run is carried
out (``run``), the chapter's recipe and settings (``finetune``, ``chapter``), predictions and
photos (``predict``, ``photo``), checkpoints, data-parallel training (``distributed``), the
command line (``cli``), sweeps and seed spreads (``sweep``, ``seeds``), and small shared
pieces (``checks``, ``fileutil``, ``machine``, ``settings``).

The book's interface, above the core: figures, panels, Chinese readings and the font
(``d2lhelpers.book``).
"""

__version__ = "0.1.0"
