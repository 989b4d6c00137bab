"""Per-cell execution times of the notebooks as the book build last executed them.

The book build (``make book``) executes every notebook through jupyter-cache, which keeps the
executed copy with nbclient's timing metadata (``execute_input`` and ``execute_reply`` per
cell). This prints, per notebook, its total time and its slowest cells, so that a change's
effect on each page's time can be read after ``make book`` without running anything again:

    .venv/bin/python scripts/cell_times.py [--top 8] [--cache _build/.jupyter_cache]
"""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path

from jupyter_cache import get_cache

ROOT = Path(__file__).resolve().parent.parent


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


def report(cache_path: Path, top: int) -> str:
    """The report for every notebook executed into the cache at ``cache_path``."""
    cache = get_cache(cache_path)
    out = []
    for record in cache.list_project_records():
        match = cache.get_cached_project_nb(record.uri)
        if match is None:
            continue
        nb = cache.get_cache_bundle(match.pk).nb
        timed = [
            (index, seconds, cell.source)
            for index, cell in enumerate(nb.cells)
            if cell.cell_type == "code" and (seconds := cell_seconds(cell)) is not None
        ]
        total = sum(seconds for _, seconds, _ in timed)
        out.append(f"{Path(record.uri).relative_to(ROOT)}: {total:.0f} s in {len(timed)} cells")
        for index, seconds, source in sorted(timed, key=lambda t: -t[1])[:top]:
            out.append(f"  cell {index:>2}: {seconds:7.1f} s  {first_line(source)}")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=ROOT / "_build" / ".jupyter_cache")
    parser.add_argument("--top", type=int, default=8, help="slowest cells shown per notebook")
    args = parser.parse_args()
    if not args.cache.exists():
        raise SystemExit(f"No execution cache at {args.cache}: run `make book` first.")
    print(report(args.cache, args.top))


if __name__ == "__main__":
    main()
