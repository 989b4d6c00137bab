"""Choosing what a page runs on: the real hot dog photos and ImageNet weights, or the stand-in.

``prepare()`` decides once, explicitly (no work happens at import time):

* ``D2LHELPERS_DATA_SOURCE=real`` (or ``kind="real"``): download and verify the hot dog zip and
  load the ImageNet weights; any failure is an error. A ``hotdog`` folder that an earlier
  extraction verified (its manifest, see :func:`~d2lhelpers.download.extraction_problem`) is
  used as it is, without the zip.
* ``D2LHELPERS_DATA_SOURCE=standin``: the synthetic stand-in, offline.
* ``auto`` (default): real when both downloads are already cached or their servers answer,
  or when a ``hotdog.zip`` was put in the data folder by hand; else the stand-in. Once "real"
  is chosen, a checksum mismatch or a corrupt archive is an error, never a silent fall-back.

Where the official URL cannot be reached (behind a firewall), ``$D2LHELPERS_HOTDOG_URL`` names
mirrors of the zip (one URL, or several separated by spaces), tried in order before it; or the
zip, downloaded by hand, is put in the data folder as ``hotdog.zip``. Either way its SHA-1 must
be :data:`HOTDOG_SHA1`: a zip placed by hand that fails it is an error naming the file, and is
never deleted or replaced.

The data folder is ``data_dir`` if given, else ``$D2LHELPERS_DATA``, else
``~/.cache/d2lhelpers``.
"""

from __future__ import annotations

import os
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .checkpoint import CheckpointError, read_plain, recipe_from_metadata
from .checks import one_line
from .data import DecodedImages, HotdogData, Recipe, decode_folder, hotdog_data
from .download import (
    ChecksumError,
    download,
    extract_zip,
    extraction_problem,
    sha1_of,
)
from .environment import DATA_SOURCE_ENV, HOTDOG_URL_ENV, data_source_setting, hotdog_mirrors
from .fileutil import data_dir, display_path
from .models import (
    IMAGENET_HOTDOG_CLASS,
    IMAGENET_WEIGHTS,
    imagenet_resnet18,
    imagenet_weights_path,
)
from .standin import (
    SOURCE_HOTDOG_CLASS,
    TARGET_CROP_SCALE,
    load_source_checkpoint,
    shifted_test_set,
    standin_resnet18,
    target_set,
)
from .train import History

HOTDOG_URL = "http://d2l-data.s3-accelerate.amazonaws.com/hotdog.zip"
HOTDOG_SHA1 = "fba480ffa8aa7e0febbb511d181409f899b9baa5"
HOTDOG_ZIP = "hotdog.zip"
IMAGENET_CLASSES, IMAGENET_TRAIN_IMAGES = 1000, 1_281_167  # ImageNet-1k's training set
KINDS = ("auto", "real", "standin")
IMAGENET_SOURCE = "ResNet-18, ImageNet-1k (IMAGENET1K_V1)"
STANDIN_SOURCE = "ResNet-18, stand-in source model"
SOURCE_CHECKPOINT = "a stand-in source model checkpoint (the .pt file the stand-in uses)"
SOURCE_CHECKPOINT_KEYS = ("state_dict", "classes", "settings", "history", "train_images")
__all__ = [
    "Workspace",
    "data_dir",
    "folder_workspace",
    "hotdog_urls",
    "prepare",
    "real_available",
    "source_recipe",
]


