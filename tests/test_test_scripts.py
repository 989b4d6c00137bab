"""The maintainers' scripts that report on ``make test``: runs per notebook and cell times."""

from __future__ import annotations

import pytest
from book_site import ROOT, load_script


@pytest.fixture(scope="module")
def notebook_runs():
    return load_script("notebook_runs")


@pytest.fixture(scope="module")
def cell_times():
    return load_script("cell_times")


BOOK_LOG = """\
reading sources... [ 33%] chapters/exercises
/work/main/chapters/exercises.ipynb: Executing notebook using local CWD [mystnb]
/work/main/chapters/exercises.ipynb: Executed notebook in 301.20 seconds [mystnb]
/work/main/chapters/fine-tuning.ipynb: Executing notebook using local CWD [mystnb]
"""


def test_runs_are_counted_per_notebook_and_executor(notebook_runs) -> None:
    runs_log = "exercises.ipynb\tnbval\nfine-tuning.ipynb\tnbval\n"
    runs = notebook_runs.count_runs(runs_log, BOOK_LOG)
    assert runs["exercises.ipynb"] == {"nbval": 1, "book build": 1}
    assert runs["fine-tuning.ipynb"] == {"nbval": 1, "book build": 1}


def test_every_chapter_is_listed_even_when_it_did_not_run(notebook_runs) -> None:
    runs = notebook_runs.count_runs("", "")
    assert set(runs) == {p.name for p in (ROOT / "chapters").glob("*.ipynb")}
    assert all(sum(by.values()) == 0 for by in runs.values())


def test_a_third_run_fails(notebook_runs, tmp_path, capsys) -> None:
    runs_log, book_log = tmp_path / "runs.log", tmp_path / "book.log"
    runs_log.write_text("exercises.ipynb\tnbval\nexercises.ipynb\tnbval\n")
    book_log.write_text(BOOK_LOG)
    assert notebook_runs.main(str(runs_log), str(book_log)) == 1
    out = capsys.readouterr().out
    assert "exercises.ipynb: 3 (book build 1, nbval 2)" in out
    runs_log.write_text("exercises.ipynb\tnbval\n")
    assert notebook_runs.main(str(runs_log), str(book_log)) == 0


def test_cell_seconds_reads_nbclients_timestamps(cell_times) -> None:
    timing = {
        "iopub.execute_input": "2026-12-01T16:00:00.250000Z",
        "shell.execute_reply": "2026-12-01T16:02:01.000000Z",
    }
    assert cell_times.cell_seconds({"metadata": {"execution": timing}}) == pytest.approx(120.75)
    assert cell_times.cell_seconds({"metadata": {}}) is None
    assert cell_times.first_line("# comment\nx = train(net)\n") == "x = train(net)"
