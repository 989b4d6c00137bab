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
