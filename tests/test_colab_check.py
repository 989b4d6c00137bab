"""scripts/colab_check.py: the install command it derives and the outputs it rejects."""

from __future__ import annotations

import importlib.util
import sys

import nbformat
import pytest
from book_site import ROOT


@pytest.fixture(scope="module")
def colab_check():
    spec = importlib.util.spec_from_file_location("colab_check", ROOT / "scripts/colab_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


def test_errors_and_warnings_on_stderr_are_problems_but_plain_stderr_is_not(colab_check) -> None:
    v4 = nbformat.v4
    nb = v4.new_notebook(
        cells=[
            v4.new_code_cell(outputs=[v4.new_output("error", ename="ValueError", evalue="bad")]),
            v4.new_code_cell(
                outputs=[v4.new_output("stream", name="stderr", text="UserWarning: old API")]
            ),
            v4.new_code_cell(outputs=[v4.new_output("stream", name="stderr", text="epoch 1/5")]),
            v4.new_code_cell(outputs=[v4.new_output("stream", name="stdout", text="Error rate")]),
        ]
    )
    assert colab_check.problems(nb) == [
        "cell 0: ValueError: bad",
        "cell 1 stderr: UserWarning: old API",
    ]
