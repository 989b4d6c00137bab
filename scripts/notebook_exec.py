"""Execute a notebook cell by cell in a fresh kernel and report what went wrong and what it cost.

The maintainers' checks that execute the pages share this one executor:
``scripts/colab_check.py`` (every page, shortened, in the Colab-like environment),
``scripts/real_branch_check.py`` (the real-data branch) and ``scripts/budget.py`` (the pages
under the slow-CPU limits). A cell that raises, or whose stderr carries a warning, an error or a
traceback (what a learner on Colab would see in red), is a failure; after the first failure
only the postlude runs.

A prelude cell, run before the notebook's own, counts the images that pass a network's first
convolution (with and without gradients): a page's training and evaluation work in
image-passes. A postlude cell, run after them, prints a line ``FACTS_MARK`` + JSON that
becomes :attr:`Run.facts` (by default just those counts).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import nbclient
import nbformat
from nbclient.exceptions import CellTimeoutError, DeadKernelError

STDERR_PROBLEM = re.compile(r"Warning|Error|Traceback")
FACTS_MARK = "NOTEBOOK-EXEC-FACTS "
COUNT_IMAGES = """\
import torch as _nb_exec_torch

_nb_exec_images = {"with_grad": 0, "no_grad": 0}


def _nb_exec_count(module, args, output):
    # every image a network sees passes its first convolution (3 input channels) once
    if isinstance(module, _nb_exec_torch.nn.Conv2d) and module.in_channels == 3 and args:
        key = "with_grad" if _nb_exec_torch.is_grad_enabled() else "no_grad"
        _nb_exec_images[key] += int(args[0].shape[0])


_nb_exec_torch.nn.modules.module.register_module_forward_hook(_nb_exec_count)
"""
PRINT_IMAGES = f"""\
import json as _nb_exec_json

print({FACTS_MARK!r} + _nb_exec_json.dumps({{"images": _nb_exec_images}}))
"""


@dataclass
class Run:
    """One notebook's execution: its time, each cell's time, its failures and its facts."""

    name: str
    seconds: float = 0.0
    cell_seconds: list[tuple[int, float]] = field(default_factory=list)  # (cell index, s)
    failures: list[str] = field(default_factory=list)
    facts: dict = field(default_factory=dict)
    text: str = ""  # every text output of the notebook's own cells

    def slowest(self, top: int = 3) -> str:
        """The ``top`` slowest cells, as ``cell 30 112.0 s, …``."""
        cells = sorted(self.cell_seconds, key=lambda c: -c[1])[:top]
        return ", ".join(f"cell {i} {s:.1f} s" for i, s in cells)


def stderr_problems(outputs: Iterable[dict]) -> list[str]:
    """The stderr texts among a cell's ``outputs`` that carry a warning, an error or a traceback."""
    return [
        out["text"].strip()[:500]
        for out in outputs
        if out.get("name") == "stderr" and STDERR_PROBLEM.search(out.get("text", ""))
    ]


def cell_text(cell: nbformat.NotebookNode) -> str:
    """The text of a code cell's outputs: streams, text/plain, text/markdown and text/html."""
    parts = []
    for out in cell.get("outputs", []):
        if "text" in out:
            parts.append(out["text"])
        for mime in ("text/plain", "text/markdown", "text/html"):
            if mime in out.get("data", {}):
                parts.append(out["data"][mime])
    return "\n".join(parts)


def first_line(source: str) -> str:
    """The first line of code in ``source`` that is not a comment, cut to 90 characters."""
    lines = [line for line in source.splitlines() if line.strip() and not line.startswith("#")]
    return (lines[0] if lines else source.strip())[:90]


def plain(text: str) -> str:
    """``text`` without ANSI colour codes."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def execute(
    path: Path,
    limit: float,
    env: dict[str, str],
    *,
    prelude: str = COUNT_IMAGES,
    postlude: str = PRINT_IMAGES,
    out_dir: Path | None = None,
) -> Run:
    """Run the notebook at ``path`` between ``prelude`` and ``postlude`` in a fresh kernel whose
    environment is this process's plus ``env``, within ``limit`` seconds for its own cells.

    The executed notebook (outputs included) is written to ``out_dir`` when given.
    """
    run = Run(path.name)
    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(prelude, metadata={"tags": ["notebook-exec"]}))
    nb.cells.append(nbformat.v4.new_code_cell(postlude, metadata={"tags": ["notebook-exec"]}))
    client = nbclient.NotebookClient(
        nb,
        timeout=int(limit),
        kernel_name="python3",
        extra_arguments=["--IPKernelApp.log_level=ERROR"],  # not its TCP-transport notice
        allow_errors=True,
        resources={"metadata": {"path": str(path.parent)}},
    )
    start = time.perf_counter()
    saved = dict(os.environ)
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        with client.setup_kernel():
            _execute_cells(client, nb, run, limit, start)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    run.seconds = time.perf_counter() - start
    run.text = "\n".join(cell_text(c) for c in nb.cells[1:-1] if c.cell_type == "code")
    for line in cell_text(nb.cells[-1]).splitlines():
        if line.startswith(FACTS_MARK):
            run.facts = json.loads(line[len(FACTS_MARK) :])
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, out_dir / path.name)
    return run


def _execute_cells(
    client: nbclient.NotebookClient, nb: nbformat.NotebookNode, run: Run, limit: float, start: float
) -> None:
    """Execute ``nb``'s code cells in ``client``'s kernel, recording into ``run``."""
    last = len(nb.cells) - 1
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        ours = index in (0, last)  # the prelude or the postlude
        if run.failures and not ours:
            continue  # after a failure, only the postlude runs (for the facts)
        where = run.name if ours else f"{run.name} cell {index - 1}"
        left = limit - (time.perf_counter() - start)
        if left <= 0 and not ours:
            run.failures.append(f"{where}: not reached within {limit:.0f} s")
            continue
        client.timeout = max(60, int(left)) if ours else max(1, int(left))
        began = time.perf_counter()
        try:
            client.execute_cell(cell, index)
        except CellTimeoutError:
            run.failures.append(
                f"{where} [{first_line(cell.source)}]: timed out, the notebook's limit of "
                f"{limit:.0f} s spent"
            )
            continue
        except DeadKernelError as err:
            run.failures.append(f"{where} [{first_line(cell.source)}]: kernel died: {err}")
            break
        if not ours:
            run.cell_seconds.append((index - 1, time.perf_counter() - began))
        for problem in stderr_problems(cell.outputs):
            run.failures.append(f"{where} [{first_line(cell.source)}]: stderr: {problem}")
        for err in [o for o in cell.outputs if o.output_type == "error"][:1]:
            trace = plain("\n".join(err.get("traceback", [])[-3:]))
            run.failures.append(
                f"{where} [{first_line(cell.source)}]: {err.ename}: {err.evalue}\n{trace}"
            )
