"""Tests for d2lhelpers.data: decoding once with a cache, the recipe, and the batch loader."""

from __future__ import annotations

import os
import re
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torchvision.ops import roi_align

from d2lhelpers import data
from d2lhelpers.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    BatchLoader,
    DecodedImages,
    Recipe,
    decode_folder,
    epoch_batches,
    random_crop_boxes,
    resized_crops,
)
from d2lhelpers.images import load_rgb

CLASSES = ("hotdog", "not-hotdog")
COLORS = {
    "hotdog": [(255, 0, 0), (200, 10, 10), (150, 20, 20)],
    "not-hotdog": [(0, 0, 255), (10, 10, 200)],
}
MEAN = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def unnormalise(x: torch.Tensor) -> torch.Tensor:
    """Back from ImageNet-normalised floats to the 0..255 pixel scale."""
    return (x * STD + MEAN) * 255.0


def constant_images(n: int, side: int, classes: int = 2) -> DecodedImages:
    """Image ``i`` has every pixel equal to ``10 * i`` (so a batch reveals its indices)."""
    values = torch.arange(n, dtype=torch.uint8) * 10
    pixels = values.view(n, 1, 1, 1).expand(n, 3, side, side).contiguous()
    labels = torch.arange(n) % classes
    return DecodedImages(pixels, labels, [f"{i}.png" for i in range(n)], CLASSES[:classes])


def indices_of(x: torch.Tensor) -> list[int]:
    """Indices of constant images (see :func:`constant_images`) in a normalised batch."""
    means = unnormalise(x).mean(dim=(1, 2, 3))
    return [round(v / 10) for v in means.tolist()]


def gradient_images(n: int, side: int) -> DecodedImages:
    """Identical left-to-right ramps: dark on the left, bright on the right."""
    ramp = torch.linspace(0, 255, side).round().to(torch.uint8)
    pixels = ramp.view(1, 1, 1, side).expand(n, 3, side, side).contiguous()
    return DecodedImages(pixels, torch.zeros(n, dtype=torch.int64), ["g"] * n, CLASSES)


def no_tmp_files(root: Path) -> bool:
    return not list(root.rglob("*.tmp"))


# --------------------------------------------------------------------------------------------
# decode_folder
# --------------------------------------------------------------------------------------------


