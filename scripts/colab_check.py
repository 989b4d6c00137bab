"""Run every notebook in chapters/ the way a learner on Colab does, in a Colab-like environment.

Run with the Colab-like environment's Python (``make colab-check`` builds it in .venv-colab from
scripts/colab_requirements.txt). Its job is what differs on Colab (Python 3.13, torch 2.11,
IPython 7.34, ipywidgets 7.7.1): that every cell of every page runs there, cleanly. Executing
each cell is enough for that, so the pages run shortened (``D2LHELPERS_SHORT_RUN=1``: one
epoch, one seed); the full lesson runs once, in the book build, whose executed notebooks
``tests/test_book_run.py`` checks (the stored outputs of the checked cells, the lesson's
margin). Steps:

1. Check that this interpreter and its kernel really are Colab-shaped (Python 3.13, IPython 7,
   ipywidgets 7) and remove any d2lhelpers left by an earlier run.
2. Read the install command from the notebooks' first cell, point its ``REPO_URL`` at this
   checkout (``git+file://…``, same ref) and run it as ``%pip`` would (``python -m pip``).
3. Fail if that install changed the version of any package the environment already had.
4. Execute each notebook once, shortened, on the stand-in, in a kernel of this environment
   (``scripts/notebook_exec.py``): a cell that raises, or whose stderr carries a warning or an
   error, fails the check. Each run is logged to ``$NOTEBOOK_RUNS_LOG`` for ``make test``'s
   count, and the executed notebooks are written to ``_build/colab-check/``.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import nbclient
import nbformat

SCRIPTS = Path(__file__).resolve().parent
ROOT = SCRIPTS.parent
sys.path.insert(0, str(SCRIPTS))

from notebook_exec import execute  # noqa: E402
from notebook_runs import SHORT_RUN, record_run  # noqa: E402

CHAPTERS = ROOT / "chapters"
OUT_DIR = ROOT / "_build" / "colab-check"
NOTEBOOK_LIMIT_S = 1200  # per notebook; the first may build the stand-in (about 6 min slow)
REPO_URL_LINE = re.compile(r'^REPO_URL = "([^"]+)"$', re.MULTILINE)
PIP_LINE = re.compile(r"^\s*%pip (install .+)$", re.MULTILINE)
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


def probe_kernel() -> None:
    """The kernel nbclient starts must be this environment's, with Colab's versions."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(PROBE)])
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    text = nb.cells[0].outputs[0].text
    print("colab-check: kernel:", text.strip(), file=sys.stderr)
    if not text.startswith(sys.executable) or "(3, 13)" not in text or " 7." not in text:
        fail(f"the kernel is not the Colab-like one (Python 3.13, IPython 7, ipywidgets 7): {text}")


def run_short(notebooks: list[Path]) -> list[str]:
    """Execute each notebook shortened, in this environment's kernel; the failures."""
    env = {"D2LHELPERS_SHORT_RUN": "1"}
    failures = []
    for notebook in notebooks:
        record_run(os.environ.get("NOTEBOOK_RUNS_LOG"), notebook.name, SHORT_RUN)
        run = execute(notebook, NOTEBOOK_LIMIT_S, env, out_dir=OUT_DIR)
        images = run.facts.get("images", {})
        print(
            f"colab-check: {notebook.name}: {'FAILED' if run.failures else 'ok'}, "
            f"{run.seconds:.0f} s (slowest: {run.slowest()}); images through a network: "
            f"{images.get('with_grad', '?')} with gradients, {images.get('no_grad', '?')} without",
            file=sys.stderr,
        )
        failures += run.failures
    return failures


def main() -> None:
    if sys.version_info[:2] != (3, 13):
        fail(f"run me with the Colab-like environment's Python 3.13, not {sys.version}")
    os.environ.setdefault("D2LHELPERS_DATA_SOURCE", "standin")
    notebooks = sorted(CHAPTERS.glob("*.ipynb"))
    if not notebooks:
        fail(f"no notebook in {CHAPTERS}")
    install_like_colab(notebooks)
    probe_kernel()
    failures = run_short(notebooks)
    for failure in failures:
        print(f"colab-check: FAILED: {failure}", file=sys.stderr)
    if failures:
        fail(f"the notebooks failed in the Colab-like environment; executed copies in {OUT_DIR}")
    print(f"colab-check: {len(notebooks)} notebooks ran clean (shortened) in the Colab-like env")


if __name__ == "__main__":
    main()
