"""The book build's run of each page: the one full run of the lesson in ``make test``.

The book build executes every notebook in full (``make book``) and keeps its outputs in its
execution cache (``_build/.jupyter_cache``). These tests read them instead of running the pages
again:

* every cell tagged ``nbval-check-output`` printed what the committed notebook stores (what
  nbval compares; a difference fails with a diff, as nbval's does);
* the lesson holds on the page's own numbers, means over the chapter's seeds, as the real
  photos show it (d2l: fine-tuned 0.94, from scratch 0.84): the fine-tuned model at
  :data:`FINE_TUNED_ACCURACY` or better, the one trained from scratch learning (at
  :data:`SCRATCH_ACCURACY` or better, its training loss below ln 2, a constant guess's), and
  fine-tuning ahead by at least :data:`MARGIN`, the two seed ranges apart. (Only the stand-in
  runs here; the real branch's short run is checked by ``make real-check``.)

Run after ``make book`` (``make book-checks``; marked ``book``).
"""

from __future__ import annotations

import difflib
import math
import re
from pathlib import Path
from statistics import mean

import nbformat
import pytest
from book_site import ROOT
from jupyter_cache import get_cache

from d2lhelpers.book.labels import status_label
from d2lhelpers.chapter import SEEDS

pytestmark = pytest.mark.book

EXECUTED = ROOT / "_build" / "jupyter_execute" / "chapters"
CACHE = ROOT / "_build" / ".jupyter_cache"  # the book build's execution cache (myst-nb's default)
CHECK_TAG = "nbval-check-output"
# The lesson's shape, means over the seeds (issue "the lesson a reader can copy", point 3)
FINE_TUNED_ACCURACY = 0.85  # test accuracy
# Means over the chapter's seeds, 2026-12-05: 0.690 in bf16, 0.694 in fp32 (as the slow CPU class
# trains); with crops of 30% instead of 50% fp32 gave 0.635, below this floor.
SCRATCH_ACCURACY = 0.65
MARGIN = 0.08  # test accuracy, fine-tuned minus scratch
RESULT_ROW = re.compile(
    r"^\| (?P<model>微调|从头训练) \| (?P<seed>\d+) \| (?P<loss>[\d.]+) \| (?P<train>[\d.]+) "
    r"\| (?P<acc>[\d.]+) \| (?P<status>[^|]+) \|$",
    re.MULTILINE,
)


def executed(name: str) -> nbformat.NotebookNode:
    """The book build's run of ``chapters/<name>``: the page with the outputs that the build's
    execution cache holds for its code; fails when there is none.

    Read from the cache, not from ``_build/jupyter_execute``: when a build reuses the cache,
    myst-nb writes the executed copy there without the cached outputs.
    """
    source = nbformat.read(ROOT / "chapters" / name, as_version=4)
    try:
        _, nb = get_cache(str(CACHE)).merge_match_into_notebook(source)
    except KeyError:
        pytest.fail(f"no run of {name} in {CACHE} matches its code: run make book.", pytrace=False)
    return nb


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def comparable(outputs: list) -> list[str]:
    """A cell's outputs as nbval compares them: streams joined per name, then each result's
    text representations; execution counts, metadata, figures and widgets left out (a
    widget, such as tqdm's bar while a cache is first decoded, shows progress, not a
    result)."""
    streams: dict[str, str] = {}
    parts = []
    for out in outputs:
        if out.output_type == "stream":
            streams[out.name] = streams.get(out.name, "") + out.text
        elif out.output_type in ("execute_result", "display_data"):
            if WIDGET_VIEW in out.data:
                continue
            texts = sorted((m, t) for m, t in out.data.items() if m.startswith("text/"))
            parts += [f"{mime}:\n{text}" for mime, text in texts]
        elif out.output_type == "error":
            parts.append(f"error:\n{out.ename}: {out.evalue}")
    return [f"{name}:\n{text}" for name, text in streams.items()] + parts


def checked_cells() -> list[tuple[str, str]]:
    """(notebook name, cell id) of every checked cell in the committed notebooks."""
    return [
        (path.name, cell.id)
        for path in sorted((ROOT / "chapters").glob("*.ipynb"))
        for cell in nbformat.read(path, as_version=4).cells
        if cell.cell_type == "code" and CHECK_TAG in cell.metadata.get("tags", [])
    ]


def cell_by_id(nb: nbformat.NotebookNode, cell_id: str) -> nbformat.NotebookNode:
    found = [c for c in nb.cells if c.get("id") == cell_id]
    assert found, f"no cell with id {cell_id} in the executed notebook"
    return found[0]


CHECKED = checked_cells()


@pytest.mark.parametrize(("name", "cell_id"), CHECKED, ids=[f"{n}:{c}" for n, c in CHECKED])
def test_checked_cells_print_what_the_notebook_stores(name: str, cell_id: str) -> None:
    stored = cell_by_id(nbformat.read(ROOT / "chapters" / name, as_version=4), cell_id)
    ran = cell_by_id(executed(name), cell_id)
    expected, got = comparable(stored.outputs), comparable(ran.outputs)
    if expected != got:
        diff = difflib.unified_diff(
            "\n".join(expected).splitlines(),
            "\n".join(got).splitlines(),
            "stored in the notebook",
            "the book build's run",
            lineterm="",
        )
        pytest.fail(
            f"{name}, cell {cell_id} ({stored.source.splitlines()[0]!r}) printed other outputs "
            "than the notebook stores:\n" + "\n".join(diff),
            pytrace=False,
        )


