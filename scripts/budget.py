"""Measure the pages and the stand-in against their budgets on the project's slow CPU class.

``make budget`` runs this: ``python scripts/budget.py [--slow-cpu PATH]``. The slow CPU class
(2 cores, AVX2 only, no native bf16, so fp32 training) is imitated on whatever CPU runs this by
the shared tool ``slow-cpu`` (``../shared/tools/slow-cpu``; read its header): it limits oneDNN,
ATen and MKL to AVX2, makes d2lhelpers train in fp32, and states a calibrated time factor
(here / there). Steps, each in its own process under those limits, on the stand-in:

1. the stand-in built cold (drawing its images, training its source model) in an empty data
   folder;
2. each page in ``chapters/`` executed in full, in order, on that folder (the decode caches are
   built by the first page that needs them, as for a learner).

For each it prints the work in image-passes (images through a network with gradients, and
without: evaluation and features), the wall time here under the limits, the slow-CPU estimate
(wall time x factor) and its budget, and writes the table to ``benchmarks/results/budget.md``.
It exits 1 when a step fails or an estimate is over its budget. A measurement, not a test: it
is not part of ``make test``. The factor is calibrated again right before each step (on this
project's virtual machines the same calibration read 1.43 and, 30 minutes later, 1.61: the
machine's own speed drifts, and a factor measured beside the step follows it);
``SLOW_CPU_FACTOR`` fixes it instead. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
ROOT = SCRIPTS.parent
sys.path.insert(0, str(SCRIPTS))

from notebook_exec import COUNT_IMAGES, execute  # noqa: E402

CHAPTERS = ROOT / "chapters"
RESULTS = ROOT / "benchmarks" / "results" / "budget.md"
SLOW_CPU = ROOT.parent / "shared" / "tools" / "slow-cpu"
STANDIN = "stand-in, cold"
BUDGETS_MIN = {  # slow-CPU estimate in minutes, in the order a learner meets them
    STANDIN: 5,
    "fine-tuning.ipynb": 6,
    "exercises.ipynb": 15,
    "techniques.ipynb": 8,
    "engineering.ipynb": 3,
}
PAGE_LIMIT_S = 1800  # per page, here: far above any budget, so an over-budget page still ends
RESULT_MARK = "BUDGET-STEP "
FACTOR = re.compile(r"factor (\d+(?:\.\d+)?)")


def calibrate(slow_cpu: Path) -> float:
    """The slow-CPU time factor: ``$SLOW_CPU_FACTOR``, else the tool's ``--calibrate``."""
    if os.environ.get("SLOW_CPU_FACTOR"):
        return float(os.environ["SLOW_CPU_FACTOR"])
    done = subprocess.run(
        [str(slow_cpu), "--calibrate", "--python", sys.executable],
        capture_output=True,
        text=True,
        check=True,
    )
    found = FACTOR.findall(done.stderr)
    if not found:
        sys.exit(f"budget: no factor in the output of {slow_cpu} --calibrate: {done.stderr!r}")
    print(f"budget: {done.stderr.strip()}", file=sys.stderr)
    return float(found[-1])


def step_standin(data: Path) -> dict:
    """Build the stand-in in the empty folder ``data``, counting the images its training sees."""
    counter: dict = {}
    exec(COUNT_IMAGES, counter)  # the same counting hook as on the pages
    from d2lhelpers.workspace import prepare

    start = time.perf_counter()
    ws = prepare("standin", data, progress=False)
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "images": counter["_nb_exec_images"],
        "size": ws.recipe.size,
        "failures": [],
        "slowest": "",
    }


def step_page(name: str, data: Path) -> dict:
    """Execute ``chapters/<name>`` in full on the stand-in in ``data``."""
    from d2lhelpers.workspace import prepare

    size = prepare("standin", data, progress=False).recipe.size  # built already: quick
    env = {
        "D2LHELPERS_DATA_SOURCE": "standin",
        "D2LHELPERS_DATA": str(data),
        "D2LHELPERS_SHORT_RUN": "0",  # the full page, whatever the caller's environment says
    }
    run = execute(CHAPTERS / name, PAGE_LIMIT_S, env, out_dir=ROOT / "_build" / "budget")
    return {
        "seconds": run.seconds,
        "images": run.facts.get("images", {}),
        "size": size,
        "failures": run.failures,
        "slowest": run.slowest(),
    }


