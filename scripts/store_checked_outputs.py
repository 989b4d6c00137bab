"""Execute notebooks and keep only the outputs of cells tagged ``nbval-check-output``.

nbval compares those stored outputs on every test run; all other outputs are dropped so the
committed notebooks stay small and diff-able. Usage:

    python scripts/store_checked_outputs.py chapters/*.ipynb
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

CHECK_TAG = "nbval-check-output"  # nbval compares the stored outputs of cells with this tag


def is_checked(cell) -> bool:
    return cell.cell_type == "code" and CHECK_TAG in cell.metadata.get("tags", [])


def store(path: Path, timeout: int = 1800) -> None:
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, timeout=timeout, resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if not is_checked(cell):
            cell.outputs, cell.execution_count = [], None
        cell.metadata.pop("execution", None)
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, path)


if __name__ == "__main__":
    for name in sys.argv[1:]:
        store(Path(name))
        print("stored checked outputs of", name)
