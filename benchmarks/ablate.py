"""Where ours' CPU speed comes from: one training epoch per combination, side by side.

For each crop size: the reference's loader alone (d2l's chapter: torchvision ``ImageFolder``,
PIL decoding and the chapter's per-image training transforms, a ``DataLoader`` of batch 128,
shuffled, no workers), ours' loader alone (decode-once cache + batched augmentation), then one
epoch of a ResNet-18 in fp32 / bf16 autocast, NCHW / channels-last. One epoch each, so the
figures are indicative; ``make bench`` gives the repeated, alternating comparison against d2l.

``--compile`` adds, per size, a ResNet-18 under ``torch.compile`` (channels-last, bf16 autocast
where :func:`~d2lhelpers.precision.choose_precision` picks it) against the same model eager,
``--compile-epochs`` epochs each: the first compiled epoch (a cold compilation, as in a fresh
session: the compiler's cache is a new, empty temporary folder), both steady-state rates (the
later epochs), the break-even (the epochs of the chapter's 2,000 training images after which the
time saved repays the compilation) and the net time saved over the chapter's 5 epochs. Training
only: the compilation of the evaluation graph, and the recompilation for a shorter last batch
when the set does not split into whole batches, are not counted. A compilation that fails is
reported as a row.

Uses the JPEGs that ``make bench`` drew into ``benchmarks/data`` (the set with the fewest
training images, or ``--data-root``). Run after ``make bench``:

    .venv/bin/python -m benchmarks.ablate
    .venv/bin/python -m benchmarks.ablate --compile
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from unittest import mock

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision.datasets import ImageFolder
from torchvision.models import resnet18

from benchmarks.trials import chapter_transforms
from d2lhelpers.data import HOTDOG_CLASSES, BatchLoader, DecodedImages, Recipe, decode_folder
from d2lhelpers.precision import Precision, choose_precision
from d2lhelpers.train import train_one_epoch

BENCH_DATA = Path(__file__).resolve().parent / "data"
BATCH_SIZE = 128
CHAPTER_TRAIN_IMAGES = 2000  # the chapter's hot dog training set: 1,000 images per class
CHAPTER_EPOCHS = 5
CPU = torch.device("cpu")


def reference_loader_rate(root: Path, size: int) -> float:
    """Images/s of one epoch of d2l's chapter loader, after reading every JPEG once."""
    for path in root.glob("train/*/*.jpg"):
        path.read_bytes()  # page cache, as bench.py's warm-up
    train_augs, _ = chapter_transforms(size)
    dataset = ImageFolder(root / "train", transform=train_augs)
    loader = DataLoader(dataset, batch_size=BATCH_SIZE, shuffle=True, num_workers=0)
    start = time.perf_counter()
    count = sum(len(y) for _, y in loader)
    return count / (time.perf_counter() - start)


def loader_rate(images: DecodedImages, recipe: Recipe, channels_last: bool) -> float:
    loader = BatchLoader(images, BATCH_SIZE, recipe, train=True, channels_last=channels_last)
    start = time.perf_counter()
    count = sum(len(y) for _, y in loader)
    return count / (time.perf_counter() - start)


def new_resnet(channels_last: bool) -> nn.Module:
    """A seeded, randomly initialised two-class ResNet-18."""
    torch.manual_seed(0)
    net = resnet18(num_classes=len(HOTDOG_CLASSES))
    return net.to(memory_format=torch.channels_last) if channels_last else net


def train_epochs(
    net: nn.Module,
    images: DecodedImages,
    recipe: Recipe,
    precision: Precision,
    epochs: int,
    channels_last: bool = True,
) -> tuple[int, list[float]]:
    """Train ``net`` for ``epochs`` epochs; the images per epoch and each epoch's seconds."""
    loader = BatchLoader(images, BATCH_SIZE, recipe, train=True, channels_last=channels_last)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
    seconds, count = [], 0
    for _ in range(epochs):
        start = time.perf_counter()
        _, _, count = train_one_epoch(net, loader, optimizer, precision)
        seconds.append(time.perf_counter() - start)
    return count, seconds


def train_rate(images: DecodedImages, recipe: Recipe, precision: str, channels_last: bool) -> float:
    net, chosen = new_resnet(channels_last), choose_precision(CPU, precision)
    count, [seconds] = train_epochs(net, images, recipe, chosen, 1, channels_last)
    return count / seconds


def payback(compile_seconds: float, eager_rate: float, compiled_rate: float) -> str:
    """Two cells: the chapter epochs that repay the compilation, the net saving in its 5."""
    saved = CHAPTER_TRAIN_IMAGES * (1 / eager_rate - 1 / compiled_rate)  # per chapter epoch
    epochs = f"{compile_seconds / saved:.1f}" if saved > 0 else "never (not faster)"
    return f"{epochs} | {CHAPTER_EPOCHS * saved - compile_seconds:+.1f}"


