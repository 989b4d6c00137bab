"""The benchmark's trial worker: what one fresh subprocess runs, and the result it writes.

A :class:`Trial` names one unit of work (a warm-up, one side of the A/B comparison, or one
method of the frozen-body sweep) at one size and repeat; :func:`trial_main` runs it and writes
its result as JSON. The driver (:mod:`benchmarks.bench`) starts one process per trial.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import re
import resource
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision import transforms
from torchvision.models import resnet18

from d2lhelpers.data import HOTDOG_CLASSES, BatchLoader, HotdogData, Recipe, decode_folder
from d2lhelpers.fileutil import atomic_write
from d2lhelpers.finetune import WEIGHT_DECAY, train_fine_tuning
from d2lhelpers.models import find_head, freeze_body, make_target_model
from d2lhelpers.precision import choose_precision, cpu_has_native_bf16
from d2lhelpers.run import Run
from d2lhelpers.sweep import Sweeper, SweepSetting
from d2lhelpers.train import fit
from d2lhelpers.workspace import Workspace

D2L_LEARNING_RATE = 5e-5  # the chapter's fine-tuning rate for its summed loss
HEAD_MULTIPLIER = 10.0  # the chapter's output layer learns 10x faster
FROZEN_MULTIPLIERS = (1.0, 2.0, 5.0, 10.0, 20.0)
SIDES = ("reference", "ours")
FROZEN_METHODS = ("frozen-full", "frozen-sweeper")


@dataclass(frozen=True)
class Trial:
    """One unit of work for a fresh subprocess; ``kind`` says which."""

    kind: str  # "warmup", "reference", "ours", "frozen-full" or "frozen-sweeper"
    size: int
    repeat: int
    data_root: str
    source_path: str
    device: str
    batch_size: int
    epochs: int
    seed: int
    ref_workers: int
    threads: int
    result_path: str


def sync(device: torch.device) -> None:
    """Wait for the device, so that a clock reading covers the work queued so far."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class TimedBatches:
    """Iterates ``batches`` unchanged and records the seconds and images of every full pass."""

    def __init__(self, batches: Iterable, device: torch.device) -> None:
        self.batches, self.device = batches, device
        self.seconds: list[float] = []
        self.images: list[int] = []

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator:
        sync(self.device)
        start, count = time.perf_counter(), 0
        for x, y in self.batches:
            count += len(y)
            yield x, y
        sync(self.device)
        self.seconds.append(time.perf_counter() - start)
        self.images.append(count)

    def passes(self, prefix: str) -> dict[str, list]:
        """The recorded passes as result fields ``<prefix>_seconds`` and ``<prefix>_images``."""
        return {f"{prefix}_seconds": self.seconds, f"{prefix}_images": self.images}


@dataclass
class SavedSourceWorkspace(Workspace):
    """A :class:`Workspace` whose source model is the benchmark's saved ResNet-18."""

    source_state: dict[str, torch.Tensor] = field(kw_only=True, repr=False)

    def source_model(self) -> nn.Module:
        """A fresh copy of the saved source ResNet-18, in evaluation mode."""
        return resnet18_of(self.source_state).eval()


class TimedData(HotdogData):
    """:class:`HotdogData` whose loaders are wrapped in :class:`TimedBatches`."""

    timed: tuple[TimedBatches, TimedBatches]

    def loaders(self, batch_size, device="cpu", seed=0, augment=True):
        train, test = super().loaders(batch_size, device, seed, augment)
        device = torch.device(device)
        self.timed = (TimedBatches(train, device), TimedBatches(test, device))
        return self.timed


def load_source(path: str) -> nn.Module:
    """The saved source ResNet-18 (stand-in source model, or random weights)."""
    return resnet18_of(load_state(path))


def load_state(path: str) -> dict[str, torch.Tensor]:
    """The state dict saved at ``path``, on the CPU."""
    return torch.load(path, map_location="cpu", weights_only=True)


