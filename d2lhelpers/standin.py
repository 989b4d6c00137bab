"""The offline stand-in: synthetic hot dog and source image sets, and a stand-in source model.

Where the real hot dog photos and the ImageNet weights cannot be downloaded, the book runs on
these instead, along the same code paths:

* a *target* set drawn into the hot dog folder layout ``{train,test}/{hotdog,not-hotdog}``;
* a *shifted* test set: target scenes on a backdrop the training images never show;
* a *source* set of :data:`SOURCE_CLASSES` (one of them a hot dog, as ImageNet's class 934);
* a torchvision ResNet-18 trained on the source set by :func:`fit`: trained ahead of time by
  ``make standin-model`` (``scripts/train_standin_source.py``) and shipped with the package, as
  ImageNet weights are downloaded rather than trained on the page.

The image sets are deterministic from a seed, written atomically, and safe when two processes
build the same thing at once (the second waits for the first and reuses its result).
"""

from __future__ import annotations

import functools
import glob
import hashlib
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchvision.models import resnet18
from tqdm.auto import tqdm

from .data import BatchLoader, Recipe, decode_folder
from .fileutil import atomic_write, exclusive, move_into_place, remove_leftovers
from .machine import describe
from .standin_draw import SOURCE_CLASSES, TARGET_CLASSES, draw_source, draw_target
from .train import default_device, fit

STANDIN_VERSION = 3  # bump when the drawings or the source training change
SOURCE_HOTDOG_CLASS = SOURCE_CLASSES.index("hotdog")


@dataclass(frozen=True)
class ImageSetSpec:
    """How many images per class and split, their pixel sizes, and the seed."""

    train_per_class: int
    test_per_class: int
    min_side: int = 80
    max_side: int = 160
    seed: int = 0
    jpeg_quality: int = 90

    def key(self, name: str, classes: tuple[str, ...]) -> str:
        text = json.dumps([STANDIN_VERSION, name, classes, asdict(self)], sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:10]


TARGET_SPEC = ImageSetSpec(train_per_class=1000, test_per_class=400)
SOURCE_SPEC = ImageSetSpec(train_per_class=1000, test_per_class=50, seed=1)
# The shifted test set: test images only, drawn from a seed of their own on the texture backdrop.
SHIFTED_SPEC = ImageSetSpec(train_per_class=0, test_per_class=200, seed=7)
SHIFTED_BACKGROUND = "texture"
# The stand-in's random crops keep 50%-100% of an image (d2l's 8%-100% at 224 px): at 32 px a crop
# of 8% is 9 px of the original, too little of the object to learn from; from 30% the model trained
# from scratch reached 0.635 in fp32, from 50% 0.694 (README, "The stand-in").
TARGET_CROP_SCALE = (0.5, 1.0)
SHIPPED_SOURCE = Path(__file__).with_name("modeldata") / "standin-resnet18.pt"


def _image_size(rng: np.random.Generator, spec: ImageSetSpec) -> tuple[int, int]:
    width, height = rng.integers(spec.min_side, spec.max_side + 1, size=2)
    return int(width), int(height)


