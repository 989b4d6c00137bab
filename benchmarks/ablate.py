"""Where ours' CPU speed comes from: one training epoch per combination, side by side.

For each crop size: the loader alone (decode-once cache + batched augmentation), then one
epoch of a ResNet-18 in fp32 / bf16 autocast, NCHW / channels-last. Uses the JPEGs that
``make bench`` drew into ``benchmarks/data``. One epoch each, so the figures are indicative;
``make bench`` gives the repeated, alternating comparison against d2l. Run after ``make bench``:

    .venv/bin/python -m benchmarks.ablate
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torchvision.models import resnet18

from d2lhelpers.data import HOTDOG_CLASSES, BatchLoader, DecodedImages, Recipe, decode_folder
from d2lhelpers.precision import choose_precision
from d2lhelpers.train import train_one_epoch

BENCH_DATA = Path(__file__).resolve().parent / "data"


def loader_rate(images: DecodedImages, recipe: Recipe, channels_last: bool) -> float:
    loader = BatchLoader(images, 128, recipe, train=True, channels_last=channels_last)
    start = time.perf_counter()
    count = sum(len(y) for _, y in loader)
    return count / (time.perf_counter() - start)


def train_rate(images: DecodedImages, recipe: Recipe, precision: str, channels_last: bool) -> float:
    torch.manual_seed(0)
    net = resnet18(num_classes=len(HOTDOG_CLASSES))
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    loader = BatchLoader(images, 128, recipe, train=True, channels_last=channels_last)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
    start = time.perf_counter()
    _, _, count = train_one_epoch(
        net, loader, optimizer, choose_precision(torch.device("cpu"), precision)
    )
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=BENCH_DATA)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 224])
    args = parser.parse_args()
    roots = sorted(p for p in args.data_dir.glob("hotdog-*") if p.is_dir())
    if not roots:
        raise SystemExit(f"No benchmark images in {args.data_dir}: run `make bench` first.")
    print("| size | what | img/s |\n| ---: | --- | ---: |")
    for size in args.sizes:
        recipe = Recipe(size)
        images = decode_folder(roots[0] / "train", recipe.stored_size, HOTDOG_CLASSES)
        for channels_last in (False, True):
            rate = loader_rate(images, recipe, channels_last)
            print(f"| {size} | loader only, channels-last {channels_last} | {rate:.0f} |")
        for precision in ("fp32", "bf16"):
            for channels_last in (False, True):
                rate = train_rate(images, recipe, precision, channels_last)
                print(f"| {size} | train {precision}, channels-last {channels_last} | {rate:.1f} |")


if __name__ == "__main__":
    main()
