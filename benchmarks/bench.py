"""Fine-tuning speed: d2l 1.0.3's chapter code versus ``d2lhelpers``, the same work, A/B.

Both sides fine-tune the same ResNet-18 (by default the stand-in source model of
:mod:`d2lhelpers.standin`, so that the accuracies mean something; ``--source random`` takes a
randomly initialised one for quick smoke runs), saved once to disk and given a new two-class
head under the same seed, on the same JPEG files, with the
same batch size, epochs, seed and SGD steps:

* **reference**: ``d2l.train_ch13`` with torchvision's ``ImageFolder``, PIL and the chapter's
  transforms, a ``DataLoader`` (``--ref-workers``, default 0 as in the chapter), a summed
  ``CrossEntropyLoss(reduction="none")`` and SGD with the chapter's parameter groups (body lr,
  head lr x 10, weight decay 0.001), in float32;
* **ours**: :func:`d2lhelpers.finetune.train_fine_tuning` (decode-once uint8 cache, batched
  augmentation on the device, channels-last, bf16 autocast where the CPU runs it natively,
  mean loss with lr x batch size and weight decay / batch size: the same steps as d2l's).

Repeat r (from 0) runs its trials with seed ``--seed + r``: reference and ours of one repeat
start from identical weights, different repeats from different new heads. The report pairs the
two sides' final test accuracies by repeat (*accuracy parity*: each side's mean, and ours -
reference per seed). The drawn images and a ``--source random`` model use ``--seed`` itself.

Every trial (one side, one size, one repeat) runs in a fresh subprocess, so its peak RSS is its
own and no warm cache in one process favours a side; the sides alternate (A/B, then B/A) so that
machine drift hits both. A warm-up subprocess per size first builds ours' decoded cache (its
one-off cost is reported separately) and reads every JPEG once (page cache), so the timed
trials measure steady-state training. A *frozen-body sweep* (5 head multipliers x 5 epochs at
the stand-in's 64 px) compares :class:`d2lhelpers.sweep.Sweeper` on cached features with
training the same runs through the whole frozen network.

Timing: one thin wrapper around each side's training and test loaders records the seconds of
every full pass over them (the device synchronised at both ends). A training pass holds data
loading, augmentation, forward, backward and step (and, for d2l, its plot updates); an
evaluation pass holds loading and forward. Training images/s = images trained / training-pass
seconds, so evaluation is excluded; total wall time covers building the loaders, training and
every evaluation.

Usage (from the repository root; results in ``benchmarks/results/<name>.{json,md}``, the name
being ``--name`` or else the device, e.g. ``cpu``)::

    pip install -r benchmarks/requirements.txt && pip install --no-deps d2l==1.0.3
    python -m benchmarks.bench                     # or: python benchmarks/bench.py
    python -m benchmarks.bench --sizes 64 --repeats 1 --skip-frozen   # a quick look
    # accuracy parity at 64 px over 5 seeds, next to the default results (one command line):
    python -m benchmarks.bench --sizes 64 --train-per-class 1000 --test-per-class 400
        --epochs 5 --repeats 5 --skip-frozen --name cpu-parity

Defaults: sizes 64 and 224, 320 + 100 images per class (train + test: 5 training batches of
128, the fewest ``train_ch13`` accepts, since it plots every ``num_batches // 5`` batches),
batch 128, 3 epochs, 3 repeats. On an idle 2-core CPU (reference about 20 images/s at 224 px,
ours about 50) a full run takes about 12-15 minutes: about 7 for the 224 px trials, 2 for the
64 px ones, 2 for the frozen sweep, 2 for drawing the images (first run only), the warm-ups
and starting 20 processes. On a busy CPU see ``--threads``. The same command runs unchanged
on a CUDA machine (``--device auto`` picks it), where it takes a few minutes; there, larger
``--train-per-class`` values give steadier numbers.

This module is the entry point and the driver (data, source model, schedule, one subprocess
per trial); :mod:`benchmarks.trials` is what a trial process runs, :mod:`benchmarks.stats`
summarises the trials and :mod:`benchmarks.report` writes the JSON and Markdown report.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repository's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from torchvision.models import resnet18

from benchmarks.report import build_report, write_outputs
from benchmarks.stats import train_rate
from benchmarks.trials import FROZEN_METHODS, SIDES, Trial, trial_main
from d2lhelpers.data import Recipe
from d2lhelpers.fileutil import atomic_write
from d2lhelpers.standin import ImageSetSpec, load_source_checkpoint, write_image_set
from d2lhelpers.standin_draw import TARGET_CLASSES, draw_target

BENCH_DIR = Path(__file__).resolve().parent
MIN_SIDE, MAX_SIDE = 300, 600  # the real photos vary in size and aspect
MIN_D2L_BATCHES = 5  # train_ch13 computes i % (num_batches // 5)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; checked unless it is a trial process's (``--trial``)."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench",
        description="d2l 1.0.3's fine-tuning code versus d2lhelpers, A/B, one process per trial.",
    )
    add = parser.add_argument
    add("--sizes", type=int, nargs="+", default=[64, 224], help="crop sizes in pixels")
    add("--train-per-class", type=int, default=320, help="training images per class")
    add("--test-per-class", type=int, default=100, help="test images per class")
    add("--epochs", type=int, default=3)
    add("--batch-size", type=int, default=128)
    add("--repeats", type=int, default=3, help="timed trials per side and size")
    add("--data-dir", type=Path, default=BENCH_DIR / "data", help="JPEGs and caches")
    add("--out-dir", type=Path, default=BENCH_DIR / "results", help="JSON and Markdown")
    add("--name", help="stem of the output files (default: the device, e.g. cpu)")
    add("--device", choices=("auto", "cpu", "cuda"), default="auto")
    add("--seed", type=int, default=0, help="seed of the images and of repeat 1 (+1 per repeat)")
    add("--source", choices=("standin", "random"), default="standin", help="source weights")
    add("--ref-workers", type=int, default=0, help="DataLoader workers of the reference")
    add("--threads", type=int, default=0, help="torch threads per trial (0: torch's default)")
    add("--skip-frozen", action="store_true", help="skip the frozen-body sweep")
    add("--frozen-size", type=int, default=64, help="crop size of the frozen-body sweep")
    add("--frozen-epochs", type=int, default=5, help="epochs per run of the frozen sweep")
    add("--trial", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.trial is None:
        check_args(parser, args)
    return args


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse settings that cannot run, naming the reason."""
    for name in ("epochs", "repeats", "frozen_epochs", "test_per_class"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1.")
    if args.batch_size < 2:
        parser.error("--batch-size must be at least 2 (BatchNorm needs two examples).")
    if min([*args.sizes, args.frozen_size]) < 8:
        parser.error("crop sizes must be at least 8 pixels.")
    batches = math.ceil(2 * args.train_per_class / args.batch_size)
    if batches < MIN_D2L_BATCHES:
        parser.error(
            f"d2l.train_ch13 needs at least {MIN_D2L_BATCHES} training batches per epoch "
            f"(it plots every num_batches // 5 batches); {2 * args.train_per_class} images in "
            f"batches of {args.batch_size} give {batches}. Raise --train-per-class or lower "
            "--batch-size."
        )


def resolve_device(choice: str) -> str:
    """``cpu`` or ``cuda`` for ``--device`` (``auto``: CUDA when available)."""
    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available.")
    return choice


def prepare_data(args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    """Draw the JPEG set once (hot dog layout, 300-600 px sides); describe it."""
    spec = ImageSetSpec(
        args.train_per_class, args.test_per_class, MIN_SIDE, MAX_SIDE, seed=args.seed
    )
    root = args.data_dir / f"hotdog-{spec.key('bench', TARGET_CLASSES)}"
    start = time.perf_counter()
    existed = root.exists()
    write_image_set(root, TARGET_CLASSES, draw_target, spec, progress=False)
    files = sorted(root.glob("*/*/*.jpg"))
    info = {
        "root": str(root),
        "train_images": 2 * args.train_per_class,
        "test_images": 2 * args.test_per_class,
        "side_range_px": [MIN_SIDE, MAX_SIDE],
        "jpeg_quality": spec.jpeg_quality,
        "jpeg_bytes_total": sum(path.stat().st_size for path in files),
        "draw_seconds": None if existed else time.perf_counter() - start,
    }
    return root, info


def prepare_source(data_dir: Path, seed: int, kind: str) -> Path:
    """The source ResNet-18's weights, saved once so that both sides load the same state.

    ``standin``: the stand-in source model shipped with the package (``make standin-model``);
    ``random``: a seeded randomly initialised ResNet-18.
    """
    path = data_dir / f"source-resnet18-{kind}-seed{seed}.pt"
    if not path.exists():
        if kind == "standin":
            state = load_source_checkpoint()["state_dict"]
        else:
            torch.manual_seed(seed)
            state = resnet18().state_dict()
        atomic_write(path, lambda f: torch.save(state, f))
    return path


def clear_decoded(root: Path, stored_sizes: Iterable[int]) -> None:
    """Remove ours' decoded caches of these sides, so that the warm-up measures a build."""
    for stored in stored_sizes:
        for path in (root / ".decoded").glob(f"*-{stored}px-*"):
            path.unlink()


def run_trial(trial: Trial, env: dict[str, str]) -> dict[str, Any]:
    """Run one trial in a fresh Python process and return its result."""
    spec = Path(trial.result_path).with_suffix(".spec.json")
    atomic_write(spec, lambda f: f.write(json.dumps(asdict(trial)).encode()))
    command = [sys.executable, str(Path(__file__).resolve()), "--trial", str(spec)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"{trial.kind} trial ({trial.size} px, repeat {trial.repeat}) failed "
            f"with exit status {done.returncode}:\n{done.stderr[-4000:]}"
        )
    return json.loads(Path(trial.result_path).read_text())


def schedule(args: argparse.Namespace) -> list[tuple[str, int, int]]:
    """(kind, size, repeat) in run order: warm-ups, then A/B and B/A pairs, then the sweep."""
    sizes = list(dict.fromkeys(args.sizes))
    warm = sizes + ([args.frozen_size] if not args.skip_frozen else [])
    order = [("warmup", size, 0) for size in dict.fromkeys(warm)]
    for repeat in range(args.repeats):
        sides = SIDES if repeat % 2 == 0 else SIDES[::-1]
        order += [(side, size, repeat) for size in sizes for side in sides]
    if not args.skip_frozen:
        for repeat in range(args.repeats):
            methods = FROZEN_METHODS if repeat % 2 == 0 else FROZEN_METHODS[::-1]
            order += [(kind, args.frozen_size, repeat) for kind in methods]
    return order


def run_all(args: argparse.Namespace, root: Path, source: Path, device: str) -> list[dict]:
    """Every trial of the schedule, each in its own subprocess; progress on stderr."""
    env = dict(os.environ)
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # d2l's DataParallel rejects CPU devices next to GPUs
    plan = schedule(args)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        for number, (kind, size, repeat) in enumerate(plan, start=1):
            trial = Trial(
                kind=kind,
                size=size,
                repeat=repeat,
                data_root=str(root),
                source_path=str(source),
                device=device,
                batch_size=args.batch_size,
                epochs=args.frozen_epochs if kind in FROZEN_METHODS else args.epochs,
                seed=args.seed + repeat,
                ref_workers=args.ref_workers,
                threads=args.threads,
                result_path=str(Path(tmp) / f"trial-{number}.json"),
            )
            result = run_trial(trial, env)
            results.append(result)
            print(f"[{number}/{len(plan)}] {describe(result)}", file=sys.stderr, flush=True)
    return results


def describe(result: dict[str, Any]) -> str:
    """One trial's progress line."""
    head = f"{result['kind']:>14} {result['size']:>3} px, repeat {result['repeat'] + 1}: "
    if result["kind"] == "warmup":
        return head + f"cache built in {result['train_build_seconds']:.1f} s (train)"
    if result["kind"] in FROZEN_METHODS:
        return head + f"{result['wall_seconds']:.1f} s"
    return head + f"{train_rate(result):.1f} train img/s, {result['wall_seconds']:.1f} s in all"


def warn_if_busy() -> None:
    """Timings on a loaded CPU mean little (torch's threads wait on each other): say so."""
    cores = os.cpu_count() or 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load > 0.5 * cores:
        print(
            f"Warning: load average {load:.1f} on {cores} cores; the timings will be noisy. "
            "On a busy machine torch's spinning OpenMP threads can slow small operations "
            "a hundredfold: run when idle, or with --threads 1 or OMP_WAIT_POLICY=PASSIVE.",
            file=sys.stderr,
        )


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark (or, with ``--trial``, one trial) and write its report."""
    args = parse_args(argv)
    if args.trial is not None:
        trial_main(args.trial)
        return
    args.device = resolve_device(args.device)
    warn_if_busy()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    root, data = prepare_data(args)
    source = prepare_source(args.data_dir, args.seed, args.source)
    sizes = set(args.sizes) | (set() if args.skip_frozen else {args.frozen_size})
    recipes = [Recipe(size) for size in sizes]
    stored_sizes = {side for recipe in recipes for side in (recipe.resize_side, recipe.train_side)}
    clear_decoded(root, stored_sizes)
    results = run_all(args, root, source, args.device)
    report = build_report(args, data, results)
    json_path, md_path = write_outputs(report, args.out_dir, args.name or args.device)
    sys.stdout.write(md_path.read_text())
    print(f"Wrote {json_path} and {md_path}", file=sys.stderr)


if __name__ == "__main__":
    main()