def write_image_set(
    root: Path,
    classes: tuple[str, ...],
    draw: Callable[[str, np.random.Generator, tuple[int, int]], object],
    spec: ImageSetSpec,
    progress: bool = True,
) -> Path:
    """Draw ``spec`` into ``root/{train,test}/<class>/NNNN.jpg``; return ``root``. A split
    with no images per class is left out.

    ``root`` appears only when complete (built in a temporary folder, then renamed); an
    existing ``root`` is returned untouched. Call it holding the lock of ``root``: it removes
    the temporary folders that killed runs left.
    """
    if root.exists():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(root.parent, f".{glob.escape(root.name)}-*")
    tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}-"))
    try:
        splits = {"train": spec.train_per_class, "test": spec.test_per_class}
        total = len(classes) * sum(splits.values())
        with tqdm(total=total, desc=f"draw {root.name}", unit="img", disable=not progress) as bar:
            for split_index, (split, count) in enumerate(splits.items()):
                if count == 0:
                    continue
                for class_index, name in enumerate(classes):
                    folder = tmp / split / name
                    folder.mkdir(parents=True)
                    for i in range(count):
                        rng = np.random.default_rng([spec.seed, split_index, class_index, i])
                        img = draw(name, rng, _image_size(rng, spec))
                        img.save(folder / f"{i:04d}.jpg", quality=spec.jpeg_quality)
                    bar.update(count)
        move_into_place(tmp, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def target_set(data_dir: Path, spec: ImageSetSpec = TARGET_SPEC, progress: bool = True) -> Path:
    """The synthetic hot dog set (drawn on first use): ``.../{train,test}/{hotdog,not-hotdog}``."""
    root = data_dir / f"standin-hotdog-{spec.key('target', TARGET_CLASSES)}"
    if root.exists():  # complete (renamed into place): no lock needed, the folder may be read-only
        return root
    with exclusive(root.with_suffix(".lock")):
        return write_image_set(root, TARGET_CLASSES, draw_target, spec, progress)


def shifted_test_set(
    data_dir: Path, spec: ImageSetSpec = SHIFTED_SPEC, progress: bool = True
) -> Path:
    """The shifted test set (drawn on first use): ``.../test/{hotdog,not-hotdog}``.

    The same foods, plates and framing as the target set, on a backdrop that its training images
    never show: fine, bright stripes and checks (``draw_target(..., background="texture")``).
    """
    key = spec.key(f"target-{SHIFTED_BACKGROUND}", TARGET_CLASSES)
    root = data_dir / f"standin-hotdog-shifted-{key}"
    if root.exists():  # complete (renamed into place): no lock needed, the folder may be read-only
        return root
    draw = functools.partial(draw_target, background=SHIFTED_BACKGROUND)
    with exclusive(root.with_suffix(".lock")):
        return write_image_set(root, TARGET_CLASSES, draw, spec, progress)


def source_set(data_dir: Path, spec: ImageSetSpec = SOURCE_SPEC, progress: bool = True) -> Path:
    """The synthetic source set of :data:`SOURCE_CLASSES` (drawn on first use)."""
    root = data_dir / f"standin-source-{spec.key('source', SOURCE_CLASSES)}"
    with exclusive(root.with_suffix(".lock")):
        return write_image_set(root, SOURCE_CLASSES, draw_source, spec, progress)


@dataclass(frozen=True)
class SourceTraining:
    """How the stand-in source model is trained (mean cross-entropy, AdamW, one-cycle rate).

    ``image_size`` is also the crop size of the pages that run on the stand-in (the chapter's
    224, scaled down so that a page trains in minutes on two CPU cores; see the README's
    "Budgets" for the measurements behind 32 px and 8 epochs).
    """

    image_size: int = 32
    min_crop_scale: float = 0.35  # RandomResizedCrop's smallest crop area
    epochs: int = 30
    batch_size: int = 128
    learning_rate: float = 0.003
    weight_decay: float = 0.05
    seed: int = 0


def _adamw(net: nn.Module, settings: SourceTraining) -> torch.optim.Optimizer:
    """AdamW with the settings' rate and weight decay; its fused kernel where this torch has
    one for the parameters' device (CPUs since torch 2.4): the same update at a quarter of the
    per-parameter loop's time on a 2-core CPU (11 against 47 ms a step for ResNet-18)."""
    kwargs = {"lr": settings.learning_rate, "weight_decay": settings.weight_decay}
    try:
        return torch.optim.AdamW(net.parameters(), fused=True, **kwargs)
    except RuntimeError:  # no fused kernel for this device in this torch version
        return torch.optim.AdamW(net.parameters(), **kwargs)


def source_key(settings: SourceTraining, spec: ImageSetSpec) -> str:
    """A digest of the drawings' version, the source set and the training settings."""
    text = json.dumps([asdict(settings), spec.key("source", SOURCE_CLASSES)])
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def train_source_checkpoint(
    data_dir: Path,
    settings: SourceTraining = SourceTraining(),
    spec: ImageSetSpec = SOURCE_SPEC,
    progress: bool = True,
) -> dict:
    """Draw the source set into ``data_dir`` and train a ResNet-18 on it; returns the
    checkpoint dict (weights, classes, settings, key, History, build time and machine)."""
    root = source_set(data_dir, spec, progress=progress)
    recipe = Recipe(settings.image_size, scale=(settings.min_crop_scale, 1.0))
    device = default_device()
    torch.manual_seed(settings.seed)
    net = resnet18(num_classes=len(SOURCE_CLASSES)).to(device, memory_format=torch.channels_last)
    train = decode_folder(root / "train", recipe.resize_side, SOURCE_CLASSES)
    test = decode_folder(root / "test", recipe.resize_side, SOURCE_CLASSES)
    kwargs = {"device": device, "seed": settings.seed}
    train_iter = BatchLoader(train, settings.batch_size, recipe, train=True, **kwargs)
    test_iter = BatchLoader(test, 256, recipe, train=False, **kwargs)
    optimizer = _adamw(net, settings)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, settings.learning_rate, total_steps=settings.epochs * len(train_iter)
    )
    start = time.perf_counter()
    history = fit(
        net,
        train_iter,
        test_iter,
        optimizer,
        settings.epochs,
        device=device,
        label="stand-in source model",
        progress=progress,
        scheduler=scheduler,
    )
    if history.status != "ok":
        raise RuntimeError(f"Training the stand-in source model failed: {history.status_text()}.")
    return {
        "state_dict": {k: v.cpu() for k, v in net.state_dict().items()},
        "classes": list(SOURCE_CLASSES),
        "settings": asdict(settings),
        "key": source_key(settings, spec),
        "train_images": len(train),
        "history": history.to_dict(),
        "build_seconds": time.perf_counter() - start,
        "built_on": describe(device, history.precision),
    }


