"""scripts/colab_check.py: the install command it derives and the outputs it rejects."""

from __future__ import annotations

import os
import subprocess
import sys

import nbformat
import pytest
from book_site import ROOT, load_script


@pytest.fixture(scope="module")
def colab_check():
    return load_script("colab_check")


def test_the_install_is_the_notebooks_command_pointed_at_this_checkout(colab_check) -> None:
    command = colab_check.colab_install_command(ROOT / "chapters" / "fine-tuning.ipynb")
    assert command == [
        sys.executable, "-m", "pip", "install", "--quiet",
        f"d2lhelpers @ git+file://{ROOT}@main",
    ]  # fmt: skip


def test_every_notebook_installs_the_same_way(colab_check) -> None:
    commands = {
        tuple(colab_check.colab_install_command(nb)) for nb in (ROOT / "chapters").glob("*.ipynb")
    }
    assert len(commands) == 1


def test_a_notebook_without_the_install_cell_is_refused(colab_check, tmp_path) -> None:
    path = tmp_path / "bare.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1)")]), path)
    with pytest.raises(SystemExit, match="no REPO_URL line"):
        colab_check.colab_install_command(path)


@pytest.fixture(scope="module")
def notebook_exec():
    return load_script("notebook_exec")


def test_stderr_with_a_warning_or_an_error_is_a_problem(notebook_exec) -> None:
    new = nbformat.v4.new_output
    outputs = [
        new("stream", name="stderr", text="UserWarning: x\n"),
        new("stream", name="stderr", text="epoch 1/5"),
        new("stream", name="stdout", text="Error rate"),
        new("stream", name="stderr", text="Traceback (most recent call last)"),
        new("display_data", data={"text/plain": "Warning"}),
    ]
    assert notebook_exec.stderr_problems(outputs) == [
        "UserWarning: x",
        "Traceback (most recent call last)",
    ]


_FAILING_NOTEBOOK = """\
import warnings
warnings.warn("old API")
"""


def test_the_nbval_plugin_fails_a_notebook_cell_that_warns(tmp_path) -> None:
    v4 = nbformat.v4
    path = tmp_path / "warns.ipynb"
    cells = [v4.new_code_cell("print('fine')"), v4.new_code_cell(_FAILING_NOTEBOOK)]
    nbformat.write(v4.new_notebook(cells=cells), path)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "scripts"))
    command = [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env"]
    command += ["-p", "nbval_stderr", "-p", "no:randomly", "-q", "-p", "no:cacheprovider"]
    done = subprocess.run(
        [*command, str(path)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1, done.stdout
    assert "1 failed, 1 passed" in done.stdout
    assert "UserWarning: old API" in done.stdout
