"""The GPU check (``make gpu-check``): what only a CUDA machine can test, in one command.

Run it on the GPU machine with that machine's own Python, torch and torchvision
(``python3 scripts/gpu_check.py``); it writes ``benchmarks/results/cuda.{json,md}``, named
after the GPU. Each step is timed; a step that fails is reported and the next one runs; the
summary is printed and written whatever happened (SIGTERM included); the exit status is 1 when
a step failed or was not run. A missed goal (the benchmark's 10x, the loop's 0.90) is reported,
not a failure.

0. install: the wheels of ``scripts/gpu_requirements.txt`` carried in ``.gpu/wheels`` whose
   project this Python lacks at the pinned version, by ``pip install --no-index --no-deps
   --target _build/gpu-check-site``, which goes on ``PYTHONPATH`` for this process, its
   subprocesses and the notebooks' kernels; then every module the steps import must import.
1. probe: the GPU, its compute capability and memory, torch, CUDA and cuDNN.
2. tests: ``pytest -m cuda tests/test_cuda.py`` (the GPU's batched augmentation equal to the
   CPU's, pinned memory, the precision per compute capability, ``fit`` in fp16 with a
   GradScaler and in bf16, evaluation under inference mode).
3. memory: ``benchmarks.peak_memory``: the chapter's training at 224 px and batch 128 in fp16
   (a T4's path) and, where the GPU has it, bf16: peak memory, and whether a T4's 15 GB holds
   it.
4. loop: ``benchmarks.loop_vs_bare`` at 224 px in the same precisions: the loop with its
   loader against the bare model step (goal 0.90).
5. bench: ``benchmarks.bench`` at 224 px: A/B against d2l 1.0.3's ``train_ch13`` (goal: 10x
   d2l's training images/s, accuracy within noise).
6. pages: ``fine-tuning.ipynb``, ``exercises.ipynb`` and ``techniques.ipynb`` executed in full by
   ``scripts/notebook_exec.py`` (no error cell, no warning on stderr): on the stand-in in the
   precision ``auto`` chooses (bf16 from compute capability 8.0), again with
   ``D2LHELPERS_PRECISION=fp16`` (a T4's path), each page's training lines saying ``cuda`` and
   that precision; and on the real branch at 224 px on ``make
   real-check``'s fixture (``.gpu/real-photos.zip``, random weights placed as ImageNet's), its
   facts checked as there, with the chapter's full settings. Executed notebooks and every
   step's log go to ``_build/gpu-check/``.

The steps run shortest first, so that a run cut short has written the most. ``--steps`` runs
some of them (after install and probe), writing its report into ``_build/gpu-check/`` instead
of over the full one. ``--budget`` bounds the seconds of all steps: a step that would start
later is not run, and subprocesses are stopped at it.

Carried (``make gpu-carry``, on a machine with internet): ``.gpu/wheels`` (about 17 MB) and
``.gpu/real-photos.zip`` (about 12 MB); with the tree, under the 64 MiB a GPU command takes.
The drawn images are drawn there rather than carried: the stand-in's 2,800 small JPEGs in
about 5 s on one core here (carrying them would cost 4.5 MB), the benchmark's 840 large ones in
about 12 s (30 MB: too large to carry).

Time on an H200, estimated from each step's image-passes (forward and backward, at its crop;
the pages' from the README's budget table and real-check's counts) at assumed rates (224 px:
2,500 images/s through our loop, 250 through d2l's PIL pipeline on one core; 32 px: 15,000
images/s, launch-bound) plus the starts of processes, kernels and CUDA:

| step | image-passes | estimate |
| --- | --- | ---: |
| install, probe, tests | 34 wheels; 7 small tests | 40 s |
| memory | 2 x (256 training + 256 held out), 224 px | 15 s |
| loop | 2 x (13,312 training + 2,048 evaluation), 224 px | 35 s |
| bench | d2l 5,760 + ours 5,760 training, 3,600 evaluation, 224 px; 840 JPEGs drawn | 90 s |
| pages, stand-in, bf16 then fp16 | 2 x (288,065 training + 140,370 evaluation), 32 px | 2 x 60 s |
| pages, real branch | (48 + 200) x 15 = 3,720 training, 8,000 evaluation, 224 px; the | 60 s |
| | techniques page's 13 runs of 3 epochs and range test: about 3,500 more | |

about 5.5 minutes in all; ``--budget`` (540 s) keeps the summary inside one command's 10 minutes.

``--dry`` (``make gpu-check-dry``, part of ``make test``; ``--device cpu``): the same steps at
tiny sizes, written to ``_build/gpu-check-dry/``, never over the committed results: the tests
collected (skipped without a GPU), the memory and the loop at 32 px, the benchmark at its
smoke-test sizes, and the real branch of ``fine-tuning.ipynb`` shortened (the check's own part
of step 6: the fixture, the executor, the facts, the training lines; the pages themselves run
in full in the book build and shortened in colab-check and real-check). About 40 s on 2 cores.

``--prepare`` (``make gpu-carry``): downloads the wheels, checks that their Requires-Dist are
carried or on the GPU machine, writes the photo zip, and prints what a GPU command would carry.
"""