def save_source_checkpoint(checkpoint: dict, path: Path) -> None:
    """Write ``checkpoint`` to ``path`` atomically, its float weights in float16 (half the
    size; fine-tuning from them is indistinguishable, see :func:`load_source_checkpoint`)."""
    state = {
        k: v.half() if v.is_floating_point() else v for k, v in checkpoint["state_dict"].items()
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: torch.save({**checkpoint, "state_dict": state}, f))


def load_source_checkpoint(
    path: Path = SHIPPED_SOURCE,
    settings: SourceTraining = SourceTraining(),
    spec: ImageSetSpec = SOURCE_SPEC,
) -> dict:
    """The stand-in source model's checkpoint at ``path`` (float32 weights), refused with a
    clear error when it is missing or was trained for other drawings or settings."""
    remedy = "run `make standin-model` (scripts/train_standin_source.py) to train it again"
    if not path.is_file():
        raise FileNotFoundError(f"The stand-in source model {path} is missing: {remedy}.")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    expected = source_key(settings, spec)
    if checkpoint.get("key") != expected:
        raise ValueError(
            f"The stand-in source model {path} was trained for other drawings or settings "
            f"(key {checkpoint.get('key')!r}, these are {expected!r}): {remedy}."
        )
    state = checkpoint["state_dict"]
    checkpoint["state_dict"] = {
        k: v.float() if v.is_floating_point() else v for k, v in state.items()
    }
    return checkpoint


def standin_resnet18(checkpoint: dict) -> nn.Module:
    """A ResNet-18 with the stand-in source model's weights (``len(SOURCE_CLASSES)`` outputs)."""
    net = resnet18(num_classes=len(checkpoint["classes"]))
    net.load_state_dict(checkpoint["state_dict"])
    return net.eval()
