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


def test_errors_warnings_and_changed_checked_outputs_are_problems(colab_check) -> None:
    v4 = nbformat.v4
    stream = v4.new_output

    def notebook(checked_text: str) -> nbformat.NotebookNode:
        return v4.new_notebook(
            cells=[
                v4.new_code_cell(outputs=[stream("error", ename="ValueError", evalue="bad")]),
                v4.new_code_cell(outputs=[stream("stream", name="stderr", text="UserWarning: x")]),
                v4.new_code_cell(outputs=[stream("stream", name="stderr", text="epoch 1/5")]),
                v4.new_code_cell(outputs=[stream("stream", name="stdout", text="Error rate")]),
                v4.new_code_cell(
                    "# NBVAL_CHECK_OUTPUT\nprint(n)",
                    outputs=[stream("stream", name="stdout", text=checked_text)],
                ),
            ]
        )

    stored = notebook("n = 1\n")
    expected = ["cell 0: ValueError: bad", "cell 1 stderr: UserWarning: x"]
    assert colab_check.problems(notebook("n = 1\n"), stored) == expected
    changed = colab_check.problems(notebook("n = 2\n"), stored)
    assert changed[:2] == expected
    assert changed[2].startswith("cell 4: ['n = 2\\n'] differs from stored ['n = 1\\n']")
