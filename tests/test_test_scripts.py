"""The maintainers' scripts that execute the pages and report on them: the shared notebook
executor, the count of runs per notebook in ``make test``, and ``make budget``'s table."""

from __future__ import annotations

import stat

import nbformat
import pytest
from book_site import ROOT, load_script


@pytest.fixture(scope="module")
def notebook_runs():
    return load_script("notebook_runs")


@pytest.fixture(scope="module")
def notebook_exec():
    return load_script("notebook_exec")


@pytest.fixture(scope="module")
def budget():
    return load_script("budget")


BOOK_LOG = """\
reading sources... [ 33%] chapters/exercises
/work/main/chapters/exercises.ipynb: Executing notebook using local CWD [mystnb]
/work/main/chapters/exercises.ipynb: Executed notebook in 301.20 seconds [mystnb]
/work/main/chapters/fine-tuning.ipynb: Executing notebook using local CWD [mystnb]
"""


def test_runs_are_counted_per_notebook_and_kind(notebook_runs, tmp_path) -> None:
    log = tmp_path / "runs.log"
    notebook_runs.record_run(str(log), "exercises.ipynb", notebook_runs.SHORT_RUN)
    notebook_runs.record_run(str(log), "fine-tuning.ipynb", notebook_runs.SHORT_RUN)
    notebook_runs.record_run("", "nowhere.ipynb", notebook_runs.SHORT_RUN)  # no log: nothing
    runs = notebook_runs.count_runs(log.read_text(), BOOK_LOG)
    full, short = notebook_runs.FULL_RUN, notebook_runs.SHORT_RUN
    assert runs["exercises.ipynb"] == {short: 1, full: 1}
    assert runs["fine-tuning.ipynb"] == {short: 1, full: 1}
    assert "nowhere.ipynb" not in runs


def test_every_chapter_is_listed_even_when_it_did_not_run(notebook_runs) -> None:
    runs = notebook_runs.count_runs("", "")
    assert set(runs) == {p.name for p in (ROOT / "chapters").glob("*.ipynb")}
    assert all(sum(by.values()) == 0 for by in runs.values())


def test_a_second_full_or_short_run_fails(notebook_runs, tmp_path, capsys) -> None:
    runs_log, book_log = tmp_path / "runs.log", tmp_path / "book.log"
    short = notebook_runs.SHORT_RUN
    runs_log.write_text(f"exercises.ipynb\t{short}\n")
    book_log.write_text(BOOK_LOG)
    assert notebook_runs.main(str(runs_log), str(book_log)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"notebook runs: exercises.ipynb: 1 {notebook_runs.FULL_RUN}, 1 {short}" in lines
    book_log.write_text(BOOK_LOG + BOOK_LOG)  # the book executed every page twice
    assert notebook_runs.main(str(runs_log), str(book_log)) == 1
    book_log.write_text(BOOK_LOG)
    runs_log.write_text(f"exercises.ipynb\t{short}\n" * 2)
    assert notebook_runs.main(str(runs_log), str(book_log)) == 1


def test_a_page_taken_from_the_cache_is_said_so(notebook_runs, tmp_path, capsys) -> None:
    runs_log = tmp_path / "runs.log"
    runs_log.write_text(f"exercises.ipynb\t{notebook_runs.SHORT_RUN}\n")
    assert notebook_runs.main(str(runs_log), str(tmp_path / "no-book.log")) == 0
    assert "exercises.ipynb: 0 full run, book build, 1 short run" in capsys.readouterr().out


def _notebook(path, *sources: str) -> None:
    cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)


COUNTED = """\
import torch
conv = torch.nn.Conv2d(3, 4, 3)
conv(torch.zeros(5, 3, 8, 8))
with torch.no_grad():
    conv(torch.zeros(2, 3, 8, 8))
torch.nn.Conv2d(4, 4, 3)(torch.zeros(7, 4, 8, 8))  # not a first convolution
print("ENV", __import__("os").environ["NB_EXEC_TEST"])
"""


