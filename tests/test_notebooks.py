"""The committed notebooks: outputs only in checked cells, Colab links that match the config."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import nbformat
import pytest
import yaml
from book_site import ROOT, book_config

NOTEBOOKS = sorted((ROOT / "chapters").glob("*.ipynb"))
CHECK_TAG = "nbval-check-output"


def code_cells(path: Path) -> list:
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def checked(cell) -> bool:
    return CHECK_TAG in cell.metadata.get("tags", [])


def test_there_are_notebooks() -> None:
    assert NOTEBOOKS, "no notebook in chapters/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_only_checked_cells_keep_outputs(path: Path) -> None:
    cells = code_cells(path)
    assert any(checked(c) for c in cells), f"{path.name} has no output-checked cell"
    for cell in cells:
        if checked(cell):
            assert cell.outputs, f"checked cell without stored output: {cell.source[:60]!r}"
        else:
            assert not cell.outputs, f"unchecked cell with stored output: {cell.source[:60]!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_checked_outputs_hold_no_progress_bars_or_figures(path: Path) -> None:
    for cell in code_cells(path):
        for output in cell.outputs:
            assert output.get("name") != "stderr", f"stderr in a checked cell of {path.name}"
            data = output.get("data", {})
            assert "image/png" not in data, f"figure in a checked cell of {path.name}"
            assert "application/vnd.jupyter.widget-view+json" not in data


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_colab_cell_installs_from_the_configured_repository(path: Path) -> None:
    repo = book_config()["repository"]["url"].rstrip("/")
    branch = book_config()["repository"]["branch"]
    first = code_cells(path)[0].source
    assert f'REPO_URL = "{repo}"' in first
    assert '"google.colab" in sys.modules' in first
    assert f"git+{{REPO_URL}}@{branch}" in first
    installs = [line for line in first.splitlines() if "pip install" in line]
    assert installs, "the first cell installs nothing"
    for line in installs:
        words = set(line.lower().replace('"', " ").split())
        assert not words & {"torch", "torchvision", "numpy", "ipython", "ipywidgets"}, line
        assert "--upgrade" not in words and "-u" not in words, line


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_open_in_colab_link_points_at_this_notebook_on_main(path: Path) -> None:
    repo = book_config()["repository"]["url"].rstrip("/")
    colab = repo.replace("https://github.com", "https://colab.research.google.com/github")
    first_markdown = nbformat.read(path, as_version=4).cells[0].source
    expected = f"{colab}/blob/{book_config()['repository']['branch']}/{path.relative_to(ROOT)}"
    assert f"({expected})" in first_markdown


def test_config_has_launch_and_repository_settings() -> None:
    cfg = book_config()
    assert cfg["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert cfg["repository"]["branch"] == "main"
    assert cfg["sphinx"]["config"]["language"] == "zh_CN"
    assert cfg["execute"]["raise_on_error"] is True
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    listed = {entry["file"] for entry in toc["chapters"]}
    assert listed == {str(p.relative_to(ROOT).with_suffix("")) for p in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_test_markers_are_tags_not_code(path: Path) -> None:
    for cell in code_cells(path):
        assert "NBVAL" not in cell.source.upper(), cell.source[:60]


def display_width(line: str) -> int:
    """Columns a line takes in a monospace font: a Chinese (wide) character takes two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_shown_code_fits_the_code_column(path: Path) -> None:
    """Code the book shows (not hidden behind hide-input) fits the code column: 77 columns
    (the browser test measures the column itself: 78 needed a scroll bar)."""
    for cell in code_cells(path):
        if "hide-input" in cell.metadata.get("tags", []):
            continue
        for line in cell.source.splitlines():
            assert display_width(line) <= 77, f"{path.name}: {line!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_cell_is_folded_by_hand_for_the_formatter(path: Path) -> None:
    """Code is written to fit the column: no `# fmt: skip` / `# fmt: off` in any cell."""
    for cell in code_cells(path):
        assert "fmt:" not in cell.source, f"{path.name}: {cell.source[:80]!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_chinese_prose_uses_full_width_quotes(path: Path) -> None:
    """Outside code spans, Chinese text quotes with “…”, never ASCII double quotes."""
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type != "markdown":
            continue
        prose = re.sub(r"`[^`]*`", "", re.sub(r"\(([^)]*)\)", "", cell.source))
        assert '"' not in prose, f"{path.name}: {cell.source[:80]!r}"
