"""scripts/jupyterlab_check.py without JupyterLab: the notebook and the kernel it sets up.

The check itself (JupyterLab, Chromium) is a make target run before resolving, not a test."""

from __future__ import annotations

import json
import sys

import nbformat
import pytest
from book_site import ROOT, load_script


@pytest.fixture(scope="module")
def check():
    return load_script("jupyterlab_check")


def test_the_notebook_shows_both_panels_on_the_check_kernel(check, tmp_path) -> None:
    notebook = nbformat.read(check.write_notebook(tmp_path), as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata.kernelspec.name == check.KERNEL
    source = "\n".join(cell.source for cell in notebook.cells)
    assert "SweepPanel(sweeper" in source and "PhotoPanel(net" in source
    assert ".run()" not in source  # the sweeps are started by clicks


def test_the_kernel_runs_this_python_on_this_checkout(check, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("D2LHELPERS_DATA_SOURCE", "standin")
    check.write_kernel(tmp_path)
    spec = json.loads((tmp_path / "kernels" / check.KERNEL / "kernel.json").read_text())
    assert spec["argv"][:3] == [sys.executable, "-m", "ipykernel_launcher"]
    assert spec["env"]["PYTHONPATH"].split(":")[0] == str(ROOT)
    assert spec["env"]["D2LHELPERS_DATA_SOURCE"] == "standin"


def test_the_kernel_can_be_another_python(check, tmp_path) -> None:
    """The classic check's kernel is the Colab-like environment's Python (ipykernel 6.17)."""
    check.write_kernel(tmp_path, "/opt/colab/bin/python")
    spec = json.loads((tmp_path / "kernels" / check.KERNEL / "kernel.json").read_text())
    assert spec["argv"][:3] == ["/opt/colab/bin/python", "-m", "ipykernel_launcher"]


@pytest.mark.parametrize(
    ("front_end", "app", "path"),
    [
        ("lab", "ServerApp", "/lab/tree/check.ipynb"),
        ("classic", "NotebookApp", "/notebooks/check.ipynb"),
    ],
)
def test_each_front_end_serves_the_folder_on_localhost(
    check, tmp_path, front_end, app, path
) -> None:
    command = check.server_command("/env/bin/jupyter", front_end, 8123, tmp_path)
    assert command[:2] == ["/env/bin/jupyter", "lab" if front_end == "lab" else "notebook"]
    assert "--ip=127.0.0.1" in command and "--port=8123" in command
    assert f"--{app}.token={check.TOKEN}" in command
    assert any(arg.startswith(f"--{app}.") and arg.endswith(str(tmp_path)) for arg in command)
    assert check.notebook_url("http://127.0.0.1:8123", front_end).startswith(
        f"http://127.0.0.1:8123{path}?token="
    )