from __future__ import annotations

import argparse
import email.parser
import importlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent
ROOT = SCRIPTS.parent
for _path in (str(SCRIPTS), str(ROOT)):  # the sibling scripts, and this checkout's d2lhelpers
    if _path not in sys.path:
        sys.path.insert(0, _path)

import torch  # noqa: E402

from d2lhelpers.chapter import chapter_settings  # noqa: E402
from d2lhelpers.environment import SHORT_RUN_ENV  # noqa: E402
from d2lhelpers.fileutil import atomic_write  # noqa: E402
from d2lhelpers.machine import cpu_name  # noqa: E402
from d2lhelpers.precision import BF16_CAPABILITY, choose_precision  # noqa: E402

CARRY = ROOT / ".gpu"  # made here by --prepare, carried to the GPU machine; git ignores it
WHEELS = CARRY / "wheels"
PHOTOS_ZIP = CARRY / "real-photos.zip"
SITE = ROOT / "_build" / "gpu-check-site"  # made there from the wheels; never carried
REQUIREMENTS = SCRIPTS / "gpu_requirements.txt"
RESULTS = ROOT / "benchmarks" / "results"
CHAPTERS = ROOT / "chapters"
CARRY_LIMIT = 64 * 2**20  # what one GPU command takes: the tree and the carried folders
MIB = 2**20
# pip downloads for the GPU machine's Python, whatever the host
PIP_TARGET = (
    "--only-binary=:all:", "--implementation", "cp", "--python-version", "3.12",
    "--abi", "cp312", "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_27_x86_64",
    "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64",
    "--platform", "manylinux1_x86_64", "--platform", "any",
)  # fmt: skip
TARGET_MARKERS = {  # the GPU machine, for the wheels' environment markers
    "python_version": "3.12", "python_full_version": "3.12.3", "implementation_name": "cpython",
    "platform_python_implementation": "CPython", "sys_platform": "linux",
    "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix", "extra": "",
}  # fmt: skip
# What the GPU machine's python3 has (the device tool's KINDS.md, read 2026-11-17) among what
# the check and its wheels need: never carried.
MACHINE_HAS = frozenset({
    "torch", "torchvision", "numpy", "pillow", "matplotlib", "tqdm", "pytest", "pandas",
    "scipy", "requests", "psutil", "packaging", "pygments", "attrs", "python-dateutil",
    "typing-extensions", "pyyaml", "jinja2",
})  # fmt: skip
ROOTS = frozenset({"ipykernel", "nbclient", "nbformat", "ipywidgets", "ipython", "d2l"})
NO_DEPS = frozenset({"d2l"})  # installed without its pins; its imports are in NEEDED_MODULES
NEEDED_MODULES = (
    "torch", "torchvision", "numpy", "PIL", "matplotlib", "tqdm", "pytest", "IPython",
    "ipykernel", "ipywidgets", "nbclient", "nbformat", "matplotlib_inline", "d2l", "pandas",
    "scipy", "requests",
)  # fmt: skip
STEPS = ("tests", "memory", "loop", "bench", "pages")
PAGES = ("fine-tuning.ipynb", "exercises.ipynb", "techniques.ipynb")
LIVE_PAGES = frozenset({"fine-tuning.ipynb"})  # pages that print a run's training lines
TRAINING_LINE = re.compile(r"examples/sec on (\S+) \(([^)]+)\)")  # History.summary()'s
GOAL_SPEEDUP, GOAL_LOOP = 10.0, 0.90


class StepFailed(RuntimeError):
    """A step's failure, said in a line or a few."""


# --------------------------------------------------------------------------------------------
# What a run does
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """One set of page runs: the data branch, the precision, full or shortened."""

    label: str
    notebooks: tuple[str, ...]
    precision: str = "auto"  # D2LHELPERS_PRECISION in the kernels
    real: bool = False  # the real branch on the carried fixture, else the stand-in
    short: bool = False  # D2LHELPERS_SHORT_RUN=1

    def env(self) -> dict[str, str]:
        """The kernels' D2LHELPERS_* settings (the real branch's fixture adds its own)."""
        return {
            "D2LHELPERS_DATA_SOURCE": "real" if self.real else "standin",
            "D2LHELPERS_PRECISION": self.precision,
            SHORT_RUN_ENV: "1" if self.short else "0",
        }

    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.label.lower()).strip("-")


