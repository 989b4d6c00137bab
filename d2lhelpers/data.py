"""Image folders -> decoded-once uint8 tensors -> batched augmentation -> training batches.

The fast data path works in three stages, each a small piece:

1. :func:`decode_folder` reads an ImageFolder layout (``split/<class>/<image>``) once, decodes
   every image to RGB, resizes it to a square ``stored_size`` and keeps the result as one uint8
   array ``(N, 3, S, S)``, with each photo's width and height. The array is cached on disk
   (its raw pixel rows in a ``.u8`` file, beside a ``.json`` of labels, paths and sizes), so a
   second notebook or a second run does not decode again; it is held in memory up to
   ``ram_budget`` bytes and memory-mapped above that.
2. :class:`Recipe` holds the chapter's augmentation settings in one place.
3. :class:`BatchLoader` draws batches and augments them *as a batch* on the training device:
   random resized crop (one ``roi_align`` call for the whole batch), horizontal flip and
   ImageNet normalisation for training; a centre crop and the same normalisation for testing.

The test transform equals the chapter's ``Resize([256, 256])`` + ``CenterCrop(224)`` (with
``S = 256`` for a 224 crop). The training crop is drawn as ``RandomResizedCrop`` draws it on the
original photo (area and aspect ratio relative to the photo's own width and height) and then
located in the squashed ``S x S`` image: the crop shows the same region with the same shape as
the chapter's (drawn relative to the square, the jitter would also hold the photo's own aspect
ratio). The training split is decoded at a higher resolution (:attr:`Recipe.train_side`)
than the test split, so that small crops are less blurry than a test-resolution cache makes them.
"""

from __future__ import annotations

import dataclasses
import errno
import glob
import hashlib
import json
import os
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image
from torchvision.ops import roi_align
from torchvision.transforms.functional import resize
from tqdm.auto import tqdm

from .checks import (
    finite,
    finite_range,
    int_at_least,
    non_negative_int,
    positive_finite,
    positive_int,
)
from .environment import CACHE_DIR_ENV, DATA_DIR_ENV, cache_dir_setting
from .fileutil import (
    atomic_write,
    data_dir,
    display_path,
    exclusive,
    is_writable,
    remove_leftovers,
)
from .images import BadImageError, list_class_folder, load_rgb
from .machine import usable_cores

HOTDOG_CLASSES = ("hotdog", "not-hotdog")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CACHE_FORMAT = 3  # 3: raw pixel rows (.u8) written image by image, beside a JSON of metadata
MAX_TRAIN_SIDE = 512  # 786,432 bytes per decoded training image
DEFAULT_RAM_BUDGET = 2 << 30  # bytes of decoded pixels held in memory; above: memory-mapped


@dataclass(frozen=True)
class Recipe:
    """The chapter's image recipe for crop size ``size`` (224 for ImageNet models)."""

    size: int = 224
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    resize_ratio: float = 256 / 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        int_at_least("Recipe.size", self.size, 8)
        if finite_range("Recipe.scale", self.scale)[1] > 1:
            raise ValueError(f"Recipe.scale must lie within (0, 1], got {self.scale!r}.")
        finite_range("Recipe.ratio", self.ratio)
        if positive_finite("Recipe.resize_ratio", self.resize_ratio) < 1:
            raise ValueError(f"Recipe.resize_ratio must be at least 1, got {self.resize_ratio!r}.")
        for name, values in (("Recipe.mean", self.mean), ("Recipe.std", self.std)):
            if len(values) != 3:
                raise ValueError(f"{name} must hold 3 values (R, G, B), got {values!r}.")
        for value in self.mean:
            finite("Recipe.mean", value)
        for value in self.std:
            positive_finite("Recipe.std", value)

    @property
    def resize_side(self) -> int:
        """The test transform's ``Resize([s, s])`` side, at which test images are cached (256
        for a 224 crop)."""
        return round(self.size * self.resize_ratio)

    @property
    def train_side(self) -> int:
        """Side of the squashed training images in the decoded cache: 2x ``resize_side``, at
        most 512 (at least ``resize_side``), so that a random crop is cut from more pixels than
        a test-resolution cache would give it (146 for a 64 crop, 512 for a 224 crop). 4x
        sharpened small crops further but made the loader 3x slower at 64 px."""
        return max(self.resize_side, min(2 * self.resize_side, MAX_TRAIN_SIDE))


