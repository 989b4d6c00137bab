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
* **ours**: :func:`d2lhelpers.finetune.fine_tune` (decode-once uint8 cache, batched
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
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import math
import os
import platform
import re
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repository's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from torch import nn
from torchvision import transforms
from torchvision.models import resnet18

from d2lhelpers.data import HOTDOG_CLASSES, BatchLoader, Recipe, decode_folder
from d2lhelpers.finetune import default_weight_decay, fine_tune
from d2lhelpers.machine import cpu_name
from d2lhelpers.models import find_head, freeze_body, make_target_model
from d2lhelpers.precision import choose_precision, cpu_has_native_bf16
from d2lhelpers.standin import ImageSetSpec, source_checkpoint, write_image_set
from d2lhelpers.standin_draw import TARGET_CLASSES, draw_target
from d2lhelpers.sweep import Sweeper, SweepSetting
from d2lhelpers.train import fit
from d2lhelpers.workspace import Workspace
from d2lhelpers.workspace import data_dir as workspace_data_dir

BENCH_DIR = Path(__file__).resolve().parent
D2L_LEARNING_RATE = 5e-5  # the chapter's fine-tuning rate for its summed loss
HEAD_MULTIPLIER = 10.0  # the chapter's output layer learns 10x faster
FROZEN_MULTIPLIERS = (1.0, 2.0, 5.0, 10.0, 20.0)
MIN_SIDE, MAX_SIDE = 300, 600  # the real photos vary in size and aspect
MIN_D2L_BATCHES = 5  # train_ch13 computes i % (num_batches // 5)
VERSIONED = ("torch", "torchvision", "d2l", "numpy", "pillow", "pandas", "scipy", "matplotlib")
SIDES = ("reference", "ours")
ENV_RECORDED = (
    "OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS", "D2LHELPERS_PRECISION",
    "CUDA_VISIBLE_DEVICES",
)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Inside a trial subprocess
# ---------------------------------------------------------------------------------------------


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


class TimedWorkspace(Workspace):
    """A :class:`Workspace` whose loaders are wrapped in :class:`TimedBatches`."""

    timed: tuple[TimedBatches, TimedBatches]

    def loaders(self, batch_size: int, device: torch.device | str = "cpu", seed: int = 0):
        train, test = super().loaders(batch_size, device, seed)
        device = torch.device(device)
        self.timed = (TimedBatches(train, device), TimedBatches(test, device))
        return self.timed


class ShuffledCentreCrops(BatchLoader):
    """Centre-cropped (test-transform) batches, reshuffled every epoch: frozen-body training."""

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(self.images), generator=self.generator)
        for start in range(0, len(order), self.batch_size):
            index = order[start : start + self.batch_size]
            pixels, labels = self.images.gather(index)
            yield self._prepare(pixels, index), labels.to(self.device, non_blocking=True)


def load_source(path: str) -> nn.Module:
    """The saved source ResNet-18 (stand-in source model, or random weights)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
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


def workspace_of(t: Trial, cls: type[Workspace] = Workspace) -> Workspace:
    """A workspace on the benchmark's data whose source model is the saved ResNet-18."""
    state = torch.load(t.source_path, map_location="cpu", weights_only=True)
    checkpoint = {"state_dict": state, "classes": [str(i) for i in range(len(state["fc.bias"]))]}
    root, recipe = Path(t.data_root), Recipe(t.size)
    return cls("standin", root, recipe, "benchmark source ResNet-18", 0, None, checkpoint)


def pass_stats(timed: TimedBatches, prefix: str) -> dict[str, Any]:
    return {f"{prefix}_seconds": timed.seconds, f"{prefix}_images": timed.images}


def run_warmup(t: Trial) -> dict[str, Any]:
    """Build ours' decoded caches (timed: the one-off cost) and read every JPEG once."""
    root, recipe = Path(t.data_root), Recipe(t.size)
    sides = {"train": recipe.train_stored_size, "test": recipe.stored_size}
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