def test_decode_folder_shapes_labels_counts_and_paths(image_tree, tmp_path: Path) -> None:
    split = image_tree(COLORS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no bad files: no warning
        images = decode_folder(split, 16, CLASSES)

    assert isinstance(images.pixels, torch.Tensor)
    assert images.pixels.shape == (5, 3, 16, 16)
    assert images.pixels.dtype == torch.uint8
    assert images.stored_size == 16
    assert images.labels.tolist() == [0, 0, 0, 1, 1]
    assert images.counts() == {"hotdog": 3, "not-hotdog": 2}
    assert images.paths == sorted(images.paths)
    assert images.paths[0] == str(split / "hotdog" / "0.png")
    assert images.skipped == []
    # solid colours survive decoding and resizing
    expected = [c for name in CLASSES for c in COLORS[name]]
    for img, rgb in zip(images.pixels, expected, strict=True):
        assert img[:, 8, 8].tolist() == list(rgb)
    assert no_tmp_files(tmp_path)


def test_decode_folder_skips_bad_files_with_one_warning(image_tree) -> None:
    split = image_tree(COLORS)
    empty = split / "hotdog" / "zero.jpg"
    empty.write_bytes(b"")
    text = split / "not-hotdog" / "text.png"
    text.write_text("not a picture")
    half = split / "hotdog" / "half.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 40, 3), np.uint8)).save(half)
    full = half.read_bytes()
    half.write_bytes(full[: len(full) // 2])

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        images = decode_folder(split, 16, CLASSES)

    assert len(caught) == 1
    message = str(caught[0].message)
    for bad in (empty, text, half):
        assert str(bad) in message
    assert len(images.skipped) == 3
    assert len(images) == 5
    assert images.counts() == {"hotdog": 3, "not-hotdog": 2}
    assert not any(p.endswith(("zero.jpg", "text.png", "half.png")) for p in images.paths)


def test_decode_folder_class_with_only_bad_images_is_an_error(image_tree) -> None:
    split = image_tree({"hotdog": COLORS["hotdog"]})
    (split / "not-hotdog").mkdir()
    (split / "not-hotdog" / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    with (
        pytest.warns(UserWarning, match="broken.jpg"),
        pytest.raises(ValueError, match="not-hotdog"),
    ):
        decode_folder(split, 16, CLASSES)


def test_decode_folder_cache_is_reused(image_tree, tmp_path: Path, monkeypatch) -> None:
    split = image_tree(COLORS)
    first = decode_folder(split, 16, CLASSES)
    cache_dir = tmp_path / ".decoded"
    assert sorted(p.suffix for p in cache_dir.iterdir()) == [".json", ".lock", ".u8"]

    def must_not_decode(*args, **kwargs):
        raise AssertionError("decoded again despite a valid cache")

    monkeypatch.setattr(data, "_decode_one", must_not_decode)
    second = decode_folder(split, 16, CLASSES)

    assert torch.equal(first.pixels, second.pixels)
    assert torch.equal(first.labels, second.labels)
    assert first.paths == second.paths
    assert no_tmp_files(tmp_path)


def test_decode_folder_cache_dir_argument(image_tree, tmp_path: Path) -> None:
    split = image_tree(COLORS)
    cache = tmp_path / "elsewhere" / "cache"
    decode_folder(split, 16, CLASSES, cache_dir=cache)
    assert len(list(cache.glob("train-16px-*.u8"))) == 1
    assert not (tmp_path / ".decoded").exists()


def test_decode_folder_changed_file_invalidates_cache(image_tree, tmp_path, monkeypatch) -> None:
    split = image_tree(COLORS)
    first = decode_folder(split, 16, CLASSES)
    calls = []
    original = data._decode_one

    def counting(path, size):
        calls.append(path)
        return original(path, size)

    monkeypatch.setattr(data, "_decode_one", counting)
    changed = split / "hotdog" / "1.png"
    Image.new("RGB", (30, 30), (0, 255, 0)).save(changed)  # new size and content
    stat = changed.stat()
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))

    second = decode_folder(split, 16, CLASSES)

    assert len(calls) == 5
    assert second.pixels[1, :, 8, 8].tolist() == [0, 255, 0]
    assert first.pixels[1, :, 8, 8].tolist() == [200, 10, 10]
    assert torch.equal(first.pixels[0], second.pixels[0])
    assert no_tmp_files(tmp_path)


def test_decode_folder_new_mtime_alone_invalidates_cache(image_tree, monkeypatch) -> None:
    split = image_tree(COLORS)
    decode_folder(split, 16, CLASSES)
    calls = []
    original = data._decode_one
    monkeypatch.setattr(data, "_decode_one", lambda p, s: calls.append(p) or original(p, s))
    touched = split / "not-hotdog" / "0.png"
    stat = touched.stat()
    os.utime(touched, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))

    decode_folder(split, 16, CLASSES)

    assert len(calls) == 5


def test_decode_folder_keeps_each_photos_size(image_tree) -> None:
    split = image_tree(COLORS, size=(36, 18))
    images = decode_folder(split, 16, CLASSES)
    assert images.sizes.tolist() == [[36, 18]] * len(images)
    again = decode_folder(split, 16, CLASSES)  # from the cache
    assert torch.equal(again.sizes, images.sizes)
    assert again.photo_sizes(torch.tensor([0])).tolist() == [[36.0, 18.0]]


def test_decode_folder_other_stored_size_is_a_separate_cache(image_tree, tmp_path) -> None:
    split = image_tree(COLORS)
    small = decode_folder(split, 12, CLASSES)
    large = decode_folder(split, 16, CLASSES)
    assert small.pixels.shape[-1] == 12
    assert large.pixels.shape[-1] == 16
    assert len(list((tmp_path / ".decoded").glob("*.u8"))) == 2


def test_decode_folder_zero_ram_budget_memory_maps(image_tree) -> None:
    split = image_tree(COLORS)
    in_memory = decode_folder(split, 16, CLASSES)
    mapped = decode_folder(split, 16, CLASSES, ram_budget=0)
    assert isinstance(mapped.pixels, np.memmap)
    assert mapped.pixels.shape == (5, 3, 16, 16)
    assert np.array_equal(np.asarray(mapped.pixels), in_memory.pixels.numpy())
    assert mapped.stored_size == 16


def test_memory_mapped_test_loader_equals_in_memory(image_tree) -> None:
    split = image_tree(COLORS)
    recipe = Recipe(size=12)
    in_memory = decode_folder(split, 16, CLASSES)
    mapped = decode_folder(split, 16, CLASSES, ram_budget=0)
    a = list(BatchLoader(in_memory, 2, recipe, train=False))
    b = list(BatchLoader(mapped, 2, recipe, train=False))
    assert len(a) == len(b) == 3
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        assert torch.equal(xa, xb)
        assert torch.equal(ya, yb)


def test_memory_mapped_train_batches_keep_pixels_with_their_labels(tmp_path: Path) -> None:
    images = constant_images(10, 16)
    path = tmp_path / "pixels.npy"
    np.save(path, images.pixels.numpy())
    mapped = DecodedImages(np.load(path, mmap_mode="r"), images.labels, images.paths, CLASSES)
    seen = []
    for x, y in BatchLoader(mapped, 4, Recipe(size=8), train=True, seed=3):
        ids = indices_of(x)
        assert [i % 2 for i in ids] == y.tolist()
        seen += ids
    assert sorted(seen) == list(range(10))


def test_memory_mapped_train_loader_equals_in_memory(tmp_path: Path) -> None:
    images = constant_images(10, 16)
    path = tmp_path / "pixels.npy"
    np.save(path, images.pixels.numpy())
    mapped = DecodedImages(np.load(path, mmap_mode="r"), images.labels, images.paths, CLASSES)
    recipe = Recipe(size=8)
    a = list(BatchLoader(images, 4, recipe, train=True, seed=1))
    b = list(BatchLoader(mapped, 4, recipe, train=True, seed=1))
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        assert torch.equal(ya, yb)
        assert torch.equal(xa, xb)


# --------------------------------------------------------------------------------------------
# Recipe
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "train_stored"), [(8, 18), (64, 146), (224, 512), (600, 686)])
def test_recipe_train_side(size: int, train_stored: int) -> None:
    assert Recipe(size=size).train_side == train_stored


@pytest.mark.parametrize(("size", "stored"), [(224, 256), (64, 73), (8, 9), (32, 37)])
def test_recipe_resize_side(size: int, stored: int) -> None:
    assert Recipe(size=size).resize_side == stored


@pytest.mark.parametrize("size", [7, 0, -1])
def test_recipe_too_small(size: int) -> None:
    with pytest.raises(ValueError, match=str(size)):
        Recipe(size=size)


# --------------------------------------------------------------------------------------------
# BatchLoader
# --------------------------------------------------------------------------------------------