def resnet18_of(state: dict[str, torch.Tensor]) -> nn.Module:
    """A ResNet-18 with the weights of ``state`` (its output count read from them)."""
    net = resnet18(num_classes=state["fc.weight"].shape[0])
    net.load_state_dict(state)
    return net


def target_model(source: nn.Module, seed: int) -> nn.Module:
    """The two-class target model both sides start from (same seed, same head)."""
    torch.manual_seed(seed)
    return make_target_model(source, len(HOTDOG_CLASSES))


def state_digest(net: nn.Module) -> str:
    """A short hash of every parameter and buffer: proves both sides start identical."""
    digest = hashlib.sha1()
    for name, tensor in net.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]


def peak_rss_mib() -> float:
    """This process's peak resident set size so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def workspace_of(
    trial: Trial, cls: type[SavedSourceWorkspace] = SavedSourceWorkspace
) -> SavedSourceWorkspace:
    """A workspace on the benchmark's data whose source model is the saved ResNet-18."""
    root, recipe, state = Path(trial.data_root), Recipe(trial.size), load_state(trial.source_path)
    return cls("standin", root, recipe, "benchmark source ResNet-18", 0, source_state=state)


def run_warmup(trial: Trial) -> dict[str, Any]:
    """Build ours' decoded caches (timed: the one-off cost) and read every JPEG once."""
    root, recipe = Path(trial.data_root), Recipe(trial.size)
    sides = {"train": recipe.train_side, "test": recipe.resize_side}
    result: dict[str, Any] = {"cache_bytes": 0}
    for split, side in sides.items():
        start = time.perf_counter()
        images = decode_folder(root / split, side, HOTDOG_CLASSES)
        result[f"{split}_build_seconds"] = time.perf_counter() - start
        result[f"{split}_images"] = len(images)
        result[f"{split}_stored_size"] = side
        result[f"{split}_bytes_per_image"] = 3 * side * side
        caches = (root / ".decoded").glob(f"{split}-{side}px-*.u8")
        result["cache_bytes"] += sum(path.stat().st_size for path in caches)
    for path in root.glob("*/*/*.jpg"):
        path.read_bytes()
    return result


def chapter_transforms(size: int) -> tuple[transforms.Compose, transforms.Compose]:
    """The chapter's PIL transforms (training, test) for crop size ``size``."""
    normalize = transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    resize = round(size * 256 / 224)
    train_augs = transforms.Compose(
        [transforms.RandomResizedCrop(size), transforms.RandomHorizontalFlip(),
         transforms.ToTensor(), normalize]
    )  # fmt: skip
    test_augs = transforms.Compose(
        [transforms.Resize([resize, resize]), transforms.CenterCrop(size),
         transforms.ToTensor(), normalize]
    )  # fmt: skip
    return train_augs, test_augs


def reference_loaders(trial: Trial, device: torch.device) -> tuple[TimedBatches, TimedBatches]:
    """The chapter's ImageFolder datasets and DataLoaders (training shuffled), timed."""
    import torchvision

    train_augs, test_augs = chapter_transforms(trial.size)
    root = Path(trial.data_root)
    kwargs = {"batch_size": trial.batch_size, "num_workers": trial.ref_workers}
    train_set = torchvision.datasets.ImageFolder(root / "train", transform=train_augs)
    test_set = torchvision.datasets.ImageFolder(root / "test", transform=test_augs)
    loader = torch.utils.data.DataLoader
    train_iter = TimedBatches(loader(train_set, shuffle=True, **kwargs), device)
    return train_iter, TimedBatches(loader(test_set, **kwargs), device)


def chapter_optimizer(net: nn.Module) -> torch.optim.Optimizer:
    """The chapter's SGD: the body at d2l's rate, the output layer 10x, weight decay 0.001."""
    params_1x = [p for name, p in net.named_parameters() if name not in ("fc.weight", "fc.bias")]
    head_lr = D2L_LEARNING_RATE * HEAD_MULTIPLIER
    return torch.optim.SGD(
        [{"params": params_1x}, {"params": net.fc.parameters(), "lr": head_lr}],
        lr=D2L_LEARNING_RATE,
        weight_decay=0.001,
    )