@dataclass
class Workspace:
    """What a page runs on: the hot dog folder, the image recipe and the source model."""

    kind: str  # "real" or "standin"
    root: Path  # holds train/ and test/
    recipe: Recipe
    source_name: str
    source_hotdog_class: int
    source_test_acc: float | None = None  # the stand-in source model on its own test set
    _checkpoint: dict | None = field(default=None, repr=False)
    cache_dir: Path | None = None  # decoded-image caches; None: data.decode_cache_dir
    shifted_folder: Path | None = None  # where the stand-in draws its shifted test set; None: none
    _data: HotdogData | None = field(default=None, repr=False, compare=False)

    def source_build(self) -> tuple[float, str] | None:
        """How long training the stand-in source model took ahead of time and on what machine
        (None for the ImageNet model, or a checkpoint that did not record it)."""
        checkpoint = self._checkpoint or {}
        if "build_seconds" not in checkpoint or "built_on" not in checkpoint:
            return None
        return checkpoint["build_seconds"], checkpoint["built_on"]

    def source_history(self) -> History | None:
        """The stand-in source model's training History (its held-out set is the source test
        set); None for the ImageNet model."""
        return None if self._checkpoint is None else History.from_dict(self._checkpoint["history"])

    def source_set_size(self) -> tuple[int, int]:
        """(classes, training images) of the source model's training set: ImageNet-1k's, or
        the stand-in's synthetic source set."""
        if self._checkpoint is None:
            return IMAGENET_CLASSES, IMAGENET_TRAIN_IMAGES
        return len(self._checkpoint["classes"]), self._checkpoint["train_images"]

    def source_model(self) -> nn.Module:
        """A fresh copy of the source model (ImageNet ResNet-18 or the stand-in's)."""
        if self._checkpoint is not None:
            return standin_resnet18(self._checkpoint)
        return imagenet_resnet18()

    def data(self) -> HotdogData:
        """The training and test images, decoded on first use and kept for later calls; the
        decoded pixels are cached on disk in :attr:`cache_dir` (None: beside the images when
        that folder is writable, see :func:`~d2lhelpers.data.decode_cache_dir`)."""
        if self._data is None:
            self._data = hotdog_data(self.root, self.recipe, self.cache_dir)
        return self._data

    def shifted_test_images(self) -> DecodedImages | None:
        """The stand-in's shifted test set (:func:`~d2lhelpers.standin.shifted_test_set`),
        drawn into :attr:`shifted_folder` and decoded as the test images are, on first use;
        None where there is none (the real photos, a folder of one's own)."""
        if self.shifted_folder is None:
            return None
        root = shifted_test_set(self.shifted_folder, progress=False)
        return decode_folder(root / "test", self.recipe.resize_side, cache_dir=self.cache_dir)


def _reachable(url: str, timeout: float = 3.0) -> bool:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def _weights_cached() -> bool:
    return imagenet_weights_path().exists()


def hotdog_urls() -> list[str]:
    """Where the hot dog zip is downloaded from: the mirrors in ``$D2LHELPERS_HOTDOG_URL`` in
    their order, then :data:`HOTDOG_URL`."""
    mirrors = hotdog_mirrors()
    for url in mirrors:
        if not url.lower().startswith(("http://", "https://")):
            raise ValueError(
                f"${HOTDOG_URL_ENV} holds {url!r}, which is not an http:// or https:// URL; "
                "set it to the URLs of mirrors of hotdog.zip, separated by spaces, or unset it."
            )
    return list(dict.fromkeys([*mirrors, HOTDOG_URL]))


def real_available(folder: Path) -> bool:
    """True when the real data and weights are cached here or their servers answer."""
    zip_path = folder / HOTDOG_ZIP
    data_ok = (
        extraction_problem(folder / "hotdog") is None
        or (zip_path.exists() and sha1_of(zip_path) == HOTDOG_SHA1)
        or any(_reachable(url) for url in hotdog_urls())
    )
    return data_ok and (_weights_cached() or _reachable(IMAGENET_WEIGHTS.url))


def prepare(
    kind: str | None = None, data_dir_path: str | os.PathLike | None = None, progress: bool = True
) -> Workspace:
    """Choose real or stand-in (see the module docstring) and get the data ready."""
    kind = (kind or data_source_setting() or "auto").lower()
    if kind not in KINDS:
        raise ValueError(
            f"Unknown data source {kind!r} (argument or ${DATA_SOURCE_ENV}); "
            f"choose one of {', '.join(KINDS)}."
        )
    folder = data_dir(data_dir_path)
    if kind == "auto":
        placed = (folder / HOTDOG_ZIP).exists()  # by hand: the real data is chosen
        kind = "real" if placed or real_available(folder) else "standin"
    return _prepare_real(folder, progress) if kind == "real" else _prepare_standin(folder, progress)


def _prepare_real(folder: Path, progress: bool) -> Workspace:
    root = folder / "hotdog"
    if extraction_problem(root) is not None:
        archive = folder / HOTDOG_ZIP
        if not _placed_zip_verified(archive):
            mirror = (
                f"set ${HOTDOG_URL_ENV} to the URL of a mirror of {HOTDOG_ZIP} (several "
                "separated by spaces, tried in order; the SHA-1 is still checked),"
            )
            download(hotdog_urls(), archive, HOTDOG_SHA1, progress=progress, remedies=[mirror])
        root = extract_zip(archive, folder, "hotdog")
    imagenet_resnet18(progress=progress)  # fetch the weights now, not in the middle of a page
    return _real_workspace(root)