def test_train_batches_shape_dtype_layout() -> None:
    images = constant_images(10, 20)
    batches = list(BatchLoader(images, 4, Recipe(size=16), train=True))
    assert [len(y) for _, y in batches] == [4, 4, 2]
    for x, y in batches:
        assert x.shape == (len(y), 3, 16, 16)
        assert x.dtype == torch.float32
        assert x.is_contiguous(memory_format=torch.channels_last)
        assert not x.is_contiguous()  # really NHWC in memory, not NCHW
        assert y.dtype == torch.int64


def test_channels_last_can_be_switched_off() -> None:
    images = constant_images(4, 20)
    x, _ = next(iter(BatchLoader(images, 4, Recipe(size=16), train=True, channels_last=False)))
    assert x.is_contiguous()


@pytest.mark.parametrize(
    ("n", "batch", "train_len", "test_len"),
    [(9, 4, 2, 3), (10, 4, 3, 3), (8, 4, 2, 2), (1, 4, 0, 1), (6, 5, 1, 2)],
)
def test_len_and_trailing_batch(n: int, batch: int, train_len: int, test_len: int) -> None:
    images = constant_images(n, 10)
    recipe = Recipe(size=8)
    train = BatchLoader(images, batch, recipe, train=True)
    test = BatchLoader(images, batch, recipe, train=False)
    assert len(train) == train_len
    assert len(test) == test_len
    assert len(list(train)) == train_len
    test_batches = list(test)
    assert len(test_batches) == test_len
    assert sum(len(y) for _, y in test_batches) == n


def test_training_needs_batches_of_two() -> None:
    with pytest.raises(ValueError, match="BatchNorm"):
        BatchLoader(constant_images(5, 10), 1, Recipe(size=8), train=True)
    assert len(list(BatchLoader(constant_images(5, 10), 1, Recipe(size=8), train=False))) == 5


def test_batch_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        BatchLoader(constant_images(4, 10), 0, Recipe(size=8), train=True)


def test_each_training_epoch_covers_every_image_once() -> None:
    images = constant_images(12, 16)
    loader = BatchLoader(images, 5, Recipe(size=8), train=True, seed=7)
    orders = []
    for _ in range(3):
        order = []
        for x, y in loader:
            ids = indices_of(x)
            assert [i % 2 for i in ids] == y.tolist()  # labels travel with their images
            order += ids
        assert sorted(order) == list(range(12))
        orders.append(order)
    assert orders[0] != orders[1] or orders[1] != orders[2]  # reshuffled every epoch


def test_test_loader_keeps_file_order() -> None:
    images = constant_images(7, 16)
    order = [
        i for x, _ in BatchLoader(images, 3, Recipe(size=8), train=False) for i in indices_of(x)
    ]
    assert order == list(range(7))


def _epochs(seed: int, epochs: int = 2) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(123)
    pixels = torch.randint(0, 256, (9, 3, 20, 20), dtype=torch.uint8, generator=g)
    images = DecodedImages(pixels, torch.arange(9) % 2, ["x"] * 9, CLASSES)
    loader = BatchLoader(images, 4, Recipe(size=12), train=True, seed=seed)
    return [batch for _ in range(epochs) for batch in loader]


def test_same_seed_gives_identical_batches() -> None:
    a, b = _epochs(seed=5), _epochs(seed=5)
    assert len(a) == len(b) == 4
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        assert torch.equal(xa, xb)
        assert torch.equal(ya, yb)


def test_different_seed_gives_different_batches() -> None:
    a, b = _epochs(seed=5), _epochs(seed=6)
    assert any(not torch.equal(xa, xb) for (xa, _), (xb, _) in zip(a, b, strict=True))


def test_epoch_batches_are_seeded_permutations_in_batches() -> None:
    expected = torch.randperm(9, generator=torch.Generator().manual_seed(3))
    batches = list(epoch_batches(9, 4, torch.Generator().manual_seed(3)))
    assert [len(index) for index in batches] == [4, 4, 1]
    assert torch.equal(torch.cat(batches), expected)


def test_epoch_batches_drop_a_trailing_single_and_keep_order_unshuffled() -> None:
    batches = list(epoch_batches(9, 4, torch.Generator(), shuffle=False, drop_single=True))
    assert [index.tolist() for index in batches] == [[0, 1, 2, 3], [4, 5, 6, 7]]


@pytest.mark.parametrize("side", [20, 19, 21])  # offsets 2, round(1.5), round(2.5)
def test_test_loader_is_center_crop_with_imagenet_normalisation(side: int) -> None:
    g = torch.Generator().manual_seed(1)
    pixels = torch.randint(0, 256, (3, 3, side, side), dtype=torch.uint8, generator=g)
    images = DecodedImages(pixels, torch.tensor([0, 1, 0]), ["a", "b", "c"], CLASSES)
    (x, y), *_ = list(BatchLoader(images, 3, Recipe(size=16), train=False))

    crop = TF.center_crop(pixels, [16, 16]).float() / 255.0  # torchvision's CenterCrop
    expected = TF.normalize(crop, list(IMAGENET_MEAN), list(IMAGENET_STD))
    top = round((side - 16) / 2)
    manual = (pixels[..., top : top + 16, top : top + 16].float() / 255.0 - MEAN) / STD

    assert y.tolist() == [0, 1, 0]
    assert torch.allclose(x, expected, atol=1e-5)
    assert torch.allclose(x, manual, atol=1e-5)