def run_reference(trial: Trial, device: torch.device) -> dict[str, Any]:
    """d2l 1.0.3's chapter: ImageFolder + transforms + DataLoader, ``train_ch13``, fp32."""
    import matplotlib

    matplotlib.use("Agg")  # d2l's Animator draws; nothing is shown
    from d2l import torch as d2l

    net = target_model(load_source(trial.source_path), trial.seed)
    digest = state_digest(net)
    loss = nn.CrossEntropyLoss(reduction="none")
    rss_ready = peak_rss_mib()
    sync(device)
    start = time.perf_counter()
    torch.manual_seed(trial.seed)
    train_iter, test_iter = reference_loaders(trial, device)
    trainer = chapter_optimizer(net)
    printed = io.StringIO()  # the Animator's display output and the closing lines
    with contextlib.redirect_stdout(printed):
        d2l.train_ch13(net, train_iter, test_iter, loss, trainer, trial.epochs, devices=[device])
    sync(device)
    wall = time.perf_counter() - start
    closing = parse_d2l_output(printed.getvalue())
    finite = closing["train_loss"] is not None and math.isfinite(closing["train_loss"])
    return {
        "wall_seconds": wall,
        "rss_ready_mib": rss_ready,
        **train_iter.passes("train"),
        **test_iter.passes("eval"),
        **closing,
        "status": "ok" if finite else "non-finite loss",
        "precision": "fp32",
        "init_digest": digest,
    }


def parse_d2l_output(text: str) -> dict[str, float | None]:
    """The numbers of train_ch13's closing lines (its examples/sec times the steps only)."""
    found = re.findall(r"loss ([\d.naif]+), train acc ([\d.]+), test acc ([\d.]+)", text)
    speed = re.findall(r"([\d.]+) examples/sec", text)
    loss, train_acc, test_acc = (float(v) for v in found[-1]) if found else (None,) * 3
    return {
        "train_loss": loss,
        "train_acc": train_acc,
        "test_acc": test_acc,
        "d2l_reported_examples_per_sec": float(speed[-1]) if speed else None,
    }


def run_ours(trial: Trial, device: torch.device) -> dict[str, Any]:
    """The chapter's ``train_fine_tuning`` with the same steps as d2l's (mean loss, scaled)."""
    workspace = workspace_of(trial)
    data = TimedData(**vars(workspace.data()))
    net = target_model(load_source(trial.source_path), trial.seed)
    digest = state_digest(net)
    rss_ready = peak_rss_mib()
    sync(device)
    start = time.perf_counter()
    history = train_fine_tuning(
        net,
        data,
        D2L_LEARNING_RATE * trial.batch_size,
        batch_size=trial.batch_size,
        num_epochs=trial.epochs,
        head_multiplier=HEAD_MULTIPLIER,
        run=Run(seed=trial.seed, device=device),
    )
    sync(device)
    wall = time.perf_counter() - start
    train_iter, test_iter = data.timed
    last = history.final
    return {
        "wall_seconds": wall,
        "rss_ready_mib": rss_ready,
        **train_iter.passes("train"),
        **test_iter.passes("eval"),
        "train_loss": last.train_loss if last else None,
        "train_acc": last.train_acc if last else None,
        "test_acc": last.held_out_acc if last else None,
        "status": history.status_text(),
        "precision": history.precision,
        "init_digest": digest,
    }


def frozen_settings(trial: Trial) -> list[SweepSetting]:
    """The sweep: head multipliers 1-20 at the chapter's body rate (mean-loss terms)."""
    rate = D2L_LEARNING_RATE * trial.batch_size
    return [
        SweepSetting(rate, m, trial.epochs, freeze_body=True, seed=trial.seed)
        for m in FROZEN_MULTIPLIERS
    ]


