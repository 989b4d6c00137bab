"""Report how many times each notebook in chapters/ was executed during ``make test``.

Each page runs its full lesson once, in the book build (myst-nb logs ``<notebook>: Executing
notebook`` for each notebook it executes instead of taking it from its cache), and once
shortened (``D2LHELPERS_SHORT_RUN=1``) in the Colab-like environment (``scripts/colab_check.py``
writes one line per notebook to the runs log, :func:`record_run`). Usage:
``python scripts/notebook_runs.py RUNS_LOG BOOK_LOG``. Fails when a notebook ran its full lesson
more than once or its short run more than once (``make real-check``'s third, shortened run on
the real branch is not logged: it runs other code paths on other data).
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FULL_RUN, SHORT_RUN = "full run, book build", "short run, Colab-like env"
MAX_RUNS = {FULL_RUN: 1, SHORT_RUN: 1}
BOOK_LINE = re.compile(r"([\w.-]+\.ipynb): Executing notebook")


def record_run(log: str | None, notebook: str, executor: str) -> None:
    """Append ``notebook``'s name and ``executor`` to the runs log ``log`` (nothing when empty)."""
    if log:
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(f"{notebook}\t{executor}\n")


def count_runs(runs_log: str, book_log: str) -> dict[str, Counter]:
    """Executions per notebook name, by executor."""
    runs: dict[str, Counter] = {p.name: Counter() for p in (ROOT / "chapters").glob("*.ipynb")}
    for line in runs_log.splitlines():
        name, executor = line.split("\t", 1)
        runs.setdefault(name, Counter())[executor] += 1
    for name in BOOK_LINE.findall(book_log):
        runs.setdefault(name, Counter())[FULL_RUN] += 1
    return runs


def _text(path: str) -> str:
    return Path(path).read_text(encoding="utf-8") if Path(path).exists() else ""


def main(runs_path: str, book_path: str) -> int:
    runs = count_runs(_text(runs_path), _text(book_path))
    too_many = []
    for name, by in sorted(runs.items()):
        parts = [f"{by[executor]} {executor}" for executor in MAX_RUNS]
        others = sorted((e, n) for e, n in by.items() if e not in MAX_RUNS)
        parts += [f"{n} {executor}" for executor, n in others]
        note = "" if by[FULL_RUN] else " (the book build took it from its execution cache)"
        print(f"notebook runs: {name}: {', '.join(parts)}{note}")
        if any(by[executor] > most for executor, most in MAX_RUNS.items()):
            too_many.append(name)
    if too_many:
        limits = ", ".join(f"{most} {executor}" for executor, most in MAX_RUNS.items())
        print(f"notebook runs: {too_many} ran more often than {limits}", file=sys.stderr)
    return 1 if too_many else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