def test_crop_bigger_than_stored_size_is_an_error() -> None:
    with pytest.raises(ValueError, match="stored_size=18"):
        BatchLoader(constant_images(4, 12), 2, Recipe(size=16), train=False)


def test_augmented_constant_image_stays_constant() -> None:
    color = torch.tensor([10, 200, 77], dtype=torch.uint8)
    pixels = color.view(1, 3, 1, 1).expand(16, 3, 32, 32).contiguous()
    images = DecodedImages(pixels, torch.zeros(16, dtype=torch.int64), ["c"] * 16, CLASSES)
    for x, _ in BatchLoader(images, 8, Recipe(size=16), train=True, seed=2):
        restored = unnormalise(x)
        assert torch.allclose(restored, color.float().view(1, 3, 1, 1).expand_as(x), atol=1e-3)


def test_training_flips_some_images_and_not_others() -> None:
    images = gradient_images(32, 32)
    (x, _), *_ = list(BatchLoader(images, 32, Recipe(size=16), train=True, seed=4))
    slope = unnormalise(x)[:, 0, :, -1].mean(1) - unnormalise(x)[:, 0, :, 0].mean(1)
    increasing, decreasing = int((slope > 0).sum()), int((slope < 0).sum())
    assert increasing + decreasing == 32  # every crop shows a ramp
    assert increasing > 0
    assert decreasing > 0


def test_a_flipped_crop_is_the_mirror_image_of_the_same_crop() -> None:
    images = DecodedImages(
        torch.randint(0, 256, (12, 3, 24, 24), dtype=torch.uint8),
        torch.zeros(12, dtype=torch.int64),
        ["c"] * 12,
        CLASSES,
        sizes=torch.randint(20, 60, (12, 2)),
    )
    recipe = Recipe(size=16)
    x, _ = next(iter(BatchLoader(images, 12, recipe, train=True, seed=5)))
    # The same draws by hand: the crop boxes, then which images are flipped.
    generator = torch.Generator().manual_seed(5)
    order = torch.randperm(12, generator=generator)
    boxes = random_crop_boxes(images.photo_sizes(order), 24, recipe, generator)
    flip = torch.rand(12, generator=generator) < 0.5
    rois = torch.cat([torch.arange(12.0)[:, None], boxes], 1)
    crops = roi_align(images.pixels[order].float(), rois, (16, 16), sampling_ratio=2, aligned=True)
    crops[flip] = crops[flip].flip(-1)
    assert 0 < int(flip.sum()) < 12
    assert torch.allclose(unnormalise(x), crops, atol=1e-3)


def test_test_loader_never_flips() -> None:
    images = gradient_images(8, 20)
    (x, _), *_ = list(BatchLoader(images, 8, Recipe(size=16), train=False))
    assert bool((x[:, :, :, -1] > x[:, :, :, 0]).all())


# --------------------------------------------------------------------------------------------
# random_crop_boxes
# --------------------------------------------------------------------------------------------


def _box_sizes(boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]


def squares(n: int, side: int) -> torch.Tensor:
    """Photo sizes of ``n`` square photos of ``side`` pixels."""
    return torch.full((n, 2), float(side))


def test_random_crop_boxes_follow_the_photo_not_the_square() -> None:
    """On a 2:1 photo squashed to a square, a box's shape is drawn in photo pixels."""
    recipe = Recipe(size=8, scale=(0.1, 0.5), ratio=(3 / 4, 4 / 3))
    n, side = 2000, 64
    photos = torch.tensor([[600.0, 300.0]]).repeat(n, 1)
    boxes = random_crop_boxes(photos, side, recipe, torch.Generator().manual_seed(0))
    w, h = _box_sizes(boxes)
    w_photo, h_photo = w * 600 / side, h * 300 / side
    ratio = w_photo / h_photo
    assert bool(((ratio > 0.74) & (ratio < 1.36)).all())  # the recipe's range, rounding aside
    area = w_photo * h_photo / (600 * 300)
    assert bool(((area > 0.09) & (area < 0.51)).all())
    assert bool((boxes[:, 2] <= side + 1e-4).all() and (boxes[:, 3] <= side + 1e-4).all())
    squashed = w / h  # in the square, the same boxes are half as wide: jitter around 1/2
    assert 0.45 < squashed.median().item() < 0.55


@pytest.mark.parametrize(
    "recipe",
    [Recipe(size=8), Recipe(size=8, scale=(0.3, 0.5)), Recipe(size=8, ratio=(0.5, 2.0))],
)
def test_random_crop_boxes_within_bounds(recipe: Recipe) -> None:
    side, n = 64, 2000
    boxes = random_crop_boxes(squares(n, side), side, recipe, torch.Generator().manual_seed(0))
    assert boxes.shape == (n, 4)
    assert bool((boxes >= 0).all())
    assert bool((boxes <= side + 1e-4).all())
    w, h = _box_sizes(boxes)
    assert bool((w > 0).all() and (h > 0).all())
    whole = (w > side - 1e-3) & (h > side - 1e-3)
    area = w * h
    slack = 0.5 * (w + h) + 0.25  # w and h are rounded to whole pixels
    lo, hi = recipe.scale
    in_scale = (area >= lo * side * side - slack) & (area <= hi * side * side + slack)
    assert bool((in_scale | whole).all())
    r_lo, r_hi = recipe.ratio
    in_ratio = ((w + 0.5) / (h - 0.5) >= r_lo) & ((w - 0.5) / (h + 0.5) <= r_hi)
    assert bool((in_ratio | whole).all())
    assert len(set(area.round().tolist())) > 50  # really random, not one fixed box