def results_table(nb: nbformat.NotebookNode) -> dict[str, list[dict]]:
    """The rows of the chapter's results table (模型、种子、训练损失、训练精度、测试精度、状态), by
    model."""
    rows: dict[str, list[dict]] = {"微调": [], "从头训练": []}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            for match in RESULT_ROW.finditer(out.get("data", {}).get("text/markdown", "")):
                rows[match["model"]].append(match.groupdict())
    return rows


def test_the_lesson_holds_on_the_chapters_own_run() -> None:
    rows = results_table(executed("fine-tuning.ipynb"))
    for model, runs in rows.items():
        assert [int(r["seed"]) for r in runs] == list(SEEDS), f"{model}: seeds of {runs}"
        assert {r["status"].strip() for r in runs} == {status_label("ok")}, f"{model}: {runs}"
    tuned = [float(r["acc"]) for r in rows["微调"]]
    scratch = [float(r["acc"]) for r in rows["从头训练"]]
    assert mean(tuned) >= FINE_TUNED_ACCURACY, f"fine-tuned test accuracy {tuned}"
    assert mean(scratch) >= SCRATCH_ACCURACY, f"from-scratch test accuracy {scratch}"
    for model, runs in rows.items():
        losses = [float(r["loss"]) for r in runs]
        assert mean(losses) < math.log(2), f"{model}: final training loss {losses} above ln 2"
    gap = mean(tuned) - mean(scratch)
    assert gap >= MARGIN, f"fine-tuned {tuned} vs scratch {scratch}: mean gap {gap:.3f}"
    assert min(tuned) > max(scratch), f"seed ranges overlap: fine-tuned {tuned}, scratch {scratch}"


def _spread_pattern(name: str) -> str:
    """A column "0.914 (0.905 to 0.920)" as the pages write it, with full-width brackets and tilde:
    the mean as ``name``, the seed range as ``name_low`` and ``name_high``."""
    number = "[0-9.]+"
    left, tilde, right = "\uff08", "\uff5e", "\uff09"
    return (
        f"(?P<{name}>{number}){left}(?P<{name}_low>{number}){tilde}(?P<{name}_high>{number}){right}"
    )


TECHNIQUE_ROW = re.compile(
    rf"^\| (?P<name>[^|]+?) \| {_spread_pattern('test')} \| {_spread_pattern('shift')} \|$",
    re.MULTILINE,
)
TECHNIQUES = ("完整微调", "范围测试建议的学习率", "分层学习率", "线性探测", "LP-FT")


def technique_rows(nb: nbformat.NotebookNode) -> dict[str, dict[str, float]]:
    """The rows of the techniques page's tables (做法、测试精度、偏移测试集精度, each a mean and
    its seed range), by the method's name; a later table's row replaces an earlier one's."""
    rows = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            for match in TECHNIQUE_ROW.finditer(out.get("data", {}).get("text/markdown", "")):
                values = {k: float(v) for k, v in match.groupdict().items() if k != "name"}
                rows[match["name"]] = values
    return rows


def test_every_technique_learns_and_the_shifted_set_is_a_shift() -> None:
    """Each method of the techniques page trained models that learn, and every one of them lost
    accuracy on the shifted test set beyond its seeds' range: the stand-in's shift is real."""
    rows = technique_rows(executed("techniques.ipynb"))
    for technique in TECHNIQUES:
        found = [name for name in rows if name.startswith(technique)]
        assert found, f"no row for {technique} in {list(rows)}"
    assert len(rows) == len(TECHNIQUES), list(rows)
    for name, r in rows.items():
        assert r["test_low"] <= r["test"] <= r["test_high"], (name, r)
        assert r["test"] >= FINE_TUNED_ACCURACY, f"{name}: test accuracy {r}"
        assert r["shift_high"] < r["test_low"], f"{name}: the shifted set cost nothing: {r}"


def test_the_rows_are_read_from_a_markdown_output() -> None:
    table = "| 模型 | 种子 | 训练损失 | 训练精度 | 测试精度 | 状态 |\n|---|---|---|---|---|---|\n"
    table += "| 微调 | 0 | 0.512 | 0.801 | 0.733 | 完成 |\n"
    table += "| 从头训练 | 0 | 0.690 | 0.555 | 0.571 | 完成 |"
    output = nbformat.v4.new_output("display_data", data={"text/markdown": table})
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(outputs=[output])])
    rows = results_table(nb)
    assert [(r["seed"], r["acc"]) for r in rows["微调"]] == [("0", "0.733")]
    assert [(r["seed"], r["loss"]) for r in rows["从头训练"]] == [("0", "0.690")]


def test_outputs_compare_as_nbval_does() -> None:
    new = nbformat.v4.new_output
    first = [new("stream", name="stdout", text="a\n"), new("stream", name="stdout", text="b\n")]
    second = [new("stream", name="stdout", text="a\nb\n")]
    assert comparable(first) == comparable(second)
    result = new("execute_result", data={"text/plain": "Linear(2)"}, execution_count=3)
    other = new("execute_result", data={"text/plain": "Linear(2)"}, execution_count=9)
    assert comparable([result]) == comparable([other])
    assert comparable([result]) != comparable([new("execute_result", data={"text/plain": "x"})])


def test_the_executed_copies_are_where_the_book_build_leaves_them() -> None:
    names = {p.name for p in (ROOT / "chapters").glob("*.ipynb")}
    assert names == {p.name for p in Path(EXECUTED).glob("*.ipynb")}
