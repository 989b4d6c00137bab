"""Run every notebook in chapters/ the way a learner on Colab does, in a Colab-like environment.

Run with the Colab-like environment's Python (``make colab-check`` builds it in .venv-colab from
scripts/colab_requirements.txt).  Steps:

1. Check that this interpreter and its kernel really are Colab-shaped (Python 3.13, IPython 7,
   ipywidgets 7) and remove any d2lhelpers left by an earlier run.
2. Read the install command from the notebooks' first cell, point its ``REPO_URL`` at this
   checkout (``git+file://…``, same ref) and run it as ``%pip`` would (``python -m pip``).
3. Fail if that install changed the version of any package the environment already had.
4. Execute each notebook once under nbval (``pytest --nbval-lax``) on the stand-in, with this
   environment's kernel: a cell that raises, a ``# NBVAL_CHECK_OUTPUT`` cell whose output
   differs from the stored one, or (plugin ``scripts/nbval_stderr.py``) a cell whose stderr
   carries a warning or an error fails the check. This one execution is both the nbval check
   and the Colab check of ``make test``.
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


def run_nbval(notebooks: list[Path]) -> int:
    """Execute the notebooks under nbval in this environment, failing on stderr warnings too."""
    command = [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env"]
    command += ["--nbval-cell-timeout", "900", "-p", "no:randomly", "-p", "nbval_stderr", "-q"]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "scripts"))
    print("colab-check: $", shlex.join(command[1:]), file=sys.stderr)
    start = time.perf_counter()
    code = subprocess.run([*command, *map(str, notebooks)], cwd=ROOT, env=env).returncode
    print(f"colab-check: nbval took {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return code


def main() -> None:
    if sys.version_info[:2] != (3, 13):
        fail(f"run me with the Colab-like environment's Python 3.13, not {sys.version}")
    os.environ.setdefault("D2LHELPERS_DATA_SOURCE", "standin")
    notebooks = sorted(CHAPTERS.glob("*.ipynb"))
    if not notebooks:
        fail(f"no notebook in {CHAPTERS}")
    install_like_colab(notebooks)
    probe_kernel()
    if run_nbval(notebooks) != 0:
        fail(f"nbval failed in the Colab-like environment (notebooks: {len(notebooks)})")
    print(f"colab-check: {len(notebooks)} notebooks ran clean under nbval")


if __name__ == "__main__":
    main()
