"""The package's environment variables, in one place: their names and how each is read
(the chapter's training settings are :mod:`d2lhelpers.chapter`'s).

Every variable is read when it is needed, never at import time, and an empty value counts as
unset.

* ``D2LHELPERS_DATA``: the folder for downloads, the stand-in and caches; default
  ``~/.cache/d2lhelpers``.
* ``D2LHELPERS_CACHE``: the folder for the decoded-image caches; default beside the images
  when that folder is writable, else ``$D2LHELPERS_DATA/decoded``.
* ``D2LHELPERS_DATA_SOURCE``: ``auto`` (default), ``real`` or ``standin`` (the offline
  stand-in data).
* ``D2LHELPERS_HOTDOG_URL``: mirrors of the hot dog zip, one URL or several separated by
  spaces, tried in order before the official URL; default none.
* ``D2LHELPERS_PRECISION``: ``auto`` (default), ``fp32``, ``bf16`` or ``fp16``.
* ``D2LHELPERS_SHORT_RUN``: ``1`` shortens the chapter's settings to one epoch and one seed,
  for checks that only run the pages' code paths (the pages say so when it is set); default
  unset (the full settings).
"""

from __future__ import annotations

import os

DATA_DIR_ENV = "D2LHELPERS_DATA"
CACHE_DIR_ENV = "D2LHELPERS_CACHE"
DATA_SOURCE_ENV = "D2LHELPERS_DATA_SOURCE"
HOTDOG_URL_ENV = "D2LHELPERS_HOTDOG_URL"
PRECISION_ENV = "D2LHELPERS_PRECISION"
SHORT_RUN_ENV = "D2LHELPERS_SHORT_RUN"


def _value(name: str) -> str | None:
    """The value of the environment variable ``name``; None when unset or empty."""
    return os.environ.get(name) or None


def data_dir_setting() -> str | None:
    """``$D2LHELPERS_DATA``, the data folder; None means ``~/.cache/d2lhelpers``."""
    return _value(DATA_DIR_ENV)


def cache_dir_setting() -> str | None:
    """``$D2LHELPERS_CACHE``, the decoded-image cache folder; None means the default place."""
    return _value(CACHE_DIR_ENV)


def data_source_setting() -> str | None:
    """``$D2LHELPERS_DATA_SOURCE`` as written (``auto``, ``real``, ``standin``); None: auto."""
    return _value(DATA_SOURCE_ENV)


def hotdog_mirrors() -> list[str]:
    """The URLs in ``$D2LHELPERS_HOTDOG_URL``, in order; empty when unset."""
    return (_value(HOTDOG_URL_ENV) or "").split()


def precision_setting() -> str | None:
    """``$D2LHELPERS_PRECISION`` as written (``auto``, ``fp32``, ``bf16``, ``fp16``); None: auto."""
    return _value(PRECISION_ENV)


def short_run_setting() -> bool:
    """Whether ``$D2LHELPERS_SHORT_RUN`` asks for the short settings (``1``; ``0`` or unset: no).

    Any other value is an error naming the variable."""
    value = _value(SHORT_RUN_ENV)
    if value not in (None, "0", "1"):
        raise ValueError(
            f"${SHORT_RUN_ENV} is {value!r}; set it to 1 (short run) or 0, or unset it."
        )
    return value == "1"
