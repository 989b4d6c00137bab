"""The core of d2lhelpers imports nothing of the book's interface: every module outside
``d2lhelpers.book`` imports in a process where matplotlib, ipywidgets and IPython cannot be
imported, and none of them even tries (an attempt caught by ``except ImportError`` counts)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import d2lhelpers

BOOK_ONLY = ("matplotlib", "ipywidgets", "IPython")
BLOCKED_IMPORT = """
import importlib, sys

tried = []

class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            tried.append(name)
            raise ImportError(f"{{name}} is the book's, not the core's")
        return None

sys.meta_path.insert(0, Blocker())
for module in {modules!r}:
    importlib.import_module(module)
print(sorted(set(tried)))
"""


def core_modules() -> list[str]:
    """Every module of the package outside ``d2lhelpers.book``."""
    found = pkgutil.iter_modules([str(Path(d2lhelpers.__file__).parent)], "d2lhelpers.")
    return sorted(m.name for m in found if not m.ispkg)


def test_the_core_is_every_module_but_the_book() -> None:
    modules = core_modules()
    assert "d2lhelpers.cli" in modules and "d2lhelpers.finetune" in modules
    assert not any(m.startswith("d2lhelpers.book") for m in modules)


def test_the_core_imports_without_the_book_interface() -> None:
    code = BLOCKED_IMPORT.format(blocked=BOOK_ONLY, modules=core_modules())
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "[]"


def test_the_blocker_blocks() -> None:
    """The check can fail: a module that imports matplotlib is refused in that process."""
    code = BLOCKED_IMPORT.format(blocked=BOOK_ONLY, modules=["d2lhelpers.book.plot"])
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode != 0 and "is the book's, not the core's" in done.stderr