def run_frozen_sweeper(trial: Trial, device: torch.device) -> dict[str, Any]:
    """The sweep with :class:`Sweeper`: features once, then only the head trains on them."""
    settings = frozen_settings(trial)
    rss_ready = peak_rss_mib()
    sync(device)
    start = time.perf_counter()
    sweeper = Sweeper(workspace_of(trial), batch_size=trial.batch_size, device=device)
    sweeper.features()
    sync(device)
    features = time.perf_counter() - start
    records = sweeper.run(settings, progress=False)
    sync(device)
    wall = time.perf_counter() - start
    again = time.perf_counter()
    sweeper.run(settings, progress=False)  # as the panel's next click: features already cached
    sync(device)
    final = [record for record in records if record["epoch"] == trial.epochs]
    return {
        "wall_seconds": wall,
        "cached_wall_seconds": time.perf_counter() - again,
        "rss_ready_mib": rss_ready,
        "feature_seconds": features,
        "test_accs": [record["test_acc"] for record in final],
    }


def run_frozen_full(trial: Trial, device: torch.device) -> dict[str, Any]:
    """The same sweep through the whole frozen network (full forward every batch), on the
    Sweeper's training images (the training set less its validation split)."""
    settings = frozen_settings(trial)
    workspace, recipe = workspace_of(trial), Recipe(trial.size)
    precision = choose_precision(device)
    rss_ready = peak_rss_mib()
    sync(device)
    start = time.perf_counter()
    kwargs = {"device": device, "seed": trial.seed}
    data = workspace.data()
    train, test = data.split_validation().train.resized(recipe.resize_side), data.held_out
    accs = []
    for setting in settings:
        net = freeze_body(target_model(workspace.source_model(), trial.seed))
        net = net.to(device, memory_format=torch.channels_last)
        train_iter = BatchLoader(
            train, trial.batch_size, recipe, train=True, augment=False, **kwargs
        )
        test_iter = BatchLoader(test, 2 * trial.batch_size, recipe, train=False, **kwargs)
        optimizer = torch.optim.SGD(
            find_head(net).layer.parameters(),
            lr=setting.learning_rate * setting.head_multiplier,
            weight_decay=WEIGHT_DECAY / trial.batch_size,
        )
        history = fit(
            net, train_iter, test_iter, optimizer, setting.num_epochs,
            device=device, precision=precision, progress=False,
        )  # fmt: skip
        accs.append(history.final.held_out_acc if history.final else None)
    sync(device)
    wall = time.perf_counter() - start
    return {"wall_seconds": wall, "rss_ready_mib": rss_ready, "test_accs": accs}


def run_warmup_and_describe(trial: Trial, device: torch.device) -> dict[str, Any]:
    """The warm-up, and what the trial process sees: threads, precision, GPU."""
    result: dict[str, Any] = {
        **run_warmup(trial),
        "torch_threads": torch.get_num_threads(),
        "ours_precision": choose_precision(device).name,
        "cpu_native_bf16": cpu_has_native_bf16(),
    }
    if device.type == "cuda":
        result["gpu"] = torch.cuda.get_device_name(device)
    return result


RUNNERS: dict[str, Callable[[Trial, torch.device], dict[str, Any]]] = {
    "warmup": run_warmup_and_describe,
    "reference": run_reference,
    "ours": run_ours,
    "frozen-full": run_frozen_full,
    "frozen-sweeper": run_frozen_sweeper,
}


def trial_main(spec_path: str) -> None:
    """Entry point of a trial subprocess: run the trial, write its result as JSON."""
    trial = Trial(**json.loads(Path(spec_path).read_text()))
    device = torch.device(trial.device)
    if trial.threads > 0:
        torch.set_num_threads(trial.threads)
    result = RUNNERS[trial.kind](trial, device)
    result.update(
        kind=trial.kind, size=trial.size, repeat=trial.repeat, peak_rss_mib=peak_rss_mib()
    )
    if device.type == "cuda":
        result["peak_gpu_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    atomic_write(Path(trial.result_path), lambda f: f.write(json.dumps(result).encode()))
