"""Run every notebook in chapters/ the way a learner on Colab does, in a Colab-like environment.

Run with the Colab-like environment's Python (``make colab-check`` builds it in .venv-colab from
scripts/colab_requirements.txt).  Steps:

1. Check that this interpreter and its kernel really are Colab-shaped (Python 3.12, IPython 7,
   ipywidgets 7) and remove any d2lhelpers left by an earlier run.
2. Read the install command from the notebooks' first cell, point its ``REPO_URL`` at this
   checkout (``git+file://…``, same ref) and run it as ``%pip`` would (``python -m pip``).
3. Fail if that install changed the version of any package the environment already had.
4. Execute each notebook with nbclient on the stand-in; fail on any error output, a stderr
   output that carries a warning or an error, or a ``# NBVAL_CHECK_OUTPUT`` cell whose text
   differs from the output stored in the notebook (what nbval checks in the main environment).
   Executed copies go to _build/colab-check.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import nbclient
import nbformat

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = ROOT / "chapters"
OUT = ROOT / "_build" / "colab-check"
REPO_URL_LINE = re.compile(r'^REPO_URL = "([^"]+)"$', re.MULTILINE)
PIP_LINE = re.compile(r"^\s*%pip (install .+)$", re.MULTILINE)
STDERR_PROBLEM = re.compile(r"Warning|Error|Traceback")
CHECK_MARK = "# NBVAL_CHECK_OUTPUT"
PROBE = """\
import sys, IPython, ipywidgets, matplotlib
print(sys.executable, sys.version_info[:2], IPython.__version__, ipywidgets.__version__,
      matplotlib.get_backend())
"""


def fail(message: str) -> None:
    sys.exit(f"colab-check: {message}")


def installed() -> dict[str, str]:
    """Every distribution in this environment, by normalised name."""
    return {
        re.sub(r"[-_.]+", "-", d.metadata["Name"]).lower(): d.version
        for d in importlib.metadata.distributions()
    }


def colab_install_command(notebook: Path) -> list[str]:
    """The first cell's ``%pip install …``, pointed at this checkout; as an argv for pip."""
    first = next(c for c in nbformat.read(notebook, as_version=4).cells if c.cell_type == "code")
    url, pip = REPO_URL_LINE.search(first.source), PIP_LINE.search(first.source)
    if not url or not pip:
        fail(f"{notebook}: the first code cell has no REPO_URL line or no %pip install line")
    line = pip.group(1).replace("{REPO_URL}", f"file://{ROOT}")
    return [sys.executable, "-m", "pip", *shlex.split(line)]


def warn_if_checkout_differs(command: list[str]) -> None:
    """pip installs the named ref's last commit, not uncommitted edits: say so when they differ."""
    ref = command[-1].rsplit("@", 1)[-1].strip('"')
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    target = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", ref], capture_output=True, text=True
    )
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    if head.stdout != target.stdout or dirty:
        print(
            f"colab-check: note: pip installs the last commit of '{ref}', as Colab would; "
            "uncommitted or unmerged changes are not in it.",
            file=sys.stderr,
        )


def install_like_colab(notebooks: list[Path]) -> None:
    commands = {tuple(colab_install_command(nb)) for nb in notebooks}
    if len(commands) != 1:
        fail(f"the notebooks' install cells differ: {sorted(commands)}")
    command = list(commands.pop())
    subprocess.run([sys.executable, "-m", "pip", "uninstall", "--yes", "--quiet", "d2lhelpers"])
    warn_if_checkout_differs(command)
    before = installed()
    print("colab-check: $", shlex.join(command[2:]), file=sys.stderr)
    subprocess.run(command, check=True)
    after = installed()
    changed = {n: (v, after.get(n)) for n, v in before.items() if after.get(n) != v}
    if changed:
        fail(f"installing d2lhelpers changed Colab's own packages: {changed}")
    added = sorted(set(after) - set(before))
    print(f"colab-check: the install added {added} and changed nothing else", file=sys.stderr)


def texts(cell: nbformat.NotebookNode) -> list[str]:
    """A cell's outputs as text: streams and the plain-text form of results."""
    return [o.get("text") or o.get("data", {}).get("text/plain", "") for o in cell.outputs]


def problems(nb: nbformat.NotebookNode, stored: nbformat.NotebookNode) -> list[str]:
    """Error outputs, stderr outputs with a warning, an error or a traceback, and checked cells
    whose text differs from ``stored`` (the committed notebook)."""
    found = []
    for index, (cell, committed) in enumerate(zip(nb.cells, stored.cells, strict=True)):
        for out in cell.get("outputs", []):
            if out.output_type == "error":
                found.append(f"cell {index}: {out.ename}: {out.evalue}")
            elif out.get("name") == "stderr" and STDERR_PROBLEM.search(out.text):
                found.append(f"cell {index} stderr: {out.text.strip()[:500]}")
        checked = cell.cell_type == "code" and CHECK_MARK in cell.source
        if checked and texts(cell) != texts(committed):
            found.append(f"cell {index}: {texts(cell)} differs from stored {texts(committed)}")
    return found


def execute(notebook: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(notebook, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(CHAPTERS)}}
    )
    client.execute()
    return nb


def probe_kernel() -> None:
    """The kernel nbclient starts must be this environment's, with Colab's versions."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(PROBE)])
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    text = nb.cells[0].outputs[0].text
    print("colab-check: kernel:", text.strip(), file=sys.stderr)
    if not text.startswith(sys.executable) or "(3, 12)" not in text or " 7." not in text:
        fail(f"the kernel is not the Colab-like one (Python 3.12, IPython 7, ipywidgets 7): {text}")


def main() -> None:
    if sys.version_info[:2] != (3, 12):
        fail(f"run me with the Colab-like environment's Python 3.12, not {sys.version}")
    os.environ.setdefault("D2LHELPERS_DATA_SOURCE", "standin")
    notebooks = sorted(CHAPTERS.glob("*.ipynb"))
    if not notebooks:
        fail(f"no notebook in {CHAPTERS}")
    install_like_colab(notebooks)
    probe_kernel()
    OUT.mkdir(parents=True, exist_ok=True)
    failures = {}
    for notebook in notebooks:
        start = time.perf_counter()
        try:
            nb = execute(notebook)
        except nbclient.exceptions.CellExecutionError as error:
            failures[notebook.name] = [str(error)[-2000:]]
            continue
        nbformat.write(nb, OUT / notebook.name)
        seconds = time.perf_counter() - start
        print(f"colab-check: {notebook.name} ran in {seconds:.0f} s", file=sys.stderr)
        if found := problems(nb, nbformat.read(notebook, as_version=4)):
            failures[notebook.name] = found
    for name, found in failures.items():
        print(f"colab-check: {name}:\n  " + "\n  ".join(found), file=sys.stderr)
    if failures:
        fail(f"{len(failures)} of {len(notebooks)} notebooks failed in the Colab-like environment")
    print(f"colab-check: {len(notebooks)} notebooks ran clean; executed copies in {OUT}")


if __name__ == "__main__":
    main()