def compiled_epochs(
    images: DecodedImages, recipe: Recipe, precision: Precision, epochs: int
) -> list[float]:
    """Epoch seconds of a compiled ResNet-18, compiled cold in an empty, temporary cache."""
    torch.compiler.reset()
    with (
        tempfile.TemporaryDirectory(prefix="ablate-compile-") as cache,
        mock.patch.dict(os.environ, {"TORCHINDUCTOR_CACHE_DIR": cache}),
    ):
        net = torch.compile(new_resnet(True))
        _, seconds = train_epochs(net, images, recipe, precision, epochs)
    return seconds


def compile_row(size: int, images: DecodedImages, recipe: Recipe, epochs: int) -> str:
    """Eager against ``torch.compile``: rates after the first epoch, compile cost, break-even."""
    precision = choose_precision(CPU)
    count, eager = train_epochs(new_resnet(True), images, recipe, precision, epochs)
    eager_rate = count * (epochs - 1) / sum(eager[1:])
    head = f"| {size} | {precision.name} | {eager[0]:.2f} | {eager_rate:.1f} |"
    try:
        compiled = compiled_epochs(images, recipe, precision, epochs)
    except Exception as error:  # compiler or toolchain failure: report it and carry on
        message = str(error).strip().partition("\n")[0][:200].replace("|", "/")
        return f"{head} failed: {type(error).__name__}: {message} | | | | |"
    compiled_rate = count * (epochs - 1) / sum(compiled[1:])
    compile_seconds = compiled[0] - count / compiled_rate
    return (
        f"{head} {compiled_rate:.1f} | {compiled[0]:.2f} | {compile_seconds:.1f} "
        f"| {payback(compile_seconds, eager_rate, compiled_rate)} |"
    )


def print_compile_table(rows: list[str], epochs: int) -> None:
    print(
        f"\n`torch.compile` against eager, ResNet-18, channels-last, {epochs} epochs each; "
        f"steady state = epochs 2-{epochs}; compile s = first compiled epoch - a steady one; "
        f"break-even in epochs of the chapter's {CHAPTER_TRAIN_IMAGES:,} training images "
        f"(the chapter trains {CHAPTER_EPOCHS}); s saved = the time compiling saves over the "
        f"chapter's {CHAPTER_EPOCHS} epochs, compilation paid (negative: a loss).\n"
    )
    print(
        "| size | precision | eager epoch 1 s | eager img/s | compiled img/s | compiled epoch 1 s "
        f"| compile s | break-even epochs | s saved in {CHAPTER_EPOCHS} epochs |"
    )
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print("\n".join(rows))


def image_set(args: argparse.Namespace) -> Path:
    """``--data-root``, else the set in ``--data-dir`` with the fewest training JPEGs."""
    if args.data_root is not None:
        return args.data_root
    roots = [p for p in args.data_dir.glob("hotdog-*") if p.is_dir()]
    if not roots:
        raise SystemExit(f"No benchmark images in {args.data_dir}: run `make bench` first.")
    return min(roots, key=lambda root: sum(1 for _ in root.glob("train/*/*.jpg")))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=BENCH_DATA)
    parser.add_argument("--data-root", type=Path, help="one hotdog-* set (default: smallest)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 224])
    parser.add_argument("--compile", action="store_true", help="measure torch.compile too")
    parser.add_argument("--compile-epochs", type=int, default=3, help="epochs, eager and compiled")
    args = parser.parse_args()
    if args.compile_epochs < 2:
        parser.error("--compile-epochs must be at least 2 (the first one compiles).")
    return args


def main() -> None:
    args = parse_args()
    root = image_set(args)
    print(f"Images: {root} ({sum(1 for _ in root.glob('train/*/*.jpg'))} training JPEGs)\n")
    print("| size | what | img/s |\n| ---: | --- | ---: |")
    compile_rows = []
    for size in args.sizes:
        rate = reference_loader_rate(root, size)
        print(f"| {size} | reference loader only (ImageFolder, PIL transforms) | {rate:.0f} |")
        recipe = Recipe(size)
        images = decode_folder(root / "train", recipe.train_side, HOTDOG_CLASSES)
        for channels_last in (False, True):
            rate = loader_rate(images, recipe, channels_last)
            print(f"| {size} | ours' loader only, channels-last {channels_last} | {rate:.0f} |")
        for precision in ("fp32", "bf16"):
            for channels_last in (False, True):
                rate = train_rate(images, recipe, precision, channels_last)
                print(f"| {size} | train {precision}, channels-last {channels_last} | {rate:.1f} |")
        if args.compile:
            compile_rows.append(compile_row(size, images, recipe, args.compile_epochs))
    if compile_rows:
        print_compile_table(compile_rows, args.compile_epochs)


if __name__ == "__main__":
    main()
