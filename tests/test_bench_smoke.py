"""Smoke test of benchmarks/bench.py: the whole benchmark on tiny data, outputs checked.

No timing is asserted. It needs d2l and its imports (pandas, scipy), which the benchmark's own
install step provides and nothing here installs:

    pip install -r benchmarks/requirements.txt && pip install --no-deps d2l==1.0.3
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks" / "bench.py"
INSTALL = "pip install -r benchmarks/requirements.txt && pip install --no-deps d2l==1.0.3"
SMOKE_ARGS = [
    "--sizes", "32", "--train-per-class", "10", "--test-per-class", "2", "--batch-size", "4",
    "--epochs", "2", "--repeats", "1", "--frozen-size", "32", "--frozen-epochs", "1",
    "--threads", "1", "--device", "cpu", "--source", "random",
]  # fmt: skip
SIDE_FIELDS = {
    "train_images_per_sec", "train_images_per_sec_after_first_epoch", "seconds_per_epoch",
    "eval_seconds_per_pass", "wall_seconds", "peak_rss_mib", "rss_growth_mib", "final_test_acc",
    "status", "precision",
}  # fmt: skip


def require_benchmark_packages() -> None:
    missing = [
        name for name in ("d2l", "pandas", "scipy") if importlib.util.find_spec(name) is None
    ]
    if missing:
        pytest.fail(
            f"The benchmark needs packages that are not installed here: {', '.join(missing)}. "
            f"Run the benchmark's install step first (make bench-install, or: {INSTALL}).",
            pytrace=False,
        )


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str, str]:
    """Run the benchmark once on tiny data; return its JSON, its Markdown and its stdout."""
    require_benchmark_packages()
    tmp = tmp_path_factory.mktemp("bench")
    command = [sys.executable, str(BENCH), *SMOKE_ARGS, "--data-dir", str(tmp / "data")]
    command += ["--out-dir", str(tmp / "results")]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    data = json.loads((tmp / "results" / "cpu.json").read_text())
    return data, (tmp / "results" / "cpu.md").read_text(), done.stdout


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_json_has_both_sides_ratios_and_the_setup(report: tuple[dict, str, str]) -> None:
    data, _, _ = report
    row = data["summary"]["sizes"]["32"]
    for side in ("reference", "ours"):
        assert set(row[side]) >= SIDE_FIELDS
        assert row[side]["train_images_per_sec"]["median"] > 0
    assert row["reference"]["precision"] == "fp32"
    for ratio in ("ratio_train_images_per_sec", "ratio_train_images_per_sec_after_first_epoch",
                  "ratio_wall_ref_over_ours"):  # fmt: skip
        assert set(row[ratio]) == {"min", "median", "max"}
    assert row["same_initial_weights"] is True
    accuracy = row["accuracy"]
    assert accuracy["seeds"] == 1 and set(accuracy["difference"]) == {"min", "median", "max"}
    assert accuracy["mean_difference"] == pytest.approx(
        accuracy["ours_mean"] - accuracy["reference_mean"]
    )
    frozen = data["summary"]["frozen"]
    assert frozen["runs"] == 5 and frozen["ratio_full_over_sweeper"]["median"] > 0
    assert frozen["ratio_full_over_cached_sweeper"]["median"] > 0
    assert len(frozen["full_test_accs"]) == len(frozen["sweeper_test_accs"]) == 5
    cache = data["summary"]["cache"]["32"]
    for split in ("train", "test"):
        assert cache[f"{split}_bytes_per_image"] == 3 * cache[f"{split}_stored_size"] ** 2
    assert cache["train_stored_size"] > cache["test_stored_size"] and cache["cache_bytes"] > 0
    assert {"cpu", "cpu_cores_usable", "device", "torch_threads"} <= set(data["machine"])
    assert data["machine"]["torch_threads"] == 1
    versions = data["versions"]
    assert all(versions[name] for name in ("python", "torch", "torchvision", "d2l", "numpy"))
    assert versions["pillow"]
    assert data["settings"]["reference_workers"] == 0 and data["settings"]["repeats"] == 1
    assert data["settings"]["seeds"] == [0]
    assert "bench.py --sizes 32" in data["command"]
    kinds = sorted(t["kind"] for t in data["trials"])
    assert kinds == ["frozen-full", "frozen-sweeper", "ours", "reference", "warmup"]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_markdown_is_written_and_printed(report: tuple[dict, str, str]) -> None:
    _, markdown, stdout = report
    assert markdown == stdout
    expected = (
        "| 32 | reference |", "| 32 | ours |", "ours / reference", "Frozen-body sweep",
        "Speed-up of the Sweeper", "one-off decode", "Versions:", "d2l 1.0.3", "Accuracy parity",
    )  # fmt: skip
    for text in expected:
        assert text in markdown