def run_step(slow_cpu: Path, args: list[str]) -> dict:
    """Calibrate, then run ``budget.py --step ARGS`` under the slow-CPU limits; its result,
    with the factor it is to be scaled by."""
    factor = calibrate(slow_cpu)
    command = [str(slow_cpu), "--python", sys.executable, "--", sys.executable, __file__]
    env = dict(os.environ, SLOW_CPU_FACTOR=f"{factor:.3f}", D2LHELPERS_DATA_SOURCE="standin")
    done = subprocess.run([*command, "--step", *args], capture_output=True, text=True, env=env)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith(RESULT_MARK)]
    if done.returncode != 0 or not lines:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
        failure = f"exit {done.returncode}: {tail}"
        result = {"seconds": 0.0, "images": {}, "size": 0, "slowest": "", "failures": [failure]}
    else:
        result = json.loads(lines[-1][len(RESULT_MARK) :])
    return {**result, "factor": factor}


def table(results: dict[str, dict]) -> tuple[str, bool]:
    """The budget table in Markdown, and whether every step held its budget."""
    rows = [
        "| step | training image-passes | evaluation image-passes | crop | here (s) | factor "
        "| slow CPU, estimated (min) | budget (min) | left (min) | slowest cells here |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    ok = True
    for name, r in results.items():
        estimate = r["seconds"] * r["factor"] / 60
        budget = BUDGETS_MIN[name]
        held = not r["failures"] and estimate <= budget
        ok &= held
        images = r["images"]
        rows.append(
            f"| {name} | {images.get('with_grad', 0):,} | {images.get('no_grad', 0):,} "
            f"| {r['size']} px | {r['seconds']:.0f} | {r['factor']:.2f} | {estimate:.1f} "
            f"| {budget} | {budget - estimate:+.1f}{'' if held else ' OVER'} | {r['slowest']} |"
        )
    return "\n".join(rows), ok


def header() -> str:
    import torch

    from d2lhelpers.machine import cpu_name, usable_cores

    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"Command: `make budget` ({when}; {cpu_name()}, {usable_cores()} cores, torch "
        f"{torch.__version__}; under `slow-cpu`'s AVX2/fp32 limits, the factor calibrated "
        "before each step: estimate = wall time here x factor, an upper bound by the tool's "
        "own account)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--slow-cpu", type=Path, default=SLOW_CPU, help="the slow-cpu tool")
    parser.add_argument("--pages", nargs="*", default=None, help="names in chapters/ (all)")
    parser.add_argument("--step", nargs=2, metavar=("WHAT", "DATA"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.step:  # a child: one step, under the limits its parent set
        what, data = args.step
        result = step_standin(Path(data)) if what == "standin" else step_page(what, Path(data))
        print(RESULT_MARK + json.dumps(result), flush=True)
        return 0
    if not args.slow_cpu.is_file():
        parser.error(f"{args.slow_cpu} not found: pass --slow-cpu PATH (the shared slow-cpu tool)")
    pages = args.pages or [p.name for p in CHAPTERS.glob("*.ipynb")]
    unknown = [p for p in pages if p not in BUDGETS_MIN]
    pages = [p for p in BUDGETS_MIN if p in pages]  # the reader's order
    if unknown:
        parser.error(f"no budget for {unknown}: add one to BUDGETS_MIN in {__file__}")
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="d2lhelpers-budget-") as data:
        for name in [STANDIN, *pages]:
            what = "standin" if name == STANDIN else name
            print(f"budget: {name} ...", file=sys.stderr, flush=True)
            results[name] = run_step(args.slow_cpu, [what, data])
            for failure in results[name]["failures"]:
                print(f"budget: FAILED: {name}: {failure}", file=sys.stderr)
    text, ok = table(results)
    report = f"{header()}\n\n{text}\n"
    RESULTS.write_text(report, encoding="utf-8")
    print(report)
    verdict = "every step within its budget" if ok else "OVER BUDGET or FAILED"
    print(f"budget: {verdict}; written to {RESULTS.relative_to(ROOT)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
