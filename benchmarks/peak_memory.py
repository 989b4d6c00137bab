"""Peak GPU memory of the chapter's training at 224 px, and whether Colab's free T4 holds it.

For each precision, one epoch of :func:`d2lhelpers.finetune.train_fine_tuning` (the chapter's
recipe and batch size, an ImageNet-shaped ResNet-18 given a two-class head) in a fresh
allocator state, on random decoded images (``--images`` training images, as many held out:
the chapter's evaluation batches are twice its training batches). Reported per precision:

* the peak of memory allocated and reserved by torch's caching allocator
  (``torch.cuda.max_memory_allocated`` and ``max_memory_reserved``);
* the device memory the process held beyond the allocator's (the CUDA context, loaded
  kernels), read as total - free - reserved after the run;
* needed = peak reserved + that, against a T4's 15,360 MiB (what ``nvidia-smi`` shows).

cuDNN chooses its algorithms, and their workspaces, per GPU, so on a T4 the figure can differ
by its workspaces. On a CPU the same code runs and the memory figures are None.

    python -m benchmarks.peak_memory --device cuda --precisions fp16 bf16 --out peak.json
"""

from __future__ import annotations

import argparse
import gc
import json
from pathlib import Path

import torch
from torchvision.models import resnet18

from benchmarks.loop_vs_bare import random_split, write_text
from d2lhelpers.chapter import chapter_settings
from d2lhelpers.data import HotdogData, Recipe
from d2lhelpers.finetune import train_fine_tuning
from d2lhelpers.models import make_target_model
from d2lhelpers.run import Run

T4_MIB = 15_360  # a T4's memory as nvidia-smi shows it
MIB = 2**20


def random_data(images: int, size: int) -> HotdogData:
    """``images`` random training images and as many held out, decoded for a ``size`` crop."""
    recipe = Recipe(size)
    train = random_split(images, recipe.train_side, seed=1)
    held_out = random_split(images, recipe.resize_side, seed=2)
    return HotdogData(train, held_out, recipe)


def fresh_peaks(device: torch.device) -> None:
    """Release cached blocks and reset the allocator's peaks, so that a run's are its own."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def memory_row(device: torch.device) -> dict[str, float | bool | None]:
    """The allocator's peaks, the memory held beyond them, and the T4 verdict (None on a CPU)."""
    if device.type != "cuda":
        return dict.fromkeys(
            ("allocated_mib", "reserved_mib", "beyond_mib", "needed_mib", "fits_t4")
        )
    torch.cuda.synchronize(device)
    free, total = torch.cuda.mem_get_info(device)
    reserved = torch.cuda.max_memory_reserved(device) / MIB
    beyond = (total - free - torch.cuda.memory_reserved(device)) / MIB
    return {
        "allocated_mib": torch.cuda.max_memory_allocated(device) / MIB,
        "reserved_mib": reserved,
        "beyond_mib": beyond,
        "needed_mib": reserved + beyond,
        "fits_t4": reserved + beyond <= T4_MIB,
    }


def measure(data: HotdogData, batch_size: int, precision: str, device: torch.device) -> dict:
    """One epoch of the chapter's fine-tuning under ``precision``, and its memory."""
    fresh_peaks(device)
    torch.manual_seed(0)
    net = make_target_model(resnet18(), num_classes=2)
    rate = chapter_settings("real")["finetune_lr"]
    run = Run(device=device, precision=precision)
    history = train_fine_tuning(net, data, rate, batch_size, num_epochs=1, run=run)
    row = {"request": precision, "precision": history.precision, "status": history.status}
    return row | memory_row(device)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda")
    parser.add_argument("--size", type=int, default=224, help="crop size in pixels")
    parser.add_argument("--batch-size", type=int, default=chapter_settings("real")["batch_size"])
    parser.add_argument("--images", type=int, default=256, help="training images (2 batches)")
    parser.add_argument("--precisions", nargs="+", default=["fp16", "bf16"])
    parser.add_argument("--out", type=Path, required=True, help="the JSON to write")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA GPU here; use --device cpu.")
    data = random_data(args.images, args.size)
    rows = [measure(data, args.batch_size, p, device) for p in args.precisions]
    report = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "size": args.size,
        "batch_size": args.batch_size,
        "images": args.images,
        "t4_mib": T4_MIB,
        "rows": rows,
    }
    write_text(args.out, json.dumps(report, indent=1))
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
