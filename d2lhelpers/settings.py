"""Until ``chapter.py`` imports from :mod:`d2lhelpers.environment` (its new name): delete this
module then."""

from .environment import short_run_setting

__all__ = ["short_run_setting"]