def test_random_crop_boxes_square_ratio_gives_square_boxes() -> None:
    recipe = Recipe(size=8, scale=(0.25, 0.25), ratio=(1.0, 1.0))
    boxes = random_crop_boxes(squares(100, 40), 40, recipe, torch.Generator().manual_seed(0))
    w, h = _box_sizes(boxes)
    assert torch.allclose(w, torch.full_like(w, 20.0), atol=1e-4)
    assert torch.allclose(h, torch.full_like(h, 20.0), atol=1e-4)


def test_random_crop_boxes_fall_back_to_whole_image() -> None:
    recipe = Recipe(size=8, scale=(1.0, 1.0), ratio=(2.0, 3.0))  # never fits in a square
    boxes = random_crop_boxes(squares(5, 32), 32, recipe, torch.Generator().manual_seed(0))
    assert torch.allclose(boxes, torch.tensor([[0.0, 0.0, 32.0, 32.0]] * 5))


def test_random_crop_boxes_deterministic_for_a_seeded_generator() -> None:
    recipe = Recipe(size=8)
    a = random_crop_boxes(squares(50, 48), 48, recipe, torch.Generator().manual_seed(9))
    b = random_crop_boxes(squares(50, 48), 48, recipe, torch.Generator().manual_seed(9))
    c = random_crop_boxes(squares(50, 48), 48, recipe, torch.Generator().manual_seed(10))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_hotdog_data_reads_both_splits(image_tree) -> None:
    train_split = image_tree(COLORS, split="train")
    image_tree(COLORS, split="test")
    recipe = Recipe(size=8)
    train, test = data.hotdog_data(train_split.parent, recipe).loaders(2, seed=0)
    assert train.train and not test.train
    assert train.images.stored_size == recipe.train_side == 18
    assert test.images.stored_size == recipe.resize_side == 9
    assert len(train) == 2  # 5 images, batch 2: the trailing single image is dropped
    assert len(test) == 2  # evaluation in batches of 4
    assert re.search("hotdog", train.images.paths[0])


# --------------------------------------------------------------------------------------------
# Arguments are checked at the call, before any work
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"size": 4}, "Recipe.size"),
        ({"size": 224.0}, "Recipe.size"),
        ({"scale": (0.5, 0.1)}, "Recipe.scale"),
        ({"scale": (0.08, float("nan"))}, "Recipe.scale"),
        ({"scale": (0.08, 2.0)}, "Recipe.scale"),
        ({"ratio": (0.0, 1.0)}, "Recipe.ratio"),
        ({"ratio": (0.75, float("inf"))}, "Recipe.ratio"),
        ({"resize_ratio": float("nan")}, "Recipe.resize_ratio"),
        ({"resize_ratio": 0.5}, "Recipe.resize_ratio"),
        ({"std": (0.2, 0.0, 0.2)}, "Recipe.std"),
        ({"mean": (0.5, 0.5)}, "Recipe.mean"),
    ],
)
def test_recipe_rejects_bad_values(kwargs: dict, word: str) -> None:
    with pytest.raises(ValueError, match=re.escape(word)):
        Recipe(**kwargs)


@pytest.mark.parametrize("batch_size", [0, 1, -2, 2.5, True])
def test_hotdog_data_loaders_check_batch_size_before_preparing(image_tree, batch_size) -> None:
    split = image_tree({"hotdog": [(200, 0, 0)] * 2, "not-hotdog": [(0, 0, 200)] * 2})
    image_tree({"hotdog": [(200, 0, 0)], "not-hotdog": [(0, 0, 200)]}, split="test")
    hotdog = data.hotdog_data(split.parent, Recipe(16))
    with pytest.raises(ValueError, match=f"batch_size must be an integer.*{batch_size!r}"):
        hotdog.loaders(batch_size)


@pytest.mark.parametrize(("batch_size", "train"), [(0, False), (1, True), (-1, False)])
def test_batch_loader_rejects_bad_batch_size(image_tree, batch_size: int, train: bool) -> None:
    split = image_tree({"hotdog": [(200, 0, 0)] * 2, "not-hotdog": [(0, 0, 200)] * 2})
    images = decode_folder(split, 16, CLASSES)
    with pytest.raises(ValueError, match=f"batch_size .*got {batch_size}"):
        BatchLoader(images, batch_size, Recipe(16, resize_ratio=1.0), train=train)


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [({"stored_size": 0}, "stored_size"), ({"stored_size": 8.5}, "stored_size"),
     ({"ram_budget": -1}, "ram_budget"), ({"ram_budget": float("inf")}, "ram_budget")],
)  # fmt: skip
def test_decode_folder_rejects_bad_values(image_tree, kwargs: dict, word: str) -> None:
    split = image_tree({"hotdog": [(200, 0, 0)], "not-hotdog": [(0, 0, 200)]})
    arguments = {"stored_size": 16, **kwargs}
    with pytest.raises(ValueError, match=word):
        decode_folder(split, classes=CLASSES, **arguments)


# --------------------------------------------------------------------------------------------
# File names that are not valid UTF-8 (a zip made on Windows, unzipped on Linux)
# --------------------------------------------------------------------------------------------


