"""A pytest plugin for nbval: a notebook cell whose stderr carries a warning or an error fails.

nbval's lax mode checks that every cell runs and that ``# NBVAL_CHECK_OUTPUT`` cells print what
the notebook stores; it ignores what the other cells write to stderr. On Colab a deprecation
warning or a failed import printed there is what the learner sees, so the Colab-like run
(``scripts/colab_check.py``) loads this plugin (``-p nbval_stderr``) to fail on it as well.

Each notebook it sees executed is also appended to ``$NOTEBOOK_RUNS_LOG`` (when set), one line
per notebook, so that ``make test`` can report how often each notebook ran.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

STDERR_PROBLEM = re.compile(r"Warning|Error|Traceback")
RUNS_LOG_ENV = "NOTEBOOK_RUNS_LOG"


def stderr_problems(outputs: Iterable[dict]) -> list[str]:
    """The stderr texts among a cell's ``outputs`` that carry a warning, an error or a traceback."""
    return [
        out["text"].strip()[:500]
        for out in outputs
        if out.get("name") == "stderr" and STDERR_PROBLEM.search(out.get("text", ""))
    ]


def record_run(log: str | None, notebook: Path, executor: str) -> None:
    """Append ``notebook`` and ``executor`` to the runs log ``log`` (nothing when it is empty)."""
    if log:
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(f"{notebook.name}\t{executor}\n")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    notebook = item.parent
    if item.fspath.ext == ".ipynb" and not getattr(notebook, "run_recorded", False):
        notebook.run_recorded = True  # its kernel starts executing it now
        record_run(os.environ.get(RUNS_LOG_ENV), Path(str(item.fspath)), "nbval, Colab-like env")
    result = yield
    outputs = getattr(item, "test_outputs", None)  # set by nbval's cell item after it ran
    if outputs is not None and (found := stderr_problems(outputs)):
        pytest.fail("stderr of this cell:\n" + "\n---\n".join(found), pytrace=False)
    return result
