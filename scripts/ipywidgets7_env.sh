#!/usr/bin/env bash
# Install ipywidgets 7.7.1 (the version Colab ships) into a folder, for testing beside the main env:
#
#   bash scripts/ipywidgets7_env.sh /tmp/ipyw7
#   PYTHONPATH=/tmp/ipyw7 python -m pytest tests/test_widgets.py
#
# Only the widget packages go into the folder (--no-deps), so the main environment's torch,
# IPython, ipykernel and traitlets are reused. ipywidgets 7.7.1 imports ipython_genutils, which
# newer environments lack; widgetsnbextension and jupyterlab_widgets are its front-end halves
# (not imported by the Python side), pinned to the versions released with it.
# PYTHON chooses the interpreter (default python3). Running it again is a no-op.
set -euo pipefail

target="${1:?usage: $0 TARGET_FOLDER}"
python="${PYTHON:-python3}"
version="7.7.1"

installed_version() {
    # The version recorded in the folder's ipywidgets/_version.py, without importing it.
    "$python" - "$target" <<'EOF'
import re, sys
from pathlib import Path
path = Path(sys.argv[1]) / "ipywidgets" / "_version.py"
match = path.exists() and re.search(r"version_info\s*=\s*\((\d+),\s*(\d+),\s*(\d+)", path.read_text())
print(".".join(match.groups()) if match else "")
EOF
}

if [[ -f "$target/ipywidgets/__init__.py" && -f "$target/ipython_genutils/__init__.py" \
      && "$(installed_version)" == "$version" ]]; then
    echo "ipywidgets $version already in $target"
    exit 0
fi

mkdir -p "$target"
PIP_ROOT_USER_ACTION=ignore "$python" -m pip install --quiet --no-deps --upgrade --target "$target" \
    "ipywidgets==$version" \
    "ipython_genutils==0.2.0" \
    "widgetsnbextension==3.6.1" \
    "jupyterlab_widgets==1.1.1"

# Importing it needs IPython, ipykernel and traitlets: those of the environment that runs the tests.
if ! found="$(PYTHONPATH="$target" "$python" -c 'import ipywidgets; print(ipywidgets.__version__)')"
then
    echo "ipywidgets $version is in $target but does not import with $python;" \
        "set PYTHON to the python of the environment that runs the tests" >&2
    exit 1
fi
if [[ "$found" != "$version" ]]; then
    echo "expected ipywidgets $version from $target, imported $found" >&2
    exit 1
fi
echo "ipywidgets $found installed in $target"