@dataclass(frozen=True)
class Sizes:
    """The arguments of each step: the full check's, or a dry run's tiny ones."""

    memory: tuple[str, ...]
    loop: tuple[str, ...]
    bench: tuple[str, ...]
    variants: tuple[Variant, ...]
    page_limit: float  # seconds per notebook
    budget: float  # seconds for all steps


FULL = Sizes(
    memory=("--size", "224", "--images", "256"),
    loop=("--sizes", "224", "--images", "1024"),
    bench=("--sizes", "224", "--skip-frozen"),  # 640 + 200 JPEGs, 3 epochs, 3 repeats
    variants=(
        Variant("stand-in", PAGES),
        Variant("stand-in, fp16 requested (a T4's path)", PAGES, "fp16"),
        Variant("real branch, 224 px", PAGES, real=True),
    ),
    page_limit=240,
    budget=540,
)
DRY = Sizes(
    memory=("--size", "32", "--batch-size", "4", "--images", "8"),
    loop=("--sizes", "32", "--images", "16", "--batch-size", "4", "--repeats", "1"),
    bench=("--sizes", "32", "--train-per-class", "10", "--test-per-class", "2", "--batch-size",
           "4", "--epochs", "2", "--repeats", "1", "--threads", "1", "--source", "random",
           "--skip-frozen"),
    variants=(Variant("real branch, 224 px, shortened", PAGES[:1], real=True, short=True),),
    page_limit=180,
    budget=300,
)  # fmt: skip


@dataclass
class Config:
    """One run of the check: its mode, device, folders and clock."""

    dry: bool
    device: str
    sizes: Sizes
    work: Path  # logs, executed notebooks, the sub-reports
    results: Path  # where cuda.json and cuda.md go
    budget: float
    steps: tuple[str, ...] = STEPS
    start: float = field(default_factory=time.perf_counter)

    def left(self) -> float:
        """Seconds left of the budget."""
        return self.budget - (time.perf_counter() - self.start)


@dataclass
class Outcome:
    """What a step found: summary lines, data for the JSON, Markdown for the report."""

    lines: list[str]
    data: Any = None
    ok: bool = True
    markdown: str = ""


@dataclass
class StepResult:
    name: str
    status: str  # "ok", "FAILED" or "not run"
    seconds: float
    lines: list[str]
    data: Any = None
    markdown: str = ""


# --------------------------------------------------------------------------------------------
# Installing what the machine lacks
# --------------------------------------------------------------------------------------------


def normalize(project: str) -> str:
    """A project name as PyPI compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", project).lower()


def read_requirements(path: Path = REQUIREMENTS) -> dict[str, str]:
    """The pinned ``name==version`` lines of a requirements file, by normalized name."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            if not sep:
                raise ValueError(f"{path}: {line!r} is not pinned as name==version")
            pins[normalize(name)] = version.strip()
    return pins


def wheel_project(wheel: Path) -> tuple[str, str]:
    """(normalized project, version) from a wheel's file name."""
    name, version = wheel.name.split("-")[:2]
    return normalize(name), version


def installed_version(project: str) -> str | None:
    """The version of ``project`` this Python imports, None when it has none."""
    try:
        return importlib.metadata.version(project)
    except importlib.metadata.PackageNotFoundError:
        return None


def to_install(
    wheels: Iterable[Path], version_of: Callable[[str], str | None] = installed_version
) -> list[Path]:
    """The wheels whose project is absent or at another version here."""
    return [w for w in wheels if version_of(wheel_project(w)[0]) != wheel_project(w)[1]]


def missing_modules(modules: Iterable[str]) -> list[str]:
    """The top-level ``modules`` this Python cannot find."""
    return [m for m in modules if importlib.util.find_spec(m) is None]


def use_site(site: Path = SITE) -> None:
    """Put this checkout and ``site`` first on the path of this process and its children."""
    if str(site) not in sys.path:
        sys.path.insert(1, str(site))  # after this checkout
    paths = [str(ROOT), str(site), *filter(None, os.environ.get("PYTHONPATH", "").split(":"))]
    os.environ["PYTHONPATH"] = ":".join(dict.fromkeys(paths))


