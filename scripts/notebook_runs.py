"""Report how many times each notebook in chapters/ was executed during ``make test``.

Two executors run notebooks: nbval in the Colab-like environment (its plugin
``scripts/nbval_stderr.py`` writes one line per notebook to the runs log) and the book build
(myst-nb logs ``<notebook>: Executing notebook`` for each notebook it executes instead of taking
it from the cache). Usage: ``python scripts/notebook_runs.py RUNS_LOG BOOK_LOG``. Fails when a
notebook ran more than ``MAX_RUNS`` times.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_RUNS = 2
BOOK_LINE = re.compile(r"([\w.-]+\.ipynb): Executing notebook")


def count_runs(runs_log: str, book_log: str) -> dict[str, Counter]:
    """Executions per notebook name, by executor."""
    runs: dict[str, Counter] = {p.name: Counter() for p in (ROOT / "chapters").glob("*.ipynb")}
    for line in runs_log.splitlines():
        name, executor = line.split("\t", 1)
        runs.setdefault(name, Counter())[executor] += 1
    for name in BOOK_LINE.findall(book_log):
        runs.setdefault(name, Counter())["book build"] += 1
    return runs


def _text(path: str) -> str:
    return Path(path).read_text(encoding="utf-8") if Path(path).exists() else ""


def main(runs_path: str, book_path: str) -> int:
    runs = count_runs(_text(runs_path), _text(book_path))
    too_many = []
    for name, by in sorted(runs.items()):
        total = sum(by.values())
        detail = ", ".join(f"{executor} {n}" for executor, n in sorted(by.items())) or "not run"
        print(f"notebook runs: {name}: {total} ({detail})")
        if total > MAX_RUNS:
            too_many.append(name)
    if too_many:
        print(f"notebook runs: more than {MAX_RUNS} executions of {too_many}", file=sys.stderr)
    return 1 if too_many else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
