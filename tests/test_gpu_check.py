"""The GPU check's own pieces (scripts/gpu_check.py), without a GPU: the wheel list, what is
installed, the summary of a run whose step fails, the report's files, the pages' training
lines. ``make gpu-check-dry`` runs the whole check at tiny sizes on the CPU."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest
from book_site import load_script


@pytest.fixture(scope="module")
def gc():
    return load_script("gpu_check")


def config(gc, tmp_path: Path, steps: tuple[str, ...] = (), budget: float = 60):
    """A dry run's Config writing into ``tmp_path``."""
    return gc.Config(True, "cpu", gc.DRY, tmp_path, tmp_path, budget, steps)


def ok(gc, lines: list[str]):
    """A step that finds ``lines``."""
    return lambda cfg: gc.Outcome(lines)


# ---- the wheels ----------------------------------------------------------------------------


def test_the_wheel_list_carries_nothing_the_gpu_machine_has(gc) -> None:
    pins = gc.read_requirements()
    assert not set(pins) & gc.MACHINE_HAS
    assert {"torch", "torchvision", "numpy", "pillow", "matplotlib"} <= gc.MACHINE_HAS
    assert set(pins) >= gc.ROOTS and pins["d2l"] == "1.0.3"


def test_an_unpinned_requirement_is_refused(gc, tmp_path) -> None:
    path = tmp_path / "req.txt"
    path.write_text("# comment\nipython==9.18.1  # pinned\nnbclient>=0.10\n")
    with pytest.raises(ValueError, match=r"nbclient>=0\.10"):
        gc.read_requirements(path)


def test_only_wheels_absent_or_at_another_version_are_installed(gc) -> None:
    wheels = [
        Path("ipython-9.18.1-py3-none-any.whl"),
        Path("jupyter_client-8.10.0-py3-none-any.whl"),
        Path("d2l-1.0.3-py3-none-any.whl"),
    ]
    here = {"ipython": "9.18.1", "jupyter-client": "8.9.0"}
    assert gc.to_install(wheels, here.get) == wheels[1:]


def test_missing_modules_are_named(gc) -> None:
    assert gc.missing_modules(["json", "gpu_check_no_such_module"]) == ["gpu_check_no_such_module"]


def test_a_module_still_missing_after_the_install_says_what_to_do(gc, tmp_path, monkeypatch):
    monkeypatch.setattr(gc, "WHEELS", tmp_path / "no-wheels")
    monkeypatch.setattr(gc, "NEEDED_MODULES", ("json", "gpu_check_no_such_module"))
    with pytest.raises(gc.StepFailed, match=r"gpu_check_no_such_module: run `make gpu-carry`"):
        gc.step_install(config(gc, tmp_path))


def fake_wheel(folder: Path, name: str, version: str, requires: list[str]) -> Path:
    path = folder / f"{name}-{version}-py3-none-any.whl"
    metadata = f"Name: {name}\nVersion: {version}\n" + "".join(
        f"Requires-Dist: {r}\n" for r in requires
    )
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{name}-{version}.dist-info/METADATA", metadata)
    return path