def pip_install(wheels: list[Path], site: Path = SITE) -> None:
    """Install ``wheels`` into ``site`` without an index or their dependencies."""
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps"]
    command += ["--no-compile", "--no-cache-dir", "--upgrade", "--target", str(site)]
    done = subprocess.run([*command, *map(str, wheels)], capture_output=True, text=True)
    if done.returncode != 0:
        raise StepFailed(f"pip could not install the carried wheels: {done.stderr[-1500:]}")
    importlib.invalidate_caches()


def step_install(cfg: Config) -> Outcome:
    wheels = sorted(WHEELS.glob("*.whl"))
    todo = to_install(wheels)
    if todo:
        pip_install(todo)
    missing = missing_modules(NEEDED_MODULES)
    if missing:
        raise StepFailed(
            f"{sys.executable} cannot import {', '.join(missing)}: run `make gpu-carry` on a "
            "machine with internet and carry .gpu with this command (see scripts/gpu_check.py)"
        )
    done = f"installed {len(todo)} of the {len(wheels)} carried wheels into {SITE}"
    line = done if todo else f"nothing to install ({len(wheels)} wheels carried)"
    return Outcome([line], {"installed": [w.name for w in todo]})


# --------------------------------------------------------------------------------------------
# Steps
# --------------------------------------------------------------------------------------------


def run_command(cfg: Config, name: str, args: list[str]) -> subprocess.CompletedProcess:
    """``python args`` in the checkout within the budget; its output in ``work/logs/name.log``.
    StepFailed, with the output's end, when it fails."""
    logs = cfg.work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, *args]
    print(f"gpu-check: {name}: {' '.join(args)}", file=sys.stderr, flush=True)
    try:
        done = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=max(1, cfg.left())
        )
    except subprocess.TimeoutExpired as err:
        raise StepFailed(f"stopped after {err.timeout:.0f} s: the budget was spent") from err
    (logs / f"{name}.log").write_text(f"$ {' '.join(command)}\n{done.stdout}\n{done.stderr}")
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise StepFailed(f"`{' '.join(args)}` exited with {done.returncode}:\n{tail}")
    return done