def test_execute_counts_images_and_passes_the_environment(notebook_exec, tmp_path) -> None:
    path = tmp_path / "counts.ipynb"
    _notebook(path, COUNTED)
    out = tmp_path / "out"
    run = notebook_exec.execute(path, 120, {"NB_EXEC_TEST": "yes"}, out_dir=out)
    assert run.failures == []
    assert run.facts == {"images": {"with_grad": 5, "no_grad": 2}}
    assert "ENV yes" in run.text
    assert [i for i, _ in run.cell_seconds] == [0]  # the notebook's own cell, by its index
    assert nbformat.read(out / "counts.ipynb", as_version=4).cells[1].outputs


def test_execute_fails_on_an_error_or_a_warning_and_stops_there(notebook_exec, tmp_path) -> None:
    path = tmp_path / "fails.ipynb"
    warns = "import warnings\nwarnings.warn('old API')"
    _notebook(path, "print('fine')", warns, "1 / 0", "print('never')")
    run = notebook_exec.execute(path, 120, {})
    assert len(run.failures) == 1, run.failures  # after the warning, nothing else of its own
    assert "fails.ipynb cell 1" in run.failures[0] and "UserWarning: old API" in run.failures[0]
    assert "never" not in run.text
    assert run.facts["images"] == {"with_grad": 0, "no_grad": 0}  # the postlude still ran
    path2 = tmp_path / "raises.ipynb"
    _notebook(path2, "1 / 0", "print('never')")
    failures = notebook_exec.execute(path2, 120, {}).failures
    assert len(failures) == 1 and "ZeroDivisionError" in failures[0]


def test_execute_stops_a_notebook_over_its_limit(notebook_exec, tmp_path) -> None:
    """The limit counts the kernel's start and the prelude too (2-3 s here): 6 s lets the cell
    start before the limit (with 2 s it was at times never reached), and a cell of 8 s is
    over it wherever it starts."""
    path = tmp_path / "slow.ipynb"
    _notebook(path, "import time\ntime.sleep(8)", "print('never')")
    run = notebook_exec.execute(path, 6, {})
    assert len(run.failures) == 1 and "timed out" in run.failures[0], run.failures
    assert "never" not in run.text


def test_the_budget_table_flags_a_step_over_its_budget_or_failed(budget) -> None:
    images = {"with_grad": 64000, "no_grad": 28000}
    ok = {"seconds": 200.0, "images": images, "size": 32, "failures": [], "slowest": "cell 30"}
    ok["factor"] = 1.4  # 200 s x 1.4 = 4.7 min
    text, held = budget.table({budget.STANDIN: ok, "fine-tuning.ipynb": ok})
    assert held
    assert "| fine-tuning.ipynb | 64,000 | 28,000 | 32 px | 200 | 1.40 | 4.7 | 6 | +1.3 |" in text
    over = {**ok, "seconds": 300.0}  # 7 min against 6
    text, held = budget.table({"fine-tuning.ipynb": over})
    assert not held and "-1.0 OVER" in text
    assert not budget.table({"fine-tuning.ipynb": {**ok, "factor": 2.0}})[1]  # 6.7 min
    failed = {**ok, "failures": ["cell 3: ImportError"]}
    assert not budget.table({budget.STANDIN: failed})[1]


def test_the_factor_is_read_from_the_tools_calibration(budget, tmp_path, monkeypatch) -> None:
    tool = tmp_path / "slow-cpu"
    message = "slow-cpu: bare step here 14.6 img/s ... 10.2 img/s on the slow CPU: factor 1.43"
    tool.write_text(f"#!/bin/sh\necho '{message}' >&2\n")
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    monkeypatch.delenv("SLOW_CPU_FACTOR", raising=False)
    assert budget.calibrate(tool) == pytest.approx(1.43)
    monkeypatch.setenv("SLOW_CPU_FACTOR", "0.9")
    assert budget.calibrate(tool) == pytest.approx(0.9)
    monkeypatch.delenv("SLOW_CPU_FACTOR")
    tool.write_text("#!/bin/sh\necho 'no number' >&2\n")
    with pytest.raises(SystemExit, match="no factor"):
        budget.calibrate(tool)


def test_every_page_has_a_budget(budget) -> None:
    pages = {p.name for p in (ROOT / "chapters").glob("*.ipynb")}
    assert pages | {budget.STANDIN} == set(budget.BUDGETS_MIN)
