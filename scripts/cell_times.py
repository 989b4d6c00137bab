"""Per-cell execution times of notebooks: each is executed once with nbclient, here.

nbclient records every cell's ``execute_input`` and ``execute_reply`` times in its metadata
(the book's execution cache does not keep them: jupyter-cache runs with ``record_timing`` off).
This prints each notebook's total and its slowest cells, to see where a page's time goes:

    .venv/bin/python scripts/cell_times.py chapters/*.ipynb [--top 8]

It is a maintainer's tool, not part of ``make test`` (it executes the notebooks once more).
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def cell_seconds(cell: dict) -> float | None:
    """Wall seconds from a code cell's execution start to its reply, if nbclient recorded them."""
    timing = cell.get("metadata", {}).get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not start or not end:
        return None
    parse = datetime.fromisoformat
    return (parse(end.replace("Z", "+00:00")) - parse(start.replace("Z", "+00:00"))).total_seconds()


def first_line(source: str) -> str:
    lines = [line for line in source.splitlines() if line.strip() and not line.startswith("#")]
    return (lines[0] if lines else source.strip())[:70]


def report(notebook: Path, top: int) -> str:
    """Execute ``notebook`` and describe where its time went."""
    nb = nbformat.read(notebook, as_version=4)
    start = time.perf_counter()
    NotebookClient(
        nb, timeout=1800, resources={"metadata": {"path": str(notebook.parent)}}
    ).execute()
    wall = time.perf_counter() - start
    timed = [
        (index, seconds, cell.source)
        for index, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (seconds := cell_seconds(cell)) is not None
    ]
    total = sum(seconds for _, seconds, _ in timed)
    lines = [f"{notebook}: {wall:.0f} s wall, {total:.0f} s in {len(timed)} cells"]
    for index, seconds, source in sorted(timed, key=lambda t: -t[1])[:top]:
        lines.append(f"  cell {index:>2}: {seconds:7.1f} s  {first_line(source)}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", type=Path, nargs="+")
    parser.add_argument("--top", type=int, default=8, help="slowest cells shown per notebook")
    args = parser.parse_args()
    for notebook in args.notebooks:
        print(report(notebook, args.top), flush=True)


if __name__ == "__main__":
    main()