def _placed_zip_verified(archive: Path) -> bool:
    """True when ``archive`` is the hot dog zip, False when there is no file there; a ChecksumError
    when it is another file (put there by hand: downloads only ever put a verified file there),
    which is left as it is."""
    if not archive.is_file():
        return False
    actual = sha1_of(archive)
    if actual != HOTDOG_SHA1:
        raise ChecksumError(
            f"{archive} ({archive.stat().st_size:,} bytes) has SHA-1 {actual}, but {HOTDOG_ZIP} "
            f"has {HOTDOG_SHA1}: the file is incomplete or another one, and was left as it is. "
            f"Delete it, or replace it with a complete copy from {' or '.join(hotdog_urls())}, "
            f"then run again (without the file, the zip is downloaded, from ${HOTDOG_URL_ENV} "
            f"first when set); or set {DATA_SOURCE_ENV}=standin to use the offline stand-in."
        )
    return True


def _prepare_standin(folder: Path, progress: bool) -> Workspace:
    checkpoint = load_source_checkpoint()
    workspace = _standin_workspace(target_set(folder, progress=progress), checkpoint)
    workspace.shifted_folder = folder
    return workspace


def source_recipe(checkpoint: dict | None) -> Recipe:
    """The image recipe that goes with a source model: the chapter's 224 px for the ImageNet
    model (``checkpoint`` None); for a stand-in source model, its checkpoint's image size and
    the stand-in's crop scale."""
    if checkpoint is None:
        return Recipe(224)
    return Recipe(checkpoint["settings"]["image_size"], scale=TARGET_CROP_SCALE)


def folder_workspace(root: Path, source_checkpoint: Path | None = None) -> Workspace:
    """A Workspace for a hot dog folder of one's own (``root/train`` and ``root/test``):
    fine-tuned from ImageNet weights, or from the stand-in source model saved at
    ``source_checkpoint`` (the command line's ``--images`` and ``--source-checkpoint``)."""
    if source_checkpoint is None:
        return _real_workspace(root)
    return _standin_workspace(root, read_source_checkpoint(Path(source_checkpoint)))


def read_source_checkpoint(path: Path) -> dict:
    """The stand-in source model checkpoint at ``path``, read without running code;
    CheckpointError naming the file and what it expects when it is not one (a plain
    state_dict, a fine-tuned model, a damaged file)."""
    checkpoint = read_plain(path, SOURCE_CHECKPOINT)
    where = display_path(path)
    if (
        checkpoint
        and isinstance(checkpoint, dict)
        and all(isinstance(v, torch.Tensor) for v in checkpoint.values())
    ):
        raise CheckpointError(
            f"{where} holds weights alone (a plain state_dict); expected {SOURCE_CHECKPOINT}, "
            "with its classes, settings and training history."
        )
    missing = [
        k for k in SOURCE_CHECKPOINT_KEYS if not isinstance(checkpoint, dict) or k not in checkpoint
    ]
    if missing:
        raise CheckpointError(f"{where} is not {SOURCE_CHECKPOINT}: it lacks {', '.join(missing)}.")
    try:
        recipe_from_metadata({"recipe": {"size": checkpoint["settings"]["image_size"]}}, where)
        History.from_dict(checkpoint["history"])
        standin_resnet18(checkpoint)
    except CheckpointError:
        raise
    except (TypeError, KeyError, ValueError, RuntimeError) as err:
        reason = f"it lacks {err}" if isinstance(err, KeyError) else one_line(err, False)[:300]
        raise CheckpointError(f"{where} is not {SOURCE_CHECKPOINT}: {reason}") from err
    return checkpoint


def _real_workspace(root: Path) -> Workspace:
    return Workspace("real", root, source_recipe(None), IMAGENET_SOURCE, IMAGENET_HOTDOG_CLASS)


def _standin_workspace(root: Path, checkpoint: dict) -> Workspace:
    source = History.from_dict(checkpoint["history"]).final
    return Workspace(
        "standin",
        root,
        source_recipe(checkpoint),
        STANDIN_SOURCE,
        SOURCE_HOTDOG_CLASS,
        source.held_out_acc if source else None,
        checkpoint,
    )