def step_probe(cfg: Config) -> Outcome:
    data = {"python": sys.version.split()[0], "torch": torch.__version__}
    data |= {"cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available()}
    if cfg.device == "cpu":
        data["device"] = f"CPU {cpu_name()}"
        line = f"{data['device']}, torch {torch.__version__}; a dry run on the CPU"
        return Outcome([line], data)
    if not torch.cuda.is_available():
        raise StepFailed(
            f"torch {torch.__version__} (CUDA build {torch.version.cuda}) sees no CUDA GPU; "
            "without one, run --dry --device cpu"
        )
    props = torch.cuda.get_device_properties(0)
    data |= {
        "device": props.name,
        "capability": f"{props.major}.{props.minor}",
        "memory_mib": props.total_memory / MIB,
        "cudnn": torch.backends.cudnn.version(),
        "auto_precision": choose_precision(torch.device("cuda"), "auto").name,
    }
    line = (
        f"GPU {props.name} (compute capability {data['capability']}, "
        f"{data['memory_mib']:,.0f} MiB), torch {torch.__version__}, CUDA {torch.version.cuda}, "
        f"cuDNN {data['cudnn']}; auto precision: {data['auto_precision']}"
    )
    return Outcome([line], data)


def step_tests(cfg: Config) -> Outcome:
    args = ["-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider", "-m", "cuda"]
    done = run_command(cfg, "tests", [*args, "-rs", "tests/test_cuda.py"])
    last = done.stdout.strip().splitlines()[-1]
    if not cfg.dry and "passed" not in last:
        raise StepFailed(f"no CUDA test ran: {last}")
    return Outcome([last], {"result": last})


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def sub_report(cfg: Config, stem: str, title: str) -> tuple[dict, str]:
    """The JSON a benchmark wrote into the work folder, and its Markdown under ``title``."""
    text = (cfg.work / f"{stem}.md").read_text()
    return read_json(cfg.work / f"{stem}.json"), f"### {title}\n\n{text}"


def precisions(cfg: Config) -> list[str]:
    """What the memory and the loop are measured in: fp16 (a T4's path), and bf16 where the GPU
    has it; fp32 on a CPU."""
    if cfg.device == "cpu":
        return ["fp32"]
    has_bf16 = torch.cuda.get_device_capability() >= BF16_CAPABILITY
    return ["fp16", "bf16"] if has_bf16 else ["fp16"]


def step_memory(cfg: Config) -> Outcome:
    out = cfg.work / "peak-memory.json"
    out.unlink(missing_ok=True)
    args = ["-m", "benchmarks.peak_memory", "--device", cfg.device, *cfg.sizes.memory]
    args += ["--precisions", *precisions(cfg)]
    run_command(cfg, "memory", [*args, "--out", str(out)])
    report = read_json(out)
    lines = [memory_line(report, row) for row in report["rows"]]
    return Outcome(lines, report, all(row["status"] == "ok" for row in report["rows"]))


def memory_line(report: dict, row: dict) -> str:
    head = f"{report['size']} px, batch {report['batch_size']}, {row['precision']}"
    if row["needed_mib"] is None:
        return f"{head}: training {row['status']}; GPU memory n/a on the CPU"
    fits = "fits" if row["fits_t4"] else "does NOT fit"
    return (
        f"{head}: peak allocated {row['allocated_mib']:,.0f} MiB, reserved "
        f"{row['reserved_mib']:,.0f} MiB, + {row['beyond_mib']:,.0f} MiB beyond the allocator "
        f"= {row['needed_mib']:,.0f} MiB: {fits} a T4's {report['t4_mib']:,} MiB"
    )


def step_loop(cfg: Config) -> Outcome:
    args = ["-m", "benchmarks.loop_vs_bare", "--device", cfg.device, *cfg.sizes.loop]
    args += ["--precisions", *precisions(cfg)]
    run_command(cfg, "loop", [*args, "--out-dir", str(cfg.work), "--name", "loop-vs-bare"])
    report, text = sub_report(cfg, "loop-vs-bare", "The loop against the bare model step")
    return Outcome([loop_line(row) for row in report["rows"]], report, markdown=text)


def loop_line(row: dict) -> str:
    loop, model = row["rates"]["loop, loader"], row["rates"]["model"]
    goal = "met" if loop >= GOAL_LOOP * model else "NOT MET"
    return (
        f"{row['size']} px, {row['precision']}: the loop with its loader / the bare model step "
        f"= {loop / model:.2f} ({loop:,.0f} / {model:,.0f} images/s; goal {GOAL_LOOP:.2f} {goal})"
    )


def step_bench(cfg: Config) -> Outcome:
    args = ["-m", "benchmarks.bench", "--device", cfg.device, *cfg.sizes.bench]
    args += ["--data-dir", str(cfg.work / "bench-data"), "--out-dir", str(cfg.work)]
    run_command(cfg, "bench", [*args, "--name", "bench"])
    report, text = sub_report(cfg, "bench", "A/B against d2l 1.0.3's train_ch13")
    sizes = report["summary"]["sizes"]
    lines = [line for size, row in sizes.items() for line in bench_lines(size, row)]
    return Outcome(lines, report, markdown=text)


def bench_lines(size: str, row: dict) -> list[str]:
    ratio = row["ratio_train_images_per_sec"]
    ref, ours = (row[side]["train_images_per_sec"]["median"] for side in ("reference", "ours"))
    goal = "met" if ratio["min"] >= GOAL_SPEEDUP else "NOT MET"
    lines = [
        f"{size} px: d2l {ref:,.0f} training images/s, ours {ours:,.0f}; ours / d2l "
        f"{ratio['min']:.1f} / {ratio['median']:.1f} / {ratio['max']:.1f} (min / med / max): "
        f"goal of {GOAL_SPEEDUP:.0f}x {goal}"
    ]
    acc = row.get("accuracy")
    if acc:
        diff = acc["difference"]
        lines.append(
            f"{size} px: test accuracy d2l {acc['reference_mean']:.3f}, ours "
            f"{acc['ours_mean']:.3f} (paired differences {100 * diff['min']:+.1f} to "
            f"{100 * diff['max']:+.1f} points over {acc['seeds']} seeds)"
        )
    return lines


# --------------------------------------------------------------------------------------------
# The pages
# --------------------------------------------------------------------------------------------


def photos_archive() -> bytes:
    """The real-photo fixture's zip: carried in ``.gpu``, else made from the pinned wheels."""
    if PHOTOS_ZIP.is_file():
        return PHOTOS_ZIP.read_bytes()
    import real_photos

    try:
        return real_photos.hotdog_zip(real_photos.photo_files(real_photos.fetch_wheels()))
    except real_photos.WheelsUnavailable as err:
        raise StepFailed(
            f"no {PHOTOS_ZIP.relative_to(ROOT)} and no wheels to make it from: run "
            f"`make gpu-carry` where there is internet and carry .gpu ({err})"
        ) from err


def training_problems(name: str, text: str, expected: tuple[str, str]) -> list[str]:
    """What a page's training lines (``... examples/sec on cuda (bf16 autocast)``) got wrong:
    another device or precision than ``expected``, or none where the page prints them."""
    found = set(TRAINING_LINE.findall(text))
    want = f"'examples/sec on {expected[0]} ({expected[1]})'"
    if not found and name in LIVE_PAGES:
        return [f"{name}: no training line {want} in its outputs"]
    return [f"{name}: trained on {d} ({p}), expected {want}" for d, p in sorted(found - {expected})]


def expected_training(cfg: Config, variant: Variant) -> tuple[str, str]:
    """(device, precision) that the variant's training lines must say."""
    return cfg.device, choose_precision(torch.device(cfg.device), variant.precision).name


def run_variant(cfg: Config, variant: Variant) -> list[dict]:
    """Execute the variant's notebooks (the real branch on its fixture) and check them."""
    import real_branch_check
    from notebook_exec import PRINT_IMAGES, execute

    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        fixture, env, postlude = None, variant.env(), PRINT_IMAGES
        if variant.real:
            fixture = real_branch_check.make_fixture(Path(tmp), photos_archive(), variant.short)
            env, postlude = env | fixture.env, real_branch_check.POSTLUDE
        epochs = 1 if variant.short else chapter_settings("real")["num_epochs"]
        rows = []
        for name in variant.notebooks:
            print(f"gpu-check: pages: {variant.label}: {name}", file=sys.stderr, flush=True)
            out_dir = cfg.work / "notebooks" / variant.slug()
            limit = min(cfg.sizes.page_limit, cfg.left())
            run = execute(CHAPTERS / name, limit, env, postlude=postlude, out_dir=out_dir)
            if fixture is not None:
                real_branch_check.check_facts(run, fixture.weights.name, epochs)
            expected = expected_training(cfg, variant)
            run.failures += training_problems(name, run.text, expected)
            rows.append(page_row(variant, expected[1], run))
        if fixture is not None and fixture.downloaded():
            rows[-1]["failures"].append("a hotdog.zip appeared in the data folder: a download ran")
    return rows


def page_row(variant: Variant, precision: str, run: Any) -> dict:
    """One executed notebook as the report keeps it."""
    return {
        "variant": f"{variant.label} ({precision})",
        "notebook": run.name,
        "seconds": run.seconds,
        "failures": list(run.failures),
        "images": run.facts.get("images", {}),
        "slowest": run.slowest(),
    }


def page_lines(row: dict) -> list[str]:
    grad, no_grad = (row["images"].get(key, "?") for key in ("with_grad", "no_grad"))
    state = "FAILED" if row["failures"] else "ok"
    head = (
        f"{row['variant']}: {row['notebook']}: {state}, {row['seconds']:.0f} s; {grad} / "
        f"{no_grad} images with / without gradients; slowest: {row['slowest']}"
    )
    return [head, *(f"  {failure}" for failure in row["failures"])]


def step_pages(cfg: Config) -> Outcome:
    rows = [row for variant in cfg.sizes.variants for row in run_variant(cfg, variant)]
    lines = [line for row in rows for line in page_lines(row)]
    return Outcome(lines, rows, ok=not any(row["failures"] for row in rows))


STEP_FUNCTIONS: dict[str, Callable[[Config], Outcome]] = {
    "install": step_install,
    "probe": step_probe,
    "tests": step_tests,
    "memory": step_memory,
    "loop": step_loop,
    "bench": step_bench,
    "pages": step_pages,
}


# --------------------------------------------------------------------------------------------
# Running the steps, the summary and the report
# --------------------------------------------------------------------------------------------


def run_step(cfg: Config, name: str, step: Callable[[Config], Outcome]) -> StepResult:
    """Run ``step``, catching its failure."""
    if cfg.left() <= 0:
        return StepResult(name, "not run", 0.0, [f"the budget of {cfg.budget:.0f} s was spent"])
    print(f"gpu-check: == {name}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    try:
        outcome = step(cfg)
    except Exception as err:
        text = str(err) if isinstance(err, StepFailed) else traceback.format_exc(limit=-4)
        return StepResult(name, "FAILED", time.perf_counter() - start, text.strip().splitlines())
    status = "ok" if outcome.ok else "FAILED"
    seconds = time.perf_counter() - start
    return StepResult(name, status, seconds, outcome.lines, outcome.data, outcome.markdown)


def run_steps(
    cfg: Config,
    steps: dict[str, Callable[[Config], Outcome]],
    results: list[StepResult],
    on_step: Callable[[list[StepResult]], None],
) -> None:
    """Run ``steps`` in order into ``results``, calling ``on_step`` after each. After a failed
    install or probe the others are not run: they would fail for the same reason."""
    for name, step in steps.items():
        if any(r.name in ("install", "probe") and r.status != "ok" for r in results):
            results.append(StepResult(name, "not run", 0.0, ["install or probe failed"]))
            continue
        start = time.perf_counter()
        try:
            results.append(run_step(cfg, name, step))
        except BaseException as err:  # SIGTERM (SystemExit) or Ctrl-C: record it, then stop
            seconds = time.perf_counter() - start
            why = str(err) or type(err).__name__
            results.append(StepResult(name, "FAILED", seconds, [f"interrupted: {why}"]))
            raise
        finally:
            on_step(results)


def summary(results: list[StepResult], seconds: float) -> str:
    lines = [f"== gpu-check summary ({seconds:.0f} s in all)"]
    for result in results:
        lines.append(f"{result.name}: {result.status} ({result.seconds:.0f} s)")
        lines += [f"    {line}" for line in result.lines]
    failed = [r.name for r in results if r.status != "ok"]
    lines.append(f"gpu-check: {'FAILED: ' + ', '.join(failed) if failed else 'every step passed'}")
    return "\n".join(lines)


def report_of(cfg: Config, results: list[StepResult], command: list[str]) -> dict:
    probe = next((r.data for r in results if r.name == "probe" and r.data), {})
    return {
        "command": " ".join(["python3", "scripts/gpu_check.py", *command]),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "mode": "dry" if cfg.dry else "full",
        "device": probe.get("device", "unknown"),
        "seconds": time.perf_counter() - cfg.start,
        "steps": [
            {"name": r.name, "status": r.status, "seconds": r.seconds, "lines": r.lines}
            for r in results
        ],
        "results": {r.name: r.data for r in results if r.data is not None},
    }


def markdown(report: dict, results: list[StepResult]) -> str:
    probe = report["results"].get("probe", {})
    lines = [
        f"Command: `{report['command']}` (finished {report['finished']}; {report['device']}, "
        f"compute capability {probe.get('capability', 'n/a')}, torch {probe.get('torch')}, "
        f"CUDA {probe.get('cuda')}; {report['seconds']:.0f} s in all)",
        "",
        "| step | status | seconds | result |",
        "| --- | --- | ---: | --- |",
    ]
    for step in report["steps"]:
        text = "<br>".join(line.replace("|", "\\|") for line in step["lines"])
        lines.append(f"| {step['name']} | {step['status']} | {step['seconds']:.0f} | {text} |")
    lines += ["\n" + r.markdown.strip() for r in results if r.markdown]
    return "\n".join(lines) + "\n"


def write_report(report: dict, text: str, out_dir: Path, stem: str = "cuda") -> None:
    """``stem.json`` and ``stem.md`` in ``out_dir``, each written whole or not at all."""
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = json.dumps(report, indent=1, default=str).encode()
    atomic_write(out_dir / f"{stem}.json", lambda f: f.write(payload))
    atomic_write(out_dir / f"{stem}.md", lambda f: f.write(text.encode()))


def check(cfg: Config, command: list[str]) -> int:
    """Run the steps; print and write the summary and report whatever happens."""
    steps = {name: STEP_FUNCTIONS[name] for name in ("install", "probe", *cfg.steps)}
    results: list[StepResult] = []

    def save(done: list[StepResult]) -> None:
        report = report_of(cfg, done, command)
        write_report(report, markdown(report, done), cfg.results)

    try:
        run_steps(cfg, steps, results, save)
    finally:
        print(summary(results, time.perf_counter() - cfg.start), flush=True)
        print(f"gpu-check: report in {cfg.results}/cuda.json and cuda.md", file=sys.stderr)
    return 0 if all(r.status == "ok" for r in results) else 1


# --------------------------------------------------------------------------------------------
# --prepare: what a GPU command carries
# --------------------------------------------------------------------------------------------


def download_wheels(folder: Path = WHEELS) -> dict[str, Path]:
    """The pinned wheels for the GPU machine, downloaded afresh into ``folder``, by project."""
    shutil.rmtree(folder, ignore_errors=True)
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", *PIP_TARGET]
    done = subprocess.run(
        [*command, "-r", str(REQUIREMENTS), "-d", str(folder)], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"gpu-carry: pip download failed: {done.stderr[-1500:]}")
    return {wheel_project(w)[0]: w for w in sorted(folder.glob("*.whl"))}


def requirements_of(wheel: Path) -> list[Any]:
    """The Requires-Dist of ``wheel`` that hold on the GPU machine (no extras)."""
    from packaging.requirements import Requirement

    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = email.parser.Parser().parsestr(zf.read(name).decode())
    requirements = [Requirement(line) for line in metadata.get_all("Requires-Dist") or []]
    return [r for r in requirements if r.marker is None or r.marker.evaluate(TARGET_MARKERS)]


def closure_problems(wheels: dict[str, Path], pins: dict[str, str]) -> list[str]:
    """What the carried wheels leave unmet: a pin without its wheel, a Requires-Dist neither
    carried (at a version it accepts) nor on the GPU machine, a wheel nothing needs."""
    problems = [f"no wheel of {p}=={v}" for p, v in pins.items() if wheels.get(p) is None]
    needed = set(ROOTS)
    for project, wheel in wheels.items():
        for req in [] if project in NO_DEPS else requirements_of(wheel):
            dep = normalize(req.name)
            needed.add(dep)
            if dep in wheels and not req.specifier.contains(wheel_project(wheels[dep])[1], True):
                problems.append(f"{wheel.name} requires {req}; the carried wheel is another")
            elif dep not in wheels and dep not in MACHINE_HAS:
                problems.append(
                    f"{wheel.name} requires {req}, which is neither carried nor on the GPU "
                    f"machine: add it to {REQUIREMENTS.relative_to(ROOT)}"
                )
    problems += [f"{p} is carried but nothing needs it" for p in sorted(set(wheels) - needed)]
    return problems


def tree_bytes() -> int:
    """Bytes of what a GPU command sends besides the carried folders: tracked files, and
    untracked ones git does not ignore."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    )  # fmt: skip
    paths = [ROOT / p for p in listing.stdout.decode().split("\0") if p]
    return sum(p.stat().st_size for p in paths if p.is_file())


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def prepare() -> int:
    """Fill ``.gpu`` for a GPU command; 1 when the wheels leave a need unmet or it is too large."""
    import real_photos

    wheels = download_wheels()
    problems = closure_problems(wheels, read_requirements())
    archive = real_photos.hotdog_zip(real_photos.photo_files(real_photos.fetch_wheels()))
    atomic_write(PHOTOS_ZIP, lambda f: f.write(archive))
    tree, wheel_bytes = tree_bytes(), folder_bytes(WHEELS)
    total = tree + folder_bytes(CARRY)
    print(
        f"gpu-carry: {len(wheels)} wheels {wheel_bytes / MIB:.1f} MiB, real photos "
        f"{len(archive) / MIB:.1f} MiB in {CARRY.relative_to(ROOT)}; with the tree's "
        f"{tree / MIB:.1f} MiB a GPU command carries {total / MIB:.1f} MiB of "
        f"{CARRY_LIMIT / MIB:.0f} MiB"
    )
    if total > CARRY_LIMIT:
        problems.append(f"{total / MIB:.1f} MiB is over the {CARRY_LIMIT / MIB:.0f} MiB limit")
    for problem in problems:
        print(f"gpu-carry: {problem}", file=sys.stderr)
    return 1 if problems else 0


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def config(args: argparse.Namespace) -> Config:
    """The run the arguments ask for; only a full run of every step writes benchmarks/results."""
    sizes = DRY if args.dry else FULL
    work = ROOT / "_build" / ("gpu-check-dry" if args.dry else "gpu-check")
    complete = not args.dry and tuple(args.steps) == STEPS
    return Config(
        dry=args.dry,
        device=args.device,
        sizes=sizes,
        work=work,
        results=RESULTS if complete else work,
        budget=args.budget or sizes.budget,
        steps=tuple(args.steps),
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--dry", action="store_true", help="tiny sizes, into _build/")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS))
    parser.add_argument("--budget", type=float, help="seconds for all steps")
    parser.add_argument("--prepare", action="store_true", help="fill .gpu/ (needs internet)")
    args = parser.parse_args(argv)
    if args.device == "cpu" and not args.dry and not args.prepare:
        parser.error("the full check needs a CUDA GPU; for a run on the CPU add --dry")
    return args


def stop_on_sigterm() -> None:
    """SIGTERM (a time limit's) ends the check through its ``finally``: the summary is written."""

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(f"stopped by SIGTERM (signal {signum}), as a time limit stops a command")

    signal.signal(signal.SIGTERM, stop)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("D2LHELPERS_DATA", str(ROOT / ".data"))
    if args.prepare:
        return prepare()
    os.environ.pop(SHORT_RUN_ENV, None)  # each step says whether it is short
    use_site()
    stop_on_sigterm()
    return check(config(args), sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
