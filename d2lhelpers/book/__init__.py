"""The book's interface: figures, panels, Chinese readings and the font they are set in.

Everything here sits above the core (:mod:`d2lhelpers`: data, models, the loop, the recipe,
checkpoints, data-parallel training, the command line), which imports nothing from it nor
matplotlib, ipywidgets or IPython; the pages pass the book's live views into the loop
(``Run(live=LivePlot())``).
"""