def test_names_that_are_not_utf8_are_decoded_or_listed_never_a_crash(image_tree) -> None:
    split = image_tree(COLORS)
    good = Path(os.fsdecode(os.fsencode(split / "hotdog") + b"/caf\xe9.png"))  # Latin-1 name
    Image.new("RGB", (24, 20), (250, 0, 0)).save(good)
    bad = Path(os.fsdecode(os.fsencode(split / "not-hotdog") + b"/\x81\x82.jpg"))
    bad.write_bytes(b"not a picture")

    with pytest.warns(UserWarning) as caught:
        images = decode_folder(split, 16, CLASSES)

    assert str(good) in images.paths  # decoded and used: the path opens the file again
    assert images.counts() == {"hotdog": 4, "not-hotdog": 2}
    message = str(caught[0].message)
    assert "\\x81\\x82.jpg" in message  # listed, printable
    message.encode("utf-8")  # no surrogates left in what is shown
    with pytest.warns(UserWarning, match="x81"):
        again = decode_folder(split, 16, CLASSES)  # from the cache, the same paths
    assert again.paths == images.paths


# --------------------------------------------------------------------------------------------
# Where the cache goes: a read-only data folder, a configurable cache folder
# --------------------------------------------------------------------------------------------


@pytest.fixture
def read_only_data(image_tree, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data folder that cannot be written (simulated: the tests may run as root)."""
    train = image_tree(COLORS)
    image_tree(COLORS, split="test")
    real = data.is_writable
    monkeypatch.setattr(data, "is_writable", lambda f: tmp_path not in (f, *f.parents) and real(f))
    monkeypatch.setenv("D2LHELPERS_DATA", str(tmp_path.parent / f"{tmp_path.name}-home"))
    monkeypatch.delenv("D2LHELPERS_CACHE", raising=False)
    return train.parent


def written_below(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.suffix in {".u8", ".json", ".lock", ".tmp"}]


def test_read_only_data_folder_caches_in_the_data_dir(read_only_data: Path) -> None:
    images = decode_folder(read_only_data / "train", 16, CLASSES)
    assert len(images) == 5
    assert written_below(read_only_data) == []
    home = Path(os.environ["D2LHELPERS_DATA"])
    expected = data.decode_cache_dir(read_only_data / "train")
    assert expected.parent == home / "decoded"
    assert len(list(expected.glob("train-16px-*.u8"))) == 1


def test_loaders_take_a_cache_folder(read_only_data: Path, tmp_path: Path) -> None:
    cache = tmp_path.parent / f"{tmp_path.name}-cache"
    train, test = data.hotdog_data(
        read_only_data, Recipe(16, resize_ratio=1.0), cache_dir=cache
    ).loaders(2)
    assert len(train.images) == len(test.images) == 5
    assert sorted(p.name.split("-")[0] for p in cache.glob("*.u8")) == ["test", "train"]
    assert written_below(read_only_data) == []


def test_cache_environment_variable(image_tree, tmp_path: Path, monkeypatch) -> None:
    split = image_tree(COLORS)
    cache = tmp_path.parent / f"{tmp_path.name}-env-cache"
    monkeypatch.setenv("D2LHELPERS_CACHE", str(cache))
    decode_folder(split, 16, CLASSES)
    assert written_below(tmp_path) == []
    assert len(list(cache.glob("*/train-16px-*.u8"))) == 1


def test_read_only_data_folder_and_home_is_a_clear_error(read_only_data: Path, monkeypatch) -> None:
    blocker = read_only_data.parent.parent / f"{read_only_data.parent.name}-file"
    blocker.write_text("a file where the home folder would be")
    monkeypatch.setenv("D2LHELPERS_DATA", str(blocker / "data"))
    with pytest.raises(PermissionError, match="D2LHELPERS_DATA"):
        decode_folder(read_only_data / "train", 16, CLASSES)


def test_a_complete_cache_beside_read_only_images_is_used_not_rebuilt(
    image_tree, tmp_path: Path, monkeypatch
) -> None:
    """A data set mounted read-only with its caches (built before, or shipped with it)."""
    split = image_tree(COLORS)
    first = decode_folder(split, 16, CLASSES)  # writes the cache beside the images
    monkeypatch.setattr(data, "is_writable", lambda folder: False)
    monkeypatch.setenv("D2LHELPERS_DATA", str(tmp_path.parent / f"{tmp_path.name}-home"))
    monkeypatch.delenv("D2LHELPERS_CACHE", raising=False)
    monkeypatch.setattr(data, "_write_cache", lambda *a: pytest.fail("the cache was rebuilt"))
    again = decode_folder(split, 16, CLASSES)
    assert torch.equal(torch.as_tensor(again.pixels), torch.as_tensor(first.pixels))


@pytest.mark.parametrize(
    ("cache_env", "named"),
    [(False, "D2LHELPERS_CACHE (or D2LHELPERS_DATA) to a writable folder"),
     (True, "D2LHELPERS_CACHE to a writable folder")],
    ids=["in-the-data-folder", "in-D2LHELPERS_CACHE"],
)  # fmt: skip
def test_a_cache_folder_that_cannot_be_written_names_the_setting_that_moves_it(
    read_only_data: Path, tmp_path: Path, monkeypatch, cache_env: bool, named: str
) -> None:
    blocker = tmp_path.parent / f"{tmp_path.name}-blocker"
    blocker.write_text("a file: nothing can be created below it, even by root")
    if cache_env:
        monkeypatch.setenv("D2LHELPERS_CACHE", str(blocker / "cache"))
    else:  # the data folder exists (read-only: simulated by the file below it)
        monkeypatch.setattr(data, "data_dir", lambda: blocker)
    with pytest.raises(PermissionError, match=re.escape(named)) as caught:
        decode_folder(read_only_data / "train", 16, CLASSES)
    assert str(blocker) in str(caught.value)
    assert cache_env or "D2LHELPERS_DATA)" in str(caught.value)


def test_a_cache_that_cannot_be_read_is_an_error_not_rebuilt(
    image_tree, monkeypatch, tmp_path: Path
) -> None:
    split = image_tree(COLORS)
    decode_folder(split, 16, CLASSES)
    monkeypatch.setattr(data.os, "access", lambda path, mode: False)  # another user's, 0600
    monkeypatch.setattr(data, "_write_cache", lambda *a: pytest.fail("the cache was rebuilt"))
    with pytest.raises(
        PermissionError, match=r"Cannot read the decoded-image cache .*\.u8 .*D2LHELPERS_CACHE"
    ):
        decode_folder(split, 16, CLASSES)


# --------------------------------------------------------------------------------------------
# Building the cache: stale caches and killed runs' temporaries go, memory stays near 1x
# --------------------------------------------------------------------------------------------


def test_new_cache_removes_the_stale_ones_of_that_split_and_size(image_tree, tmp_path) -> None:
    split = image_tree(COLORS)
    decode_folder(split, 16, CLASSES)
    decode_folder(split, 12, CLASSES)  # another size: kept
    touched = split / "hotdog" / "0.png"
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))
    decode_folder(split, 16, CLASSES)
    cache = tmp_path / ".decoded"
    assert len(list(cache.glob("train-16px-*.u8"))) == 1
    assert len(list(cache.glob("train-16px-*.json"))) == 1
    assert len(list(cache.glob("train-12px-*.u8"))) == 1


def test_killed_runs_temporaries_are_removed_under_the_lock(image_tree, tmp_path) -> None:
    split = image_tree(COLORS)
    cache = tmp_path / ".decoded"
    cache.mkdir()
    killed = cache / "train-16px-0123456789abcdef.u8.k1ll3d.tmp"
    killed.write_bytes(b"half a cache")
    other = cache / "test-16px-0123456789abcdef.u8.0th3r.tmp"  # another lock's: left alone
    other.write_bytes(b"")
    decode_folder(split, 16, CLASSES)
    assert not killed.exists()
    assert other.exists()


def test_incomplete_pixel_file_is_rebuilt(image_tree, tmp_path: Path) -> None:
    split = image_tree(COLORS)
    first = decode_folder(split, 16, CLASSES)
    (pixels,) = (tmp_path / ".decoded").glob("*.u8")
    pixels.write_bytes(pixels.read_bytes()[:100])
    again = decode_folder(split, 16, CLASSES)
    assert torch.equal(again.pixels, first.pixels)


def test_building_the_cache_holds_one_copy_of_it(tmp_path: Path) -> None:
    """Python-side allocations (numpy's included) peak near the cache's size, not at 3x."""
    rng = np.random.default_rng(0)
    for name in CLASSES:
        (tmp_path / "train" / name).mkdir(parents=True)
        for i in range(150):
            Image.fromarray(rng.integers(0, 256, (20, 24, 3), np.uint8)).save(
                tmp_path / "train" / name / f"{i}.png"
            )
    cache_bytes = 300 * 3 * 32 * 32
    tracemalloc.start()
    try:
        images = decode_folder(tmp_path / "train", 32, CLASSES)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert images.pixels.numel() == cache_bytes
    assert peak < 1.25 * cache_bytes + 200_000, (peak, cache_bytes)


def test_batch_of_given_indices_is_what_iteration_yields() -> None:
    images = constant_images(7, 16)
    loader = BatchLoader(images, 3, Recipe(size=8), train=False)
    x, y = loader.batch(torch.tensor([5, 1, 6]))
    assert indices_of(x) == [5, 1, 6] and y.tolist() == [1, 1, 0]
    assert x.is_contiguous(memory_format=torch.channels_last)
    first_x, first_y = next(iter(loader))
    batch_x, batch_y = loader.batch(torch.arange(3))
    assert torch.equal(first_x, batch_x) and torch.equal(first_y, batch_y)


def test_resized_crops_split_over_threads_are_the_same_crops() -> None:
    images = torch.rand(5, 3, 20, 20)
    rois = torch.tensor([[i % 5, 1.0 + i, 2.0, 15.0 - i, 18.0] for i in range(7)])
    expected = roi_align(images, rois, (8, 8), sampling_ratio=2, aligned=True)
    threads = torch.get_num_threads()
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            assert torch.equal(resized_crops(images, rois, 8), expected), n
    finally:
        torch.set_num_threads(threads)


# --------------------------------------------------------------------------------------------
# Validation splits, subsets, resizing, loaders without augmentation
# --------------------------------------------------------------------------------------------


def test_stratified_split_holds_out_a_fraction_of_every_class() -> None:
    labels = torch.tensor([0] * 10 + [1] * 5)
    kept, held = data.stratified_split(labels, 0.2, seed=3)
    assert torch.bincount(labels[held]).tolist() == [2, 1]
    assert sorted(kept.tolist() + held.tolist()) == list(range(15))
    again, held_again = data.stratified_split(labels, 0.2, seed=3)
    assert torch.equal(held, held_again) and torch.equal(kept, again)
    assert not torch.equal(held, data.stratified_split(labels, 0.2, seed=4)[1])


@pytest.mark.parametrize("fraction", [0.0, 1.0, 1.5, float("nan")])
def test_stratified_split_rejects_a_bad_fraction(fraction: float) -> None:
    with pytest.raises(ValueError, match="fraction"):
        data.stratified_split(torch.tensor([0, 0, 1, 1]), fraction)


def test_stratified_split_needs_two_images_per_class() -> None:
    with pytest.raises(ValueError, match="Class 1 has 1 image"):
        data.stratified_split(torch.tensor([0, 0, 1]), 0.5)


def test_split_validation_cuts_validation_from_training_at_test_resolution(image_tree) -> None:
    colors = {"hotdog": [(200, 0, i) for i in range(5)], "not-hotdog": [(0, 0, 200)] * 5}
    split = image_tree(colors)
    image_tree(COLORS, split="test")
    recipe = Recipe(size=8)
    full = data.hotdog_data(split.parent, recipe)
    part = full.split_validation(0.2, seed=0)
    assert len(part.train) == 8 and len(part.held_out) == 2
    assert part.train.stored_size == recipe.train_side
    assert part.held_out.stored_size == recipe.resize_side
    assert set(part.train.paths).isdisjoint(part.held_out.paths)
    assert sorted(part.train.paths + part.held_out.paths) == sorted(full.train.paths)
    assert part.held_out.counts() == {"hotdog": 1, "not-hotdog": 1}


def test_subset_keeps_labels_paths_and_sizes_in_order(image_tree) -> None:
    images = decode_folder(image_tree(COLORS), 16, CLASSES)
    index = torch.tensor([3, 0])
    subset = images.subset(index)
    assert subset.paths == [images.paths[3], images.paths[0]]
    assert torch.equal(subset.labels, images.labels[index])
    assert torch.equal(torch.as_tensor(subset.pixels), torch.as_tensor(images.pixels)[index])


def test_resized_keeps_solid_colours(image_tree) -> None:
    images = decode_folder(image_tree(COLORS), 16, CLASSES)
    small = images.resized(8)
    assert small.stored_size == 8 and images.resized(16) is images
    assert torch.allclose(
        torch.as_tensor(small.pixels).float().mean((2, 3)),
        torch.as_tensor(images.pixels).float().mean((2, 3)),
        atol=1.0,
    )


def test_loaders_without_augmentation_give_shuffled_centre_crops(image_tree) -> None:
    split = image_tree(COLORS)
    image_tree(COLORS, split="test")
    recipe = Recipe(size=8)
    plain, _ = data.hotdog_data(split.parent, recipe).loaders(2, augment=False)
    assert plain.train and not plain.augment
    assert plain.images.stored_size == recipe.resize_side
    centre = BatchLoader(plain.images, 2, recipe, train=False)
    index = torch.tensor([4, 1, 2])
    assert torch.equal(plain.batch(index)[0], centre.batch(index)[0])
    assert torch.equal(plain.batch(index)[0], plain.batch(index)[0])  # no randomness
    epochs = [torch.cat([y for _, y in plain]) for _ in range(6)]
    assert all(len(e) == 4 for e in epochs)  # 5 images, batch 2: a single last image dropped
    assert any(not torch.equal(epochs[0], e) for e in epochs[1:])  # reshuffled


# --------------------------------------------------------------------------------------------
# The batched loader reproduces torchvision's standard transforms (the page's claim)
# --------------------------------------------------------------------------------------------


def _torchvision_test_transform(recipe: Recipe):
    from torchvision import transforms

    return transforms.Compose([
        transforms.Resize([recipe.resize_side, recipe.resize_side]),
        transforms.CenterCrop(recipe.size),
        transforms.ToTensor(),
        transforms.Normalize(recipe.mean, recipe.std),
    ])  # fmt: skip


def test_test_batches_equal_torchvision_resize_centre_crop_normalize(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    folder = tmp_path / "test" / "hotdog"
    folder.mkdir(parents=True)
    for i, (w, h) in enumerate([(61, 45), (40, 70), (50, 50)]):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    recipe = Recipe(size=32)
    images = decode_folder(tmp_path / "test", recipe.resize_side, ("hotdog",))
    ours, _ = next(iter(BatchLoader(images, 3, recipe, train=False)))
    reference = torch.stack(
        [_torchvision_test_transform(recipe)(load_rgb(p)) for p in images.paths]
    )
    assert torch.allclose(ours, reference, atol=1e-5)


def test_random_crops_follow_random_resized_crop_distribution() -> None:
    """The boxes' area share and aspect ratio have torchvision's RandomResizedCrop distribution."""
    from torchvision import transforms

    recipe, photo = Recipe(size=32), (120, 90)
    generator = torch.Generator().manual_seed(0)
    boxes = random_crop_boxes(
        torch.tensor([photo] * 4000, dtype=torch.float32), 120, recipe, generator
    )
    w = (boxes[:, 2] - boxes[:, 0]) * photo[0] / 120
    h = (boxes[:, 3] - boxes[:, 1]) * photo[1] / 120
    ours_area, ours_ratio = (w * h / (photo[0] * photo[1])), w / h
    torch.manual_seed(0)
    picture = Image.new("RGB", photo)
    params = [
        transforms.RandomResizedCrop.get_params(picture, recipe.scale, recipe.ratio)
        for _ in range(4000)
    ]
    ref_h, ref_w = (
        torch.tensor([p[2] for p in params]).float(),
        torch.tensor([p[3] for p in params]).float(),
    )
    ref_area, ref_ratio = ref_w * ref_h / (photo[0] * photo[1]), ref_w / ref_h
    for ours, ref in ((ours_area, ref_area), (ours_ratio, ref_ratio)):
        assert ours.mean() == pytest.approx(ref.mean().item(), abs=0.03)
        assert torch.quantile(ours, 0.1) == pytest.approx(torch.quantile(ref, 0.1).item(), abs=0.04)
        assert torch.quantile(ours, 0.9) == pytest.approx(torch.quantile(ref, 0.9).item(), abs=0.04)
