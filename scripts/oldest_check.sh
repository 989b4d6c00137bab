#!/usr/bin/env bash
# The lower bounds of pyproject.toml, tested (`make oldest`): an environment with exactly the
# oldest versions they allow (scripts/oldest_requirements.txt, on Python 3.10, requires-python's
# lower bound) runs the fast unit tests and executes chapters/fine-tuning.ipynb on the stand-in.
#
#   bash scripts/oldest_check.sh            # builds .venv-oldest on first use, then reuses it
#
# PYTHON310 chooses the interpreter (default: pyenv's 3.10, else python3.10 on PATH).
# torch 2.1's wheel for Linux is a CUDA build: the first install downloads several GB of
# nvidia-* wheels. Reinstalls when scripts/oldest_requirements.txt or pyproject.toml changes.
#
# Test files left out, each needing more than d2lhelpers' own dependencies and pytest:
#   tests/test_book_browser.py  the built book (make book) and Chromium driven by Playwright
#   tests/test_book_offline.py  the built book in _build/html (make book)
# (tests/test_bench_smoke.py needs d2l, pandas and scipy, but all its tests are slow: deselected.)
# Test-only packages (pytest, nbval, pyyaml, setuptools, ...) are listed in the requirements.
set -euo pipefail

cd "$(dirname "$0")/.."
venv=.venv-oldest
requirements=scripts/oldest_requirements.txt
stamp="$venv/.installed"
start=$SECONDS

python310="${PYTHON310:-}"
if [[ -z "$python310" ]]; then
    for candidate in "$HOME"/.pyenv/versions/3.10*/bin/python3.10 \
                     /root/.pyenv/versions/3.10*/bin/python3.10 \
                     "$(command -v python3.10 || true)"; do
        if [[ -n "$candidate" && -x "$candidate" ]]; then python310="$candidate"; break; fi
    done
fi
if [[ -z "$python310" ]]; then
    echo "oldest: needs Python 3.10: set PYTHON310=/path/to/python3.10" >&2
    exit 1
fi

if [[ ! -f "$stamp" || "$requirements" -nt "$stamp" || pyproject.toml -nt "$stamp" ]]; then
    [[ -x "$venv/bin/python" ]] || "$python310" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet -r "$requirements"
    "$venv/bin/python" -m pip install --quiet --no-deps -e .
    touch "$stamp"
fi
py="$venv/bin/python"

# The versions under test, as imported (not as requested).
versions="$("$py" - <<'EOF'
import platform
from importlib.metadata import version
names = ["torch", "torchvision", "numpy", "pillow", "matplotlib", "tqdm", "ipywidgets", "ipython"]
print(f"python {platform.python_version()}, " + ", ".join(f"{n} {version(n)}" for n in names))
EOF
)"
echo "oldest: $versions"

export D2LHELPERS_DATA_SOURCE=standin
export D2LHELPERS_DATA="$PWD/.data"
export PYTHONHASHSEED=0
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"

unit_start=$SECONDS
unit_log="$(mktemp)"
trap 'rm -f "$unit_log"' EXIT
unit_rc=0
"$py" -m pytest -m "not slow and not book" -q -p no:cacheprovider \
    --ignore tests/test_book_browser.py --ignore tests/test_book_offline.py 2>&1 | tee "$unit_log" || unit_rc=$?
unit_summary="$(grep -E '(passed|failed|error|no tests ran)' "$unit_log" | tail -n 1)"
unit_seconds=$((SECONDS - unit_start))

chapter_start=$SECONDS
chapter_rc=0
chapter_summary="$("$py" - chapters/fine-tuning.ipynb <<'EOF'
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

path = Path(sys.argv[1])
nb = nbformat.read(path, as_version=4)
client = NotebookClient(
    nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
)
raised = None
try:
    client.execute()
except CellExecutionError as error:  # the error output is also in the cell
    raised = error
errors, stderr = [], 0
for index, cell in enumerate(nb.cells):
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            errors.append(f"cell {index}: {output['ename']}: {output['evalue']}")
        elif output.get("output_type") == "stream" and output.get("name") == "stderr":
            stderr += 1
            print(f"cell {index} stderr: {output['text'].strip()[:500]}", file=sys.stderr)
for line in errors:
    print(line, file=sys.stderr)
if raised and not errors:
    errors.append(str(raised).splitlines()[-1])
code = sum(cell.cell_type == "code" for cell in nb.cells)
print(f"{path.name}: {code} code cells, {len(errors)} errors, {stderr} stderr outputs")
sys.exit(1 if errors else 0)
EOF
)" || chapter_rc=$?
chapter_seconds=$((SECONDS - chapter_start))

unit_word=$([[ $unit_rc == 0 ]] && echo pass || echo FAIL)
chapter_word=$([[ $chapter_rc == 0 ]] && echo pass || echo FAIL)
echo "oldest: unit $unit_word (${unit_summary:-no summary}, ${unit_seconds} s);" \
    "chapter $chapter_word (${chapter_summary:-no summary}, ${chapter_seconds} s);" \
    "$((SECONDS - start)) s in all; $versions"
[[ $unit_rc == 0 && $chapter_rc == 0 ]]