@dataclass
class DecodedImages:
    """A split decoded once: ``pixels`` (N, 3, S, S) uint8, ``labels`` (N,), source paths.

    ``sizes`` (N, 2) holds each photo's (width, height) before it was squashed to S x S; None
    means square photos.
    """

    pixels: torch.Tensor | np.ndarray
    labels: torch.Tensor
    paths: list[str]
    classes: tuple[str, ...]
    skipped: list[str] = field(default_factory=list)
    sizes: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def stored_size(self) -> int:
        return int(self.pixels.shape[-1])

    def counts(self) -> dict[str, int]:
        """Number of images per class name."""
        per_label = torch.bincount(self.labels, minlength=len(self.classes)).tolist()
        return dict(zip(self.classes, per_label, strict=True))

    def photo_sizes(self, index: torch.Tensor) -> torch.Tensor:
        """(width, height) of the photos at ``index``, as float32 (n, 2)."""
        if self.sizes is None:
            return torch.full((len(index), 2), float(self.stored_size))
        return self.sizes[index].float()

    def subset(self, index: torch.Tensor) -> DecodedImages:
        """The images at ``index`` (a 1-D int64 tensor), in that order, as a new split."""
        pixels, labels = self.gather(index)
        keep = index.tolist()
        sizes = None if self.sizes is None else self.sizes[index]
        paths = [self.paths[i] for i in keep]
        return DecodedImages(pixels, labels, paths, self.classes, list(self.skipped), sizes)

    def resized(self, side: int) -> DecodedImages:
        """The same images squashed to ``side`` x ``side`` (antialiased); ``self`` when they
        already are."""
        side = positive_int("side", side)
        if side == self.stored_size:
            return self
        pixels = resize(torch.as_tensor(self.pixels), [side, side], antialias=True)
        return dataclasses.replace(self, pixels=pixels)

    def gather(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The uint8 images and labels at ``index`` (a 1-D int64 tensor)."""
        if isinstance(self.pixels, torch.Tensor):
            return self.pixels[index], self.labels[index]
        order = torch.argsort(index)  # memory-mapped: read in file order, then restore order
        rows = torch.from_numpy(np.take(self.pixels, index[order].numpy(), axis=0))
        return rows[torch.argsort(order)], self.labels[index]


def _decode_one(path: Path, stored_size: int) -> tuple[np.ndarray, tuple[int, int]] | str:
    """One image as contiguous (3, S, S) uint8 and its (width, height), or why it was skipped.

    The size is the decoded photo's; JPEG draft mode may have reduced it by a power of two, which
    keeps its aspect ratio.
    """
    try:
        img = load_rgb(path, size=stored_size)
    except BadImageError as err:
        return str(err)
    return square_pixels(img, stored_size), img.size


def square_pixels(img: Image.Image, side: int) -> np.ndarray:
    """An RGB image squashed to ``side`` x ``side`` (bilinear) as contiguous (3, S, S) uint8:
    how the decoded cache stores every image."""
    img = img.convert("RGB").resize((side, side), Image.Resampling.BILINEAR)
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8).transpose(2, 0, 1))


def _cache_key(items: Sequence[tuple[Path, int]], stored_size: int) -> str:
    """A key of the files' paths (as bytes: any name), labels, sizes and times."""
    digest = hashlib.sha1(f"v{CACHE_FORMAT} {stored_size}".encode())
    for path, label in items:
        stat = path.stat()
        digest.update(os.fsencode(path))
        digest.update(f"|{label}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def decode_cache_dir(split_dir: str | os.PathLike) -> Path:
    """The folder where :func:`decode_folder` caches ``split_dir`` unless told otherwise.

    ``$D2LHELPERS_CACHE/<key of the data folder>`` when that variable is set; else
    ``<split_dir>/../.decoded`` when it can be written; else (a read-only data folder, such as
    a mounted data set) ``<data folder>/decoded/<key of the data folder>``, the data folder
    being ``$D2LHELPERS_DATA`` or ``~/.cache/d2lhelpers``.
    """
    parent = Path(split_dir).parent
    chosen = cache_dir_setting()
    if not chosen:
        beside = parent / ".decoded"
        if is_writable(beside):
            return beside
    base = Path(chosen).expanduser() if chosen else data_dir() / "decoded"
    return base / hashlib.sha1(os.fsencode(parent.resolve())).hexdigest()[:12]


def _decode_workers() -> int:
    """Threads for decoding: the usable cores, at most 8."""
    return min(8, usable_cores())


def _decoded_in_order(items: Sequence[tuple[Path, int]], stored_size: int, desc: str):
    """Decode in threads (PIL releases the GIL), yielding results in order; at most a few
    decoded images wait at any time, so memory does not grow with the number of images."""
    workers = _decode_workers()
    with (
        ThreadPoolExecutor(workers) as pool,
        tqdm(total=len(items), desc=desc, unit="img", leave=False) as bar,
    ):
        pending: deque = deque()
        for path, _ in items:
            pending.append(pool.submit(_decode_one, path, stored_size))
            if len(pending) > 2 * workers:
                yield pending.popleft().result()
                bar.update()
        while pending:
            yield pending.popleft().result()
            bar.update()


def _write_cache(
    items: Sequence[tuple[Path, int]], stored_size: int, desc: str, pixel_path: Path
) -> dict:
    """Decode ``items`` straight into the raw pixel file ``pixel_path`` (row by row, written
    atomically); return the metadata (labels, sizes, paths, skipped) of the rows written."""
    meta: dict[str, list] = {"labels": [], "sizes": [], "paths": [], "skipped": []}

    def write(f: BinaryIO) -> None:
        for (path, label), result in zip(
            items, _decoded_in_order(items, stored_size, desc), strict=True
        ):
            if isinstance(result, str):
                meta["skipped"].append(result)
                continue
            f.write(result[0].data)
            meta["labels"].append(label)
            meta["sizes"].append(result[1])
            meta["paths"].append(str(path))

    atomic_write(pixel_path, write, len(items) * 3 * stored_size * stored_size)
    return meta


def _cache_meta(stem: Path, stored_size: int) -> dict | None:
    """The metadata of the complete cache at ``stem``, or None when it is absent or its pixel
    file does not hold exactly the rows the metadata lists; PermissionError naming
    ``D2LHELPERS_CACHE`` when it is there but cannot be read (another user's)."""
    try:
        meta = json.loads(stem.with_suffix(".json").read_text())
        pixels = stem.with_suffix(".u8")
        complete = pixels.stat().st_size == len(meta["labels"]) * 3 * stored_size * stored_size
        if complete and not os.access(pixels, os.R_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(pixels))
    except PermissionError as err:
        raise PermissionError(
            f"Cannot read the decoded-image cache {display_path(err.filename or stem)} "
            f"({err.strerror}). Set the environment variable {CACHE_DIR_ENV} to a folder of "
            "your own (or pass cache_dir=)."
        ) from err
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return meta if complete else None


def _cache_settings(chosen: bool) -> tuple[str, ...]:
    """The environment variables that move the cache folder: none when the caller chose it;
    ``D2LHELPERS_CACHE``, and ``D2LHELPERS_DATA`` too when the cache is in the data folder."""
    if chosen:
        return ()
    return (CACHE_DIR_ENV,) if cache_dir_setting() else (CACHE_DIR_ENV, DATA_DIR_ENV)


def _build_cache(
    items: Sequence[tuple[Path, int]], stem: Path, stored_size: int, desc: str, chosen: bool
) -> dict:
    """Write the cache at ``stem`` holding its lock and return its metadata; then remove the
    folder's stale caches of this split and size, and temporaries that killed runs left (no
    live process owns them: every writer holds the lock). A folder that cannot be written is a
    PermissionError naming the setting that chooses another (none when the caller ``chosen``
    it)."""
    prefix = stem.name.rsplit("-", 1)[0]  # "<split>-<S>px"
    with exclusive(stem.parent / f"{prefix}.lock", settings=_cache_settings(chosen)):
        meta = _cache_meta(stem, stored_size)  # another process may have written it meanwhile
        if meta is None:
            meta = _write_cache(items, stored_size, desc, stem.with_suffix(".u8"))
            atomic_write(stem.with_suffix(".json"), lambda f: f.write(json.dumps(meta).encode()))
        current = {stem.with_suffix(".json").name, stem.with_suffix(".u8").name}
        for path in stem.parent.glob(f"{glob.escape(prefix)}-*"):
            if path.name not in current:
                remove_leftovers(stem.parent, glob.escape(path.name))
    return meta


def _load_pixels(pixel_path: Path, count: int, stored_size: int, ram_budget: int):
    """The cached pixels (count, 3, S, S): read into memory (one copy) up to ``ram_budget``
    bytes, else memory-mapped."""
    shape = (count, 3, stored_size, stored_size)
    if count * 3 * stored_size * stored_size <= ram_budget or count == 0:
        return torch.from_numpy(np.fromfile(pixel_path, dtype=np.uint8).reshape(shape))
    return np.memmap(pixel_path, dtype=np.uint8, mode="r", shape=shape)


def _cache_stem(
    split_dir: Path, name: str, stored_size: int, cache_dir: str | os.PathLike | None
) -> Path:
    """Where the cache ``name`` of ``split_dir`` is read or written: in ``cache_dir`` when
    given; else beside the images when a complete one is there, even in a read-only folder
    (and ``$D2LHELPERS_CACHE`` unset); else in :func:`decode_cache_dir`."""
    if cache_dir is not None:
        return Path(cache_dir) / name
    beside = split_dir.parent / ".decoded" / name
    if not cache_dir_setting() and _cache_meta(beside, stored_size) is not None:
        return beside
    return decode_cache_dir(split_dir) / name


def decode_folder(
    split_dir: str | os.PathLike,
    stored_size: int,
    classes: tuple[str, ...] = HOTDOG_CLASSES,
    cache_dir: str | os.PathLike | None = None,
    ram_budget: int = DEFAULT_RAM_BUDGET,
) -> DecodedImages:
    """Decode ``split_dir/<class>/*`` once into a :class:`DecodedImages`.

    Bad image files are skipped and listed in a single warning; a class left without any
    readable image is an error. ``cache_dir`` defaults to :func:`decode_cache_dir`. The cache is
    written image by image into its file, so building it takes little more memory than the
    cache itself once loaded.
    """
    stored_size = positive_int("stored_size", stored_size)
    ram_budget = non_negative_int("ram_budget", ram_budget)
    split_dir = Path(split_dir)
    items = list_class_folder(split_dir, classes)
    name = f"{split_dir.name}-{stored_size}px-{_cache_key(items, stored_size)}"
    stem = _cache_stem(split_dir, name, stored_size, cache_dir)
    meta = _cache_meta(stem, stored_size)
    if meta is None:
        chosen = cache_dir is not None
        meta = _build_cache(items, stem, stored_size, f"decode {split_dir.name}", chosen)
    pixels = _load_pixels(stem.with_suffix(".u8"), len(meta["labels"]), stored_size, ram_budget)
    images = DecodedImages(
        pixels,
        torch.tensor(meta["labels"], dtype=torch.int64),
        meta["paths"],
        classes,
        skipped=meta["skipped"],
        sizes=torch.tensor(meta["sizes"], dtype=torch.int64).reshape(-1, 2),
    )
    _check_decoded(images, split_dir)
    return images


def _check_decoded(images: DecodedImages, split_dir: Path) -> None:
    if images.skipped:
        listing = "\n  ".join(images.skipped)
        where = display_path(split_dir)
        warnings.warn(
            f"Skipped {len(images.skipped)} unreadable image file(s) in {where}:\n  {listing}",
            stacklevel=3,
        )
    empty = [name for name, n in images.counts().items() if n == 0]
    if empty:
        raise ValueError(
            f"No readable image left in class folder(s) {', '.join(empty)} of "
            f"{display_path(split_dir)}."
        )


def batches_per_epoch(n: int, batch_size: int, *, drop_single: bool = False) -> int:
    """How many batches :func:`epoch_batches` gives for ``n`` examples."""
    full, rest = divmod(n, batch_size)
    return full + (1 if rest > 1 or (rest == 1 and not drop_single) else 0)


def epoch_batches(
    n: int,
    batch_size: int,
    generator: torch.Generator,
    *,
    shuffle: bool = True,
    drop_single: bool = False,
) -> Iterator[torch.Tensor]:
    """The index batches of one epoch over ``n`` examples, ``batch_size`` indices each.

    With ``shuffle``, the order is a fresh permutation drawn from ``generator`` (a seeded
    generator gives the same sequence of epochs); without, it is ``0 .. n - 1`` and
    ``generator`` is not used. With ``drop_single``, the epoch ends at a batch of one index
    (BatchNorm cannot normalise a single example): for ``batch_size`` of two or more, only a
    trailing batch of one is dropped.
    """
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        index = order[start : start + batch_size]
        if drop_single and len(index) == 1:
            return
        yield index


class BatchLoader:
    """Batches of a :class:`DecodedImages` split, augmented as whole batches on ``device``.

    Training batches (``train``) are reshuffled every epoch from a seeded generator, so the same
    seed gives the same sequence of batches, and a trailing batch of one image is dropped
    (BatchNorm cannot normalise a single example). ``augment`` (default: ``train``) takes random
    resized crops with flips; without it, every image gets the test transform, a centre crop.
    """

    def __init__(
        self,
        images: DecodedImages,
        batch_size: int,
        recipe: Recipe,
        *,
        train: bool,
        augment: bool | None = None,
        device: torch.device | str = "cpu",
        seed: int = 0,
        channels_last: bool = True,
    ) -> None:
        try:
            batch_size = int_at_least("batch_size", batch_size, 2 if train else 1)
        except ValueError as err:
            reason = " for training (BatchNorm needs two examples per batch)" if train else ""
            raise ValueError(f"{err}".rstrip(".") + reason + ".") from None
        seed = non_negative_int("seed", seed)
        if recipe.size > images.stored_size:
            raise ValueError(
                f"Crop size {recipe.size} exceeds the decoded image size {images.stored_size}; "
                f"decode with stored_size={recipe.resize_side}."
            )
        self.images, self.batch_size, self.recipe, self.train = images, batch_size, recipe, train
        self.augment = train if augment is None else augment
        self.device = torch.device(device)
        self.channels_last = channels_last
        self.generator = torch.Generator().manual_seed(seed)
        std = torch.tensor(recipe.std).view(1, 3, 1, 1)
        self._scale = (1.0 / (255.0 * std)).to(self.device)
        self._offset = (-torch.tensor(recipe.mean).view(1, 3, 1, 1) / std).to(self.device)
        self._staging: torch.Tensor | None = None  # float copy of a batch's uint8 images

    def __len__(self) -> int:
        return batches_per_epoch(len(self.images), self.batch_size, drop_single=self.train)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for index in epoch_batches(
            len(self.images),
            self.batch_size,
            self.generator,
            shuffle=self.train,
            drop_single=self.train,
        ):
            yield self.batch(index)

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The images at ``index`` as one batch, prepared as :meth:`__iter__` prepares them
        (random crops and flips when training, centre crops when testing; normalised, on
        ``device``), and their labels on ``device``."""
        pixels, labels = self.images.gather(index)
        return self._prepare(pixels, index), labels.to(self.device, non_blocking=True)

    def _prepare(self, pixels: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Crops (random for training, centred for testing), flips and normalises a batch."""
        if self.device.type == "cuda":
            pixels = pixels.pin_memory()
        pixels = pixels.to(self.device, non_blocking=True)
        if self.augment:
            x = self._random_crops(pixels, self.images.photo_sizes(index))
        else:
            x = self._center_crops(pixels)
        return self._normalise(x)

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        """``(x / 255 - mean) / std`` in one pass, written straight into the output layout."""
        layout = torch.channels_last if self.channels_last else torch.contiguous_format
        out = torch.empty(x.shape, device=x.device, memory_format=layout)
        return torch.addcmul(self._offset, x, self._scale, out=out)

    def _center_crops(self, pixels: torch.Tensor) -> torch.Tensor:
        size, side = self.recipe.size, pixels.shape[-1]
        top = round((side - size) / 2.0)
        return pixels[..., top : top + size, top : top + size]

    def _random_crops(self, pixels: torch.Tensor, photo_sizes: torch.Tensor) -> torch.Tensor:
        """Random resized crops, half of them mirrored: a box whose x1 and x2 are swapped makes
        ``roi_align`` (``aligned=True``) sample it right to left, which is the flipped crop."""
        boxes = random_crop_boxes(photo_sizes, pixels.shape[-1], self.recipe, self.generator)
        flip = torch.rand(len(boxes), generator=self.generator) < 0.5
        boxes[flip] = boxes[flip][:, [2, 1, 0, 3]]
        boxes = torch.cat([torch.arange(len(pixels), dtype=boxes.dtype)[:, None], boxes], 1)
        return resized_crops(self._as_float(pixels), boxes.to(self.device), self.recipe.size)

    def _as_float(self, pixels: torch.Tensor) -> torch.Tensor:
        """``pixels`` as float32, in a buffer kept between batches: a fresh one for every batch
        costs more in page faults than the conversion itself (400 MB a batch at 224 px)."""
        if self._staging is None or self._staging.shape[1:] != pixels.shape[1:]:
            self._staging = torch.empty((self.batch_size, *pixels.shape[1:]), device=pixels.device)
        return self._staging[: len(pixels)].copy_(pixels)


def resized_crops(images: torch.Tensor, rois: torch.Tensor, size: int) -> torch.Tensor:
    """``roi_align`` crops of ``images`` (float, N x 3 x S x S) at ``rois`` (``(index, x1, y1,
    x2, y2)`` rows), resized to ``size`` x ``size`` with 2 x 2 bilinear samples per pixel.

    torchvision's CPU kernel runs on one core; on a CPU the rows are split over torch's intra-op
    threads (the kernel releases the GIL), which gives the same crops in about half the time on
    two cores.
    """
    crop = partial(roi_align, images, output_size=(size, size), sampling_ratio=2, aligned=True)
    threads = torch.get_num_threads()
    if images.device.type != "cpu" or threads < 2 or len(rois) < 2:
        return crop(rois)
    with ThreadPoolExecutor(threads) as pool:
        return torch.cat(list(pool.map(crop, rois.chunk(threads))))


def random_crop_boxes(
    photo_sizes: torch.Tensor,
    side: int,
    recipe: Recipe,
    generator: torch.Generator,
    attempts: int = 10,
) -> torch.Tensor:
    """Crop boxes ``(x1, y1, x2, y2)`` in ``side x side`` squashed images, one per photo.

    Each box is drawn as torchvision's ``RandomResizedCrop`` draws it on the photo of size
    ``photo_sizes[i] = (width, height)``: up to ``attempts`` (area, aspect ratio) pairs relative
    to that photo, the first that fits, else the whole photo; it is then scaled into the square.
    """
    positive_int("side", side)
    attempts = positive_int("attempts", attempts)
    width, height = photo_sizes[:, :1], photo_sizes[:, 1:]
    n = len(photo_sizes)
    area = width * height * torch.empty(n, attempts).uniform_(*recipe.scale, generator=generator)
    log_lo, log_hi = np.log(recipe.ratio[0]), np.log(recipe.ratio[1])
    aspect = torch.exp(torch.empty(n, attempts).uniform_(log_lo, log_hi, generator=generator))
    w, h = torch.sqrt(area * aspect).round(), torch.sqrt(area / aspect).round()
    fits = (w <= width) & (h <= height) & (w > 0) & (h > 0)
    first = torch.argmax(fits.int(), dim=1, keepdim=True)
    w, h = w.gather(1, first).squeeze(1), h.gather(1, first).squeeze(1)
    width, height = width.squeeze(1), height.squeeze(1)
    none_fit = ~fits.any(dim=1)
    w[none_fit], h[none_fit] = width[none_fit], height[none_fit]
    x1 = torch.rand(n, generator=generator) * (width - w)
    y1 = torch.rand(n, generator=generator) * (height - h)
    to_x, to_y = side / width, side / height
    return torch.stack([x1 * to_x, y1 * to_y, (x1 + w) * to_x, (y1 + h) * to_y], dim=1)


def stratified_split(
    labels: torch.Tensor, fraction: float, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (kept, held out): ``fraction`` of every class held out, drawn with ``seed``.

    Each class holds out ``round(fraction * count)`` images (at least one, and one fewer than
    it has at most); both index tensors are sorted.
    """
    fraction = positive_finite("fraction", fraction)
    if fraction >= 1:
        raise ValueError(f"fraction must lie in (0, 1), got {fraction!r}.")
    generator = torch.Generator().manual_seed(seed)
    held = []
    for label in torch.unique(labels).tolist():
        members = torch.nonzero(labels == label).flatten()
        if len(members) < 2:
            raise ValueError(
                f"Class {label} has {len(members)} image(s): a validation split needs at least "
                "two per class."
            )
        n = min(max(round(fraction * len(members)), 1), len(members) - 1)
        held.append(members[torch.randperm(len(members), generator=generator)[:n]])
    held_out = torch.sort(torch.cat(held)).values
    mask = torch.ones(len(labels), dtype=torch.bool)
    mask[held_out] = False
    return torch.nonzero(mask).flatten(), held_out


@dataclass
class HotdogData:
    """The decoded training images and the held-out images each epoch is evaluated on (the
    test set, or a validation split of the training set), with the image recipe."""

    train: DecodedImages
    held_out: DecodedImages
    recipe: Recipe

    def loaders(
        self,
        batch_size: int,
        device: torch.device | str = "cpu",
        seed: int = 0,
        augment: bool = True,
    ) -> tuple[BatchLoader, BatchLoader]:
        """Training batches (reshuffled from ``seed``; random crops and flips, or with
        ``augment=False`` the test transform) and held-out batches (centre crops, in batches
        twice as large), both prepared on ``device``."""
        batch_size = int_at_least("batch_size", batch_size, 2)
        train = self.train if augment else self.train.resized(self.recipe.resize_side)
        return (
            BatchLoader(train, batch_size, self.recipe, train=True, augment=augment,
                        device=device, seed=seed),
            BatchLoader(self.held_out, 2 * batch_size, self.recipe, train=False, device=device),
        )  # fmt: skip

    def split_validation(self, fraction: float = 0.2, seed: int = 0) -> HotdogData:
        """Training images without a stratified validation split, and that split held out.

        The validation images are cut from the training-resolution cache to the test
        resolution, so they are prepared exactly as test images are.
        """
        kept, held = stratified_split(self.train.labels, fraction, seed)
        validation = self.train.subset(held).resized(self.recipe.resize_side)
        return HotdogData(self.train.subset(kept), validation, self.recipe)


def hotdog_data(
    root: str | os.PathLike, recipe: Recipe, cache_dir: str | os.PathLike | None = None
) -> HotdogData:
    """The training and test images of a hot dog folder ``root/{train,test}/{hotdog,not-hotdog}``.

    Each split is decoded once (training images at ``recipe.train_side``, test images at
    ``recipe.resize_side``) and cached in ``cache_dir`` (default: :func:`decode_cache_dir`, which
    avoids a read-only ``root``).
    """
    root = Path(root)
    train = decode_folder(root / "train", recipe.train_side, cache_dir=cache_dir)
    test = decode_folder(root / "test", recipe.resize_side, cache_dir=cache_dir)
    return HotdogData(train, test, recipe)