def test_the_wheels_needs_are_checked(gc, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(gc, "ROOTS", frozenset({"a"}))
    requires = [
        "b>=2",  # carried, at another version
        "c",  # neither carried nor on the GPU machine
        "packaging>=22",  # on the GPU machine
        "colorama; sys_platform == 'win32'",  # not on Linux
        "pytest-cov; extra == 'test'",  # an extra
    ]
    wheels = {
        "a": fake_wheel(tmp_path, "a", "1.0", requires),
        "b": fake_wheel(tmp_path, "b", "1.0", []),
        "unused": fake_wheel(tmp_path, "unused", "1.0", []),
    }
    pins = {"a": "1.0", "b": "1.0", "unused": "1.0", "gone": "2.0"}
    problems = gc.closure_problems(wheels, pins)
    assert problems[0] == "no wheel of gone==2.0"
    assert any("requires b>=2; the carried wheel is another" in p for p in problems)
    assert any("requires c, which is neither carried nor on the GPU machine" in p for p in problems)
    assert problems[-1] == "unused is carried but nothing needs it"
    assert len(problems) == 4


# ---- running the steps ---------------------------------------------------------------------


def test_a_failing_step_is_summarised_and_the_next_ones_run(gc, tmp_path, capsys, monkeypatch):
    def fails(cfg):
        raise gc.StepFailed("pytest exited with 1:\n1 failed")

    def crashes(cfg):
        raise KeyError("rows")

    steps = {"install": ok(gc, ["nothing to install"]), "probe": ok(gc, ["CPU"]), "tests": fails}
    steps |= {"memory": crashes, "loop": ok(gc, ["0.95"])}
    monkeypatch.setattr(gc, "STEP_FUNCTIONS", steps)
    assert gc.check(config(gc, tmp_path, ("tests", "memory", "loop")), ["--dry"]) == 1
    out = capsys.readouterr().out
    assert "tests: FAILED" in out and "    1 failed" in out
    assert "memory: FAILED" in out and "KeyError: 'rows'" in out
    assert "loop: ok" in out and "gpu-check: FAILED: tests, memory" in out
    report = json.loads((tmp_path / "cuda.json").read_text())
    assert [s["status"] for s in report["steps"]] == ["ok", "ok", "FAILED", "FAILED", "ok"]
    assert "| tests | FAILED |" in (tmp_path / "cuda.md").read_text()


def test_a_failed_install_leaves_the_rest_not_run(gc, tmp_path, capsys, monkeypatch) -> None:
    def fails(cfg):
        raise gc.StepFailed("cannot import nbclient")

    monkeypatch.setattr(gc, "STEP_FUNCTIONS", {"install": fails, "probe": ok(gc, ["CPU"])})
    assert gc.check(config(gc, tmp_path), []) == 1
    out = capsys.readouterr().out
    assert "install: FAILED" in out and "probe: not run" in out


def test_a_signal_is_recorded_and_the_summary_still_written(gc, tmp_path, capsys, monkeypatch):
    def stopped(cfg):
        raise SystemExit("stopped by SIGTERM (signal 15)")

    steps = {"install": ok(gc, []), "probe": ok(gc, []), "tests": stopped}
    monkeypatch.setattr(gc, "STEP_FUNCTIONS", steps)
    with pytest.raises(SystemExit):
        gc.check(config(gc, tmp_path, ("tests",)), [])
    assert "interrupted: stopped by SIGTERM" in capsys.readouterr().out
    report = json.loads((tmp_path / "cuda.json").read_text())
    assert report["steps"][-1]["status"] == "FAILED"


def test_no_step_starts_once_the_budget_is_spent(gc, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(gc, "STEP_FUNCTIONS", {"install": ok(gc, []), "probe": ok(gc, [])})
    assert gc.check(config(gc, tmp_path, budget=0), []) == 1
    assert "the budget of 0 s was spent" in capsys.readouterr().out


def test_the_report_files_are_replaced_whole_or_not_at_all(gc, tmp_path, monkeypatch) -> None:
    gc.write_report({"steps": 1}, "first\n", tmp_path)
    assert json.loads((tmp_path / "cuda.json").read_text()) == {"steps": 1}

    def fail(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="disk full"):
        gc.write_report({"steps": 2}, "second\n", tmp_path)
    assert json.loads((tmp_path / "cuda.json").read_text()) == {"steps": 1}
    assert (tmp_path / "cuda.md").read_text() == "first\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cuda.json", "cuda.md"]


def test_only_a_full_run_of_every_step_writes_the_committed_results(gc) -> None:
    cfg = gc.config(gc.parse_args(["--dry", "--device", "cpu"]))
    assert cfg.results != gc.RESULTS and cfg.results.is_relative_to(gc.ROOT / "_build")
    assert gc.config(gc.parse_args([])).results == gc.RESULTS
    assert gc.config(gc.parse_args(["--steps", "pages"])).results == gc.ROOT / "_build/gpu-check"
    with pytest.raises(SystemExit):
        gc.parse_args(["--device", "cpu"])  # the full check needs a GPU


@pytest.mark.parametrize(
    ("capability", "expected"), [((7, 5), ["fp16"]), ((9, 0), ["fp16", "bf16"])]
)
def test_memory_and_loop_run_fp16_and_bf16_where_the_gpu_has_it(
    gc, tmp_path, monkeypatch, capability, expected
) -> None:
    cfg = config(gc, tmp_path)
    assert gc.precisions(cfg) == ["fp32"]  # on the CPU
    monkeypatch.setattr(gc.torch.cuda, "get_device_capability", lambda: capability)
    cfg.device = "cuda"
    assert gc.precisions(cfg) == expected


# ---- what the steps read -------------------------------------------------------------------


def test_the_pages_training_lines_must_say_the_device_and_precision(gc) -> None:
    expected = ("cuda", "fp16 autocast")
    good = "loss 0.3\n1234.5 examples/sec on cuda (fp16 autocast)\n"
    assert gc.training_problems("fine-tuning.ipynb", good, expected) == []
    bad = gc.training_problems("fine-tuning.ipynb", "99.0 examples/sec on cpu (fp32)", expected)
    assert bad == [
        "fine-tuning.ipynb: trained on cpu (fp32), expected 'examples/sec on cuda (fp16 autocast)'"
    ]
    assert "no training line" in gc.training_problems("fine-tuning.ipynb", "", expected)[0]
    assert gc.training_problems("exercises.ipynb", "", expected) == []


def test_the_goals_are_reported_not_failed(gc) -> None:
    ratios = {"min": 9.5, "median": 11.0, "max": 12.0}
    row = {
        "ratio_train_images_per_sec": ratios,
        "reference": {"train_images_per_sec": {"median": 250.0}},
        "ours": {"train_images_per_sec": {"median": 2750.0}},
        "accuracy": None,
    }
    assert gc.bench_lines("224", row)[0].endswith("goal of 10x NOT MET")
    loop = {"size": 224, "precision": "bf16", "rates": {"loop, loader": 950, "model": 1000}}
    assert gc.loop_line(loop).endswith("goal 0.90 met)")
    report = {"size": 224, "batch_size": 128, "t4_mib": 15360}
    memory = {"precision": "fp16 autocast", "allocated_mib": 3000, "reserved_mib": 3500}
    memory |= {"beyond_mib": 600, "needed_mib": 4100, "fits_t4": True, "status": "ok"}
    assert gc.memory_line(report, memory).endswith("= 4,100 MiB: fits a T4's 15,360 MiB")
