"""Shared helpers for the tests of the built book (``_build/html``, made by ``make book``) and
of the maintainers' scripts in ``scripts/``."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
HTML = ROOT / "_build" / "html"


def built_book() -> Path:
    """The built book's folder; fails (never skips) when the book has not been built."""
    if not (HTML / "index.html").is_file():
        pytest.fail(f"{HTML / 'index.html'} not found: build the book first (make book).")
    return HTML


def book_config() -> dict:
    """The book's ``_config.yml``."""
    return yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))


def load_script(name: str) -> ModuleType:
    """``scripts/<name>.py`` imported by name, as the scripts import each other (they are no
    package: ``scripts/`` goes on ``sys.path``; dataclasses need the module in sys.modules)."""
    if str(ROOT / "scripts") not in sys.path:
        sys.path.insert(0, str(ROOT / "scripts"))
    return importlib.import_module(name)