def run_reference(t: Trial, device: torch.device) -> dict[str, Any]:
    """d2l 1.0.3's chapter: ImageFolder + transforms + DataLoader, ``train_ch13``, fp32."""
    import matplotlib

    matplotlib.use("Agg")  # d2l's Animator draws; nothing is shown
    import torchvision
    from d2l import torch as d2l

    net = target_model(load_source(t.source_path), t.seed)
    digest = state_digest(net)
    train_augs, test_augs = chapter_transforms(t.size)
    params_1x = [p for name, p in net.named_parameters() if name not in ("fc.weight", "fc.bias")]
    head_lr = D2L_LEARNING_RATE * HEAD_MULTIPLIER
    loss = nn.CrossEntropyLoss(reduction="none")
    rss_ready = peak_rss_mib()
    sync(device)
    start = time.perf_counter()
    torch.manual_seed(t.seed)
    root, kwargs = Path(t.data_root), {"batch_size": t.batch_size, "num_workers": t.ref_workers}
    train_set = torchvision.datasets.ImageFolder(root / "train", transform=train_augs)
    test_set = torchvision.datasets.ImageFolder(root / "test", transform=test_augs)
    loader = torch.utils.data.DataLoader
    train_iter = TimedBatches(loader(train_set, shuffle=True, **kwargs), device)
    test_iter = TimedBatches(loader(test_set, **kwargs), device)
    trainer = torch.optim.SGD(
        [{"params": params_1x}, {"params": net.fc.parameters(), "lr": head_lr}],
        lr=D2L_LEARNING_RATE,
        weight_decay=0.001,
    )
    printed = io.StringIO()  # the Animator's display output and the closing lines
    with contextlib.redirect_stdout(printed):
        d2l.train_ch13(net, train_iter, test_iter, loss, trainer, t.epochs, devices=[device])
    sync(device)
    wall = time.perf_counter() - start
    closing = parse_d2l_output(printed.getvalue())
    finite = closing["train_loss"] is not None and math.isfinite(closing["train_loss"])
    return {
        "wall_seconds": wall,
        "rss_ready_mib": rss_ready,
        **pass_stats(train_iter, "train"),
        **pass_stats(test_iter, "eval"),
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


def run_ours(t: Trial, device: torch.device) -> dict[str, Any]:
    """``d2lhelpers.finetune.fine_tune`` with the same steps as d2l's (mean loss, scaled)."""
    workspace = workspace_of(t, TimedWorkspace)
    net = target_model(load_source(t.source_path), t.seed)
    digest = state_digest(net)
    rss_ready = peak_rss_mib()
    sync(device)
    start = time.perf_counter()
    history = fine_tune(
        net,
        D2L_LEARNING_RATE * t.batch_size,
        workspace,
        batch_size=t.batch_size,
        num_epochs=t.epochs,
        head_multiplier=HEAD_MULTIPLIER,
        seed=t.seed,
        device=device,
        progress=False,
    )
    sync(device)
    wall = time.perf_counter() - start
    train_iter, test_iter = workspace.timed
    last = history.final
    return {
        "wall_seconds": wall,
        "rss_ready_mib": rss_ready,
        **pass_stats(train_iter, "train"),
        **pass_stats(test_iter, "eval"),
        "train_loss": last.train_loss if last else None,
        "train_acc": last.train_acc if last else None,
        "test_acc": last.test_acc if last else None,
        "status": history.status_text(),
        "precision": history.precision,
        "init_digest": digest,
    }


def frozen_settings(t: Trial) -> list[SweepSetting]:
    """The sweep: head multipliers 1-20 at the chapter's body rate (mean-loss terms)."""
    rate = D2L_LEARNING_RATE * t.batch_size
    return [SweepSetting(rate, m, t.epochs, freeze_body=True) for m in FROZEN_MULTIPLIERS]


def run_frozen_sweeper(t: Trial, device: torch.device) -> dict[str, Any]:
    """The sweep with :class:`Sweeper`: features once, then only the head trains on them."""
    settings = frozen_settings(t)
    rss_ready = peak_rss_mib()
    sync(device)
    start = time.perf_counter()
    sweeper = Sweeper(workspace_of(t), batch_size=t.batch_size, seed=t.seed, device=device)
    sweeper.features()
    sync(device)
    features = time.perf_counter() - start
    records = sweeper.run(settings, progress=False)
    sync(device)
    wall = time.perf_counter() - start
    again = time.perf_counter()
    sweeper.run(settings, progress=False)  # as the panel's next click: features already cached
    sync(device)
    final = [r for r in records if r["epoch"] == t.epochs]
    return {
        "wall_seconds": wall,
        "cached_wall_seconds": time.perf_counter() - again,
        "rss_ready_mib": rss_ready,
        "feature_seconds": features,
        "test_accs": [r["test_acc"] for r in final],
    }


def run_frozen_full(t: Trial, device: torch.device) -> dict[str, Any]:
    """The same sweep through the whole frozen network (full forward every batch)."""
    settings = frozen_settings(t)
    workspace, recipe = workspace_of(t), Recipe(t.size)
    precision = choose_precision(device)
    rss_ready = peak_rss_mib()
    sync(device)
    start = time.perf_counter()
    root, kwargs = Path(t.data_root), {"device": device, "seed": t.seed}
    train = decode_folder(root / "train", recipe.stored_size, HOTDOG_CLASSES)
    test = decode_folder(root / "test", recipe.stored_size, HOTDOG_CLASSES)
    accs = []
    for setting in settings:
        net = freeze_body(target_model(workspace.source_model(), t.seed))
        net = net.to(device, memory_format=torch.channels_last)
        train_iter = ShuffledCentreCrops(train, t.batch_size, recipe, train=False, **kwargs)
        test_iter = BatchLoader(test, 2 * t.batch_size, recipe, train=False, **kwargs)
        head = find_head(net).layer
        optimizer = torch.optim.SGD(
            head.parameters(),
            lr=setting.learning_rate * setting.head_multiplier,
            weight_decay=default_weight_decay(t.batch_size),
        )
        history = fit(
            net, train_iter, test_iter, optimizer, setting.num_epochs,
            device=device, precision=precision, progress=False,
        )  # fmt: skip
        accs.append(history.final.test_acc if history.final else None)
    sync(device)
    wall = time.perf_counter() - start
    return {"wall_seconds": wall, "rss_ready_mib": rss_ready, "test_accs": accs}


def environment(device: torch.device) -> dict[str, Any]:
    """What a trial process sees: threads, precision, GPU."""
    info: dict[str, Any] = {
        "torch_threads": torch.get_num_threads(),
        "ours_precision": choose_precision(device).name,
        "cpu_native_bf16": cpu_has_native_bf16(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


RUNNERS = {
    "reference": run_reference,
    "ours": run_ours,
    "frozen-full": run_frozen_full,
    "frozen-sweeper": run_frozen_sweeper,
}


def trial_main(spec_path: str) -> None:
    """Entry point of a trial subprocess: run the trial, write its result as JSON."""
    t = Trial(**json.loads(Path(spec_path).read_text()))
    device = torch.device(t.device)
    if t.threads > 0:
        torch.set_num_threads(t.threads)
    if t.kind == "warmup":
        result = {**run_warmup(t), **environment(device)}
    else:
        result = RUNNERS[t.kind](t, device)
    result.update(kind=t.kind, size=t.size, repeat=t.repeat, peak_rss_mib=peak_rss_mib())
    if device.type == "cuda":
        result["peak_gpu_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    Path(t.result_path).write_text(json.dumps(result))


# ---------------------------------------------------------------------------------------------
# The driver: data, schedule, summary, report
# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
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

    ``standin``: the stand-in source model (built and cached in ``$D2LHELPERS_DATA`` on first
    use, about two minutes); ``random``: a seeded randomly initialised ResNet-18.
    """
    path = data_dir / f"source-resnet18-{kind}-seed{seed}.pt"
    if not path.exists():
        if kind == "standin":
            state = source_checkpoint(workspace_data_dir())["state_dict"]
        else:
            torch.manual_seed(seed)
            state = resnet18().state_dict()
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(path)
    return path


def clear_decoded(root: Path, stored_sizes: Iterable[int]) -> None:
    """Remove ours' decoded caches of these sides, so that the warm-up measures a build."""
    for stored in stored_sizes:
        for path in (root / ".decoded").glob(f"*-{stored}px-*"):
            path.unlink()


def run_trial(trial: Trial, env: dict[str, str]) -> dict[str, Any]:
    """Run one trial in a fresh Python process and return its result."""
    spec = Path(trial.result_path).with_suffix(".spec.json")
    spec.write_text(json.dumps(asdict(trial)))
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
            pair = ("frozen-full", "frozen-sweeper")
            pair = pair if repeat % 2 == 0 else pair[::-1]
            order += [(kind, args.frozen_size, repeat) for kind in pair]
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
                epochs=args.frozen_epochs if kind.startswith("frozen") else args.epochs,
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
    head = f"{result['kind']:>14} {result['size']:>3} px, repeat {result['repeat'] + 1}: "
    if result["kind"] == "warmup":
        return head + f"cache built in {result['train_build_seconds']:.1f} s (train)"
    if result["kind"].startswith("frozen"):
        return head + f"{result['wall_seconds']:.1f} s"
    return head + f"{train_rate(result):.1f} train img/s, {result['wall_seconds']:.1f} s in all"


def train_rate(result: dict[str, Any], skip: int = 0) -> float:
    """Training images/s over the epochs after the first ``skip``."""
    return sum(result["train_images"][skip:]) / sum(result["train_seconds"][skip:])


def paired(ref: list[dict], ours: list[dict], ratio) -> dict[str, float]:
    """min / median / max of ``ratio(reference_trial, ours_trial)`` over the repeats."""
    return spread([ratio(r, o) for r, o in zip(ref, ours, strict=True)])


def has_later_epochs(trials: list[dict[str, Any]]) -> bool:
    return all(len(t["train_seconds"]) > 1 for t in trials)


def spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def side_summary(trials: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians (and spreads) over the repeats of one side at one size."""
    evals = [seconds for t in trials for seconds in t["eval_seconds"]]
    return {
        "train_images_per_sec": spread([train_rate(t) for t in trials]),
        "train_images_per_sec_after_first_epoch": (
            spread([train_rate(t, 1) for t in trials]) if has_later_epochs(trials) else None
        ),
        "seconds_per_epoch": statistics.median(statistics.mean(t["train_seconds"]) for t in trials),
        "eval_seconds_per_pass": statistics.median(evals) if evals else None,
        "wall_seconds": statistics.median(t["wall_seconds"] for t in trials),
        "peak_rss_mib": statistics.median(t["peak_rss_mib"] for t in trials),
        "rss_growth_mib": statistics.median(t["peak_rss_mib"] - t["rss_ready_mib"] for t in trials),
        "final_test_acc": [t["test_acc"] for t in trials],
        "status": [t["status"] for t in trials],
        "precision": trials[0]["precision"],
        "peak_gpu_mib": max((t.get("peak_gpu_mib", 0.0) for t in trials), default=0.0) or None,
    }


def summarise(args: argparse.Namespace, results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per size: both sides, paired ratios; the warm-ups' cache costs; the frozen sweep."""

    def of(kind: str, size: int) -> list[dict[str, Any]]:
        return sorted(
            (r for r in results if r["kind"] == kind and r["size"] == size),
            key=lambda r: r["repeat"],
        )

    sizes: dict[str, Any] = {}
    for size in dict.fromkeys(args.sizes):
        ref, ours = of("reference", size), of("ours", size)
        sizes[str(size)] = {
            "reference": side_summary(ref),
            "ours": side_summary(ours),
            "ratio_train_images_per_sec": paired(
                ref, ours, lambda r, o: train_rate(o) / train_rate(r)
            ),
            "ratio_train_images_per_sec_after_first_epoch": (
                paired(ref, ours, lambda r, o: train_rate(o, 1) / train_rate(r, 1))
                if has_later_epochs(ref + ours)
                else None
            ),
            "ratio_wall_ref_over_ours": paired(
                ref, ours, lambda r, o: r["wall_seconds"] / o["wall_seconds"]
            ),
            "same_initial_weights": all(
                r["init_digest"] == o["init_digest"] for r, o in zip(ref, ours, strict=True)
            ),
            "accuracy": accuracy_parity(ref, ours),
        }
    cache = {str(r["size"]): cache_summary(r) for r in results if r["kind"] == "warmup"}
    summary = {"sizes": sizes, "cache": cache, "frozen": None}
    if not args.skip_frozen:
        full, fast = of("frozen-full", args.frozen_size), of("frozen-sweeper", args.frozen_size)
        summary["frozen"] = {
            "size": args.frozen_size,
            "runs": len(FROZEN_MULTIPLIERS),
            "epochs": args.frozen_epochs,
            "head_multipliers": list(FROZEN_MULTIPLIERS),
            "full_seconds": spread([t["wall_seconds"] for t in full]),
            "sweeper_seconds": spread([t["wall_seconds"] for t in fast]),
            "sweeper_feature_seconds": spread([t["feature_seconds"] for t in fast]),
            "ratio_full_over_sweeper": spread(
                [f["wall_seconds"] / s["wall_seconds"] for f, s in zip(full, fast, strict=True)]
            ),
            "sweeper_cached_seconds": spread([t["cached_wall_seconds"] for t in fast]),
            "ratio_full_over_cached_sweeper": spread(
                [
                    f["wall_seconds"] / s["cached_wall_seconds"]
                    for f, s in zip(full, fast, strict=True)
                ]
            ),
            "full_test_accs": full[0]["test_accs"],
            "sweeper_test_accs": fast[0]["test_accs"],
            "peak_rss_mib": {
                "full": statistics.median(t["peak_rss_mib"] for t in full),
                "sweeper": statistics.median(t["peak_rss_mib"] for t in fast),
            },
        }
    return summary


def accuracy_parity(ref: list[dict], ours: list[dict]) -> dict[str, Any] | None:
    """Final test accuracies: each side's mean and ours - reference, paired by repeat (seed).

    Repeats where either side has no accuracy are left out; None when none is left.
    """
    pairs = [
        (r["test_acc"], o["test_acc"])
        for r, o in zip(ref, ours, strict=True)
        if r["test_acc"] is not None and o["test_acc"] is not None
    ]
    if not pairs:
        return None
    differences = [o - r for r, o in pairs]
    return {
        "reference_mean": statistics.mean(r for r, _ in pairs),
        "ours_mean": statistics.mean(o for _, o in pairs),
        "mean_difference": statistics.mean(differences),
        "difference": spread(differences),
        "seeds": len(pairs),
    }


def cache_summary(warmup: dict[str, Any]) -> dict[str, Any]:
    images = warmup["train_images"] + warmup["test_images"]
    return {
        "train_stored_size": warmup["train_stored_size"],
        "test_stored_size": warmup["test_stored_size"],
        "build_seconds": warmup["train_build_seconds"] + warmup["test_build_seconds"],
        "images": images,
        "train_bytes_per_image": warmup["train_bytes_per_image"],
        "test_bytes_per_image": warmup["test_bytes_per_image"],
        "cache_bytes": warmup["cache_bytes"],
        "images_per_sec": images / (warmup["train_build_seconds"] + warmup["test_build_seconds"]),
    }


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def machine(env_info: dict[str, Any], device: str) -> dict[str, Any]:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu_name(),
        "cpu_cores_usable": cores,
        "platform": platform.platform(),
        "device": device,
        "gpu": env_info.get("gpu"),
        "torch_threads": env_info["torch_threads"],
        "cpu_native_bf16": env_info["cpu_native_bf16"],
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "environment": {name: os.environ[name] for name in ENV_RECORDED if name in os.environ},
    }


NOTES = [
    "Each trial ran in a fresh subprocess; peak RSS is that process's ru_maxrss, imports included"
    " (d2l's pull in pandas, scipy and matplotlib); RSS growth is that peak minus the peak"
    " before the timed work (after imports and model creation): what data and training add.",
    "The sides alternated A/B then B/A per repeat; the ratio's min/median/max pair the two"
    " sides' trials of the same repeat.",
    "A warm-up subprocess per size built ours' decoded uint8 cache (its one-off cost is the"
    " cache table) and read every JPEG once; timed trials measure steady-state training and"
    " only load that cache.",
    "Training images/s = images trained / seconds of the full passes over the training loader"
    " (timed by one wrapper on both sides: loading, augmentation, forward, backward, step; for"
    " d2l also its plot updates); evaluation passes are timed separately. Wall time covers"
    " building the loaders, training and every evaluation, not model creation.",
    "d2l's own printed examples/sec times only its train_batch_ch13 calls (not data loading);"
    " it is kept in the JSON as d2l_reported_examples_per_sec.",
    "Repeat r (counted from 0) used seed --seed + r on both sides: within a repeat both sides"
    " start from identical weights (the saved source ResNet-18 with a new head drawn from that"
    " seed), so their final test accuracies can be compared; the repeats differ in the new head"
    " and in the shuffling and augmentation draws.",
    "Accuracy parity pairs the two sides' final test accuracies of the same repeat (seed). Even"
    " with the same seed the sides draw different batch orders and crops (d2l's DataLoader and"
    " PIL transforms versus ours' seeded generator) and ours runs in the precision shown, so a"
    " paired difference holds run-to-run noise as well as any systematic gap; its spread over"
    " the seeds shows which.",
]


def build_report(args: argparse.Namespace, data: dict, results: list[dict]) -> dict[str, Any]:
    warm = next(r for r in results if r["kind"] == "warmup")
    return {
        "command": shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv])),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "machine": machine(warm, args.device),
        "versions": versions(),
        "settings": {
            "sizes": list(dict.fromkeys(args.sizes)),
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "repeats": args.repeats,
            "seed": args.seed,
            "seeds": [args.seed + repeat for repeat in range(args.repeats)],
            "reference_workers": args.ref_workers,
            "ours_workers": 0,
            "reference_precision": "fp32",
            "ours_precision": warm["ours_precision"],
            "d2l_learning_rate": D2L_LEARNING_RATE,
            "ours_learning_rate": D2L_LEARNING_RATE * args.batch_size,
            "head_multiplier": HEAD_MULTIPLIER,
            "weight_decay": {"reference": 0.001, "ours": default_weight_decay(args.batch_size)},
        },
        "data": data,
        "summary": summarise(args, results),
        "notes": NOTES,
        "trials": results,
    }


def fmt_spread(s: dict[str, float] | None, digits: int = 1) -> str:
    if s is None:
        return "-"
    return f"{s['min']:.{digits}f} / {s['median']:.{digits}f} / {s['max']:.{digits}f}"


def fmt_median(s: dict[str, float] | None) -> str:
    return "-" if s is None else f"{s['median']:.1f}"


def fmt_number(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def fmt_accs(values: list[float | None], statuses: list[str]) -> str:
    """Distinct final accuracies; any run that did not end "ok" is named."""
    shown = sorted({f"{v:.3f}" for v in values if v is not None})
    shown += sorted({s for s in statuses if s != "ok"})
    return " / ".join(shown) if shown else "-"


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: results tables first, then the set-up."""
    s, settings = report["summary"], report["settings"]
    lines = [
        "# Fine-tuning benchmark: d2l 1.0.3 (reference) vs d2lhelpers (ours)",
        "",
        f"`{report['command']}` — finished {report['finished']}",
        "",
        "## Training throughput (medians over repeats; min / median / max where shown)",
        "",
        "| size | side | train img/s (min / med / max) | after epoch 1 (med) | s/epoch (train) "
        "| eval s/pass | wall s | peak RSS MiB | RSS growth MiB | final test acc | precision |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for size, row in s["sizes"].items():
        for side in SIDES:
            v = row[side]
            lines.append(
                f"| {size} | {side} | {fmt_spread(v['train_images_per_sec'])} "
                f"| {fmt_median(v['train_images_per_sec_after_first_epoch'])} "
                f"| {v['seconds_per_epoch']:.2f} | {fmt_number(v['eval_seconds_per_pass'])} "
                f"| {v['wall_seconds']:.1f} | {v['peak_rss_mib']:.0f} | {v['rss_growth_mib']:.0f} "
                f"| {fmt_accs(v['final_test_acc'], v['status'])} | {v['precision']} |"
            )
    lines += [
        "",
        "| size | ours / reference, train img/s (min / med / max) "
        "| the same after the first epoch | reference / ours, wall time "
        "| same initial weights |",
        "| ---: | ---: | ---: | ---: | --- |",
    ]
    for size, row in s["sizes"].items():
        lines.append(
            f"| {size} | **{fmt_spread(row['ratio_train_images_per_sec'], 2)}** "
            f"| {fmt_spread(row['ratio_train_images_per_sec_after_first_epoch'], 2)} "
            f"| {fmt_spread(row['ratio_wall_ref_over_ours'], 2)} "
            f"| {'yes' if row['same_initial_weights'] else 'NO'} |"
        )
    lines += markdown_parity(s["sizes"])
    lines += markdown_cache(s["cache"]) + markdown_frozen(s["frozen"])
    lines += [*markdown_setup(report, settings), "", "## Method", ""]
    lines += [f"* {note}" for note in report["notes"]]
    return "\n".join(lines) + "\n"


def markdown_parity(sizes: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "## Accuracy parity (final test accuracy; ours - reference paired by seed)",
        "",
        "| size | reference mean | ours mean | mean difference, points "
        "| paired differences, points (min / med / max) | seeds |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for size, row in sizes.items():
        acc = row["accuracy"]
        if acc is None:
            lines.append(f"| {size} | - | - | - | - | 0 |")
            continue
        points = {key: 100 * value for key, value in acc["difference"].items()}
        lines.append(
            f"| {size} | {acc['reference_mean']:.3f} | {acc['ours_mean']:.3f} "
            f"| {100 * acc['mean_difference']:+.1f} | {fmt_spread(points)} | {acc['seeds']} |"
        )
    return lines


def markdown_cache(cache: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "## Ours' one-off decode (warm-up, not in the timings above)",
        "",
        "| size | stored px, train / test | images | build s | images/s "
        "| bytes/image, train / test | cache MiB |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for size, c in cache.items():
        lines.append(
            f"| {size} | {c['train_stored_size']} / {c['test_stored_size']} | {c['images']} "
            f"| {c['build_seconds']:.1f} | {c['images_per_sec']:.0f} "
            f"| {c['train_bytes_per_image']:,} / {c['test_bytes_per_image']:,} "
            f"| {c['cache_bytes'] / 2**20:.1f} |"
        )
    return lines


def markdown_frozen(frozen: dict[str, Any] | None) -> list[str]:
    if frozen is None:
        return ["", "Frozen-body sweep: skipped (`--skip-frozen`)."]
    return [
        "",
        f"## Frozen-body sweep ({frozen['runs']} runs, epochs per run: {frozen['epochs']}, "
        f"{frozen['size']} px, head x {', '.join(f'{m:g}' for m in frozen['head_multipliers'])})",
        "",
        "| method | seconds (min / med / max) | peak RSS MiB | final test accs |",
        "| --- | ---: | ---: | --- |",
        f"| full frozen network every batch | {fmt_spread(frozen['full_seconds'])} "
        f"| {frozen['peak_rss_mib']['full']:.0f} "
        f"| {', '.join(f'{a:.3f}' for a in frozen['full_test_accs'])} |",
        f"| Sweeper on cached features (features: "
        f"{frozen['sweeper_feature_seconds']['median']:.1f} s) "
        f"| {fmt_spread(frozen['sweeper_seconds'])} | {frozen['peak_rss_mib']['sweeper']:.0f} "
        f"| {', '.join(f'{a:.3f}' for a in frozen['sweeper_test_accs'])} |",
        f"| the same sweep again, features already cached (the panel's next click) "
        f"| {fmt_spread(frozen['sweeper_cached_seconds'], 2)} | | |",
        "",
        f"Speed-up of the Sweeper (full / Sweeper), the one-off feature pass included: "
        f"**{fmt_spread(frozen['ratio_full_over_sweeper'], 1)}**; with the features already "
        f"cached: **{fmt_spread(frozen['ratio_full_over_cached_sweeper'], 0)}**.",
    ]


def fmt_seeds(seeds: list[int]) -> str:
    return str(seeds[0]) if len(seeds) == 1 else f"{seeds[0]}-{seeds[-1]}"


def markdown_setup(report: dict[str, Any], settings: dict[str, Any]) -> list[str]:
    m, data = report["machine"], report["data"]
    versions_text = ", ".join(f"{k} {v}" for k, v in report["versions"].items())
    return [
        "",
        "## Set-up",
        "",
        f"* Machine: {m['cpu']}, {m['cpu_cores_usable']} usable cores, torch threads "
        f"{m['torch_threads']}, device {m['device']}"
        + (f" ({m['gpu']})" if m["gpu"] else "")
        + f", native bf16 on the CPU: {m['cpu_native_bf16']}; load average at start "
        f"{m['load_average_at_start']}.",
        f"* Versions: {versions_text}.",
        f"* Environment variables: {m['environment'] or 'none of ' + ', '.join(ENV_RECORDED)}.",
        f"* Data: {data['train_images']} training + {data['test_images']} test JPEGs "
        f"(sides {data['side_range_px'][0]}-{data['side_range_px'][1]} px, quality "
        f"{data['jpeg_quality']}, {data['jpeg_bytes_total'] / 2**20:.1f} MiB) in "
        f"`{data['root']}`.",
        f"* Training: epochs {settings['epochs']}, batch {settings['batch_size']}, "
        f"repeats {settings['repeats']} (seeds {fmt_seeds(settings['seeds'])}, the same for both "
        f"sides within a repeat); DataLoader workers: "
        f"reference {settings['reference_workers']}, ours {settings['ours_workers']} (in-process "
        f"batched augmentation); precision: reference {settings['reference_precision']}, ours "
        f"{settings['ours_precision']}.",
        f"* Steps: reference lr {settings['d2l_learning_rate']:g} on a summed loss, weight decay "
        f"{settings['weight_decay']['reference']:g}; ours lr {settings['ours_learning_rate']:g} "
        f"on the mean loss, weight decay {settings['weight_decay']['ours']:g} (the same SGD "
        f"steps); head x {settings['head_multiplier']:g}.",
    ]


def write_outputs(report: dict[str, Any], out_dir: Path, name: str) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / f"{name}.json", out_dir / f"{name}.md"
    json_path.write_text(json.dumps(report, indent=1))
    md_path.write_text(markdown(report))
    return json_path, md_path


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
    clear_decoded(root, {r.stored_size for r in recipes} | {r.train_stored_size for r in recipes})
    results = run_all(args, root, source, args.device)
    report = build_report(args, data, results)
    json_path, md_path = write_outputs(report, args.out_dir, args.name or args.device)
    sys.stdout.write(md_path.read_text())
    print(f"Wrote {json_path} and {md_path}", file=sys.stderr)


if __name__ == "__main__":
    main()
