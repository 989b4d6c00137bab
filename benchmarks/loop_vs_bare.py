"""How close the training loop comes to the bare model step, and where the rest goes.

Measured side by side in one process, on the same channels-last ResNet-18 (two classes), the
same batch size, precision and thread count, each row an epoch of ``--images`` training images
after an untimed warm-up epoch, the median of ``--repeats`` interleaved measurements:

* ``model``: forward, loss and backward of fixed random batches: no data, no optimizer (the
  "bare model step");
* ``model + SGD``: the same with the optimizer's step (SGD, momentum 0, weight decay);
* ``loop, fixed batches``: :func:`d2lhelpers.train.train_one_epoch` over the same fixed batches
  (adds its bookkeeping: loss and accuracy sums, the finiteness check);
* ``loop, loader``: ``train_one_epoch`` over a :class:`~d2lhelpers.data.BatchLoader` of decoded
  images (adds the batched crops, flips and normalisation): what the chapter runs;
* ``loader alone``: the loader's batches, no model;
* ``evaluation``: :func:`d2lhelpers.train.evaluate` over the test loader (images/s of forward
  passes; the chapter evaluates its test split after every epoch).

The ratio that matters is ``loop, loader`` / ``model``. The decoded images are random pixels
with random photo sizes (the loader's work does not depend on the content). On a GPU
(``--device cuda``) the decoded images stay in host memory, as the chapter's do, and every
measurement waits for the device at its start and end.

    .venv/bin/python -m benchmarks.loop_vs_bare --sizes 64 224 --precisions fp32 bf16
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet18

from d2lhelpers.data import BatchLoader, DecodedImages, Recipe
from d2lhelpers.fileutil import atomic_write
from d2lhelpers.machine import cpu_name
from d2lhelpers.precision import Precision, choose_precision
from d2lhelpers.train import evaluate, train_one_epoch

RESULTS = Path(__file__).resolve().parent / "results"
CPU = torch.device("cpu")


def random_split(count: int, stored_size: int, seed: int) -> DecodedImages:
    """``count`` random uint8 images of side ``stored_size``, two classes, photo sizes 80-600."""
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randint(
        0, 256, (count, 3, stored_size, stored_size), dtype=torch.uint8, generator=g
    )
    labels = torch.arange(count) % 2
    sizes = torch.randint(80, 601, (count, 2), generator=g)
    return DecodedImages(
        pixels, labels, [f"{i}.jpg" for i in range(count)], ("a", "b"), sizes=sizes
    )


def fresh_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return resnet18(num_classes=2).to(memory_format=torch.channels_last)


def sgd(net: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(net.parameters(), lr=1e-3, weight_decay=1e-3 / 128)


def model_steps(net: nn.Module, batches, precision: Precision, optimizer=None) -> None:
    """Forward, loss and backward of each batch; the optimizer's step when one is given."""
    net.train()
    for x, y in batches:
        with precision.autocast():
            loss = F.cross_entropy(net(x), y)
        if optimizer is not None:
            optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if optimizer is not None:
            optimizer.step()


def consume(batches) -> None:
    for _ in batches:
        pass


def sync(device: torch.device) -> None:
    """Wait for the device, so that a clock reading covers the work queued so far."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(work: Callable[[], object], images: int, device: torch.device = CPU) -> float:
    """Images per second of ``work()`` on ``device``."""
    sync(device)
    start = time.perf_counter()
    work()
    sync(device)
    return images / (time.perf_counter() - start)


def measure(
    size: int,
    precision_name: str,
    images: int,
    batch_size: int,
    repeats: int,
    device: torch.device = CPU,
) -> dict[str, float]:
    """Every row of the module docstring for one crop size and precision on ``device``: the
    median of ``repeats`` interleaved measurements."""
    recipe = Recipe(size)
    precision = choose_precision(device, precision_name)
    train = random_split(images, recipe.train_side, seed=1)
    test = random_split(images // 2, recipe.resize_side, seed=2)
    loader = BatchLoader(train, batch_size, recipe, train=True, seed=0, device=device)
    test_loader = BatchLoader(test, 2 * batch_size, recipe, train=False, device=device)
    fixed = [(x.clone(), y.clone()) for x, y in loader]  # the same crops, made once
    net = fresh_net().to(device)
    optimizer = sgd(net)
    model_steps(net, fixed, precision, optimizer)  # warm-up epoch: oneDNN's kernels, allocator
    evaluate(net, test_loader, precision)
    rows = {
        "model": lambda: model_steps(net, fixed, precision),
        "model + SGD": lambda: model_steps(net, fixed, precision, optimizer),
        "loop, fixed batches": lambda: train_one_epoch(net, fixed, optimizer, precision),
        "loop, loader": lambda: train_one_epoch(net, loader, optimizer, precision),
        "loader alone": lambda: consume(loader),
    }
    rows["evaluation"] = lambda: evaluate(net, test_loader, precision)
    counts = dict.fromkeys(rows, images) | {"evaluation": len(test)}
    samples = {name: [] for name in rows}
    for _ in range(repeats):  # interleaved, so that a busy moment does not hit one row only
        for name, work in rows.items():
            samples[name].append(timed(work, counts[name], device))
    return {name: statistics.median(values) for name, values in samples.items()}


def machine(report: dict) -> str:
    """The GPU and its host, or the CPU and its threads, in a few words."""
    if report.get("gpu"):
        return f"GPU {report['gpu']}, host {report['cpu']}"
    return f"{report['cpu']}, {report['threads']} threads"


def markdown(report: dict) -> str:
    lines = [
        f"Command: `{report['command']}` ({report['finished']}; {machine(report)}, "
        f"torch {report['torch']}; batch {report['batch_size']}, "
        f"{report['images']} training images per row)",
        "",
        "| size | precision | model | model + SGD | loop, fixed batches | loop, loader "
        "| loader alone | evaluation | loop / model |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in report["rows"]:
        r = row["rates"]
        cells = [
            f"{r[k]:.1f}"
            for k in (
                "model",
                "model + SGD",
                "loop, fixed batches",
                "loop, loader",
                "loader alone",
                "evaluation",
            )
        ]
        ratio = r["loop, loader"] / r["model"]
        lines.append(
            f"| {row['size']} | {row['precision']} | " + " | ".join(cells) + f" | **{ratio:.2f}** |"
        )
    lines.append("")
    lines.append(
        "Images per second; the last column is the loop with its loader over the bare model step."
    )
    return "\n".join(lines) + "\n"


def write_text(path: Path, text: str) -> None:
    """Write a result file atomically (a killed run leaves the previous one whole)."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 224])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--images", type=int, default=1024, help="training images per row")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--name", default="loop-vs-bare")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--out-dir", type=Path, default=RESULTS, help="JSON and Markdown")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA GPU here; use --device cpu.")
    report = {
        "command": "python -m benchmarks.loop_vs_bare "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "cpu": cpu_name(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "batch_size": args.batch_size,
        "images": args.images,
        "rows": [],
    }
    for size in args.sizes:
        for name in args.precisions:
            rates = measure(size, name, args.images, args.batch_size, args.repeats, device)
            report["rows"].append({"size": size, "precision": name, "rates": rates})
            print(size, name, {k: round(v, 1) for k, v in rates.items()}, flush=True)
    report["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %z")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    write_text(args.out_dir / f"{args.name}.json", json.dumps(report, indent=1))
    write_text(args.out_dir / f"{args.name}.md", markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
