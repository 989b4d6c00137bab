"""Tests for the procedural stand-in drawings."""

from __future__ import annotations

import numpy as np
import pytest

from d2lhelpers.standin_draw import (
    SOURCE_CLASSES,
    TARGET_BACKGROUNDS,
    TARGET_CLASSES,
    draw_source,
    draw_target,
)

SIZES = [(64, 64), (150, 90), (90, 130)]
ALL_LABELS = [("target", label) for label in TARGET_CLASSES] + [
    ("source", label) for label in SOURCE_CLASSES
]
DRAW = {"target": draw_target, "source": draw_source}


def _colour_means(seed: int, per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean RGB colour of ``per_class`` 64x64 target images per class, and their labels."""
    rng = np.random.default_rng(seed)
    feats, labels = [], []
    for _ in range(per_class):
        for index, label in enumerate(TARGET_CLASSES):
            img = np.asarray(draw_target(label, rng, (64, 64)), dtype=np.float64)
            feats.append(img.reshape(-1, 3).mean(axis=0))
            labels.append(index)
    return np.array(feats), np.array(labels)


def test_class_lists() -> None:
    assert TARGET_CLASSES == ("hotdog", "not-hotdog")
    assert "hotdog" in SOURCE_CLASSES
    assert len(SOURCE_CLASSES) >= 12
    assert len(set(SOURCE_CLASSES)) == len(SOURCE_CLASSES)


@pytest.mark.parametrize(("kind", "label"), ALL_LABELS)
def test_every_label_gives_rgb_image_of_requested_size(kind: str, label: str) -> None:
    rng = np.random.default_rng(0)
    for size in SIZES:
        for _ in range(3):
            img = DRAW[kind](label, rng, size)
            assert img.mode == "RGB"
            assert img.size == size


@pytest.mark.parametrize(("kind", "label"), ALL_LABELS)
def test_same_seed_same_image_different_seed_different_image(kind: str, label: str) -> None:
    draw = DRAW[kind]
    a = draw(label, np.random.default_rng(7), (96, 72)).tobytes()
    b = draw(label, np.random.default_rng(7), (96, 72)).tobytes()
    c = draw(label, np.random.default_rng(8), (96, 72)).tobytes()
    assert a == b
    assert a != c


def test_large_non_square_image() -> None:
    img = draw_target("hotdog", np.random.default_rng(1), (600, 450))
    assert img.size == (600, 450)
    assert img.mode == "RGB"


@pytest.mark.parametrize("draw", [draw_target, draw_source])
def test_unknown_label_lists_valid_labels(draw) -> None:
    with pytest.raises(ValueError, match="hotdog") as info:
        draw("cat", np.random.default_rng(0), (64, 64))
    assert "cat" in str(info.value)
    if draw is draw_source:
        assert all(label in str(info.value) for label in SOURCE_CLASSES)
    else:
        assert "not-hotdog" in str(info.value)


def test_target_classes_not_separable_by_mean_colour() -> None:
    train_x, train_y = _colour_means(seed=100, per_class=200)
    test_x, test_y = _colour_means(seed=200, per_class=200)
    centres = np.stack([train_x[train_y == c].mean(axis=0) for c in range(len(TARGET_CLASSES))])
    dist = ((test_x[:, None, :] - centres[None, :, :]) ** 2).sum(axis=-1)
    accuracy = float((dist.argmin(axis=1) == test_y).mean())
    assert accuracy < 0.75, f"nearest-class-mean colour accuracy {accuracy:.3f}"


def _edge_energy(img) -> float:
    """Mean absolute difference between neighbouring pixels (how fine and contrasted the image
    is), in the outer fifth of each side, where the backdrop shows around the centred food."""
    a = np.asarray(img, dtype=np.float64)
    h, w = a.shape[:2]
    band = np.ones((h, w), dtype=bool)
    band[h // 5 : h - h // 5, w // 5 : w - w // 5] = False
    dx = np.abs(np.diff(a, axis=1)).sum(-1)[band[:, 1:]]
    dy = np.abs(np.diff(a, axis=0)).sum(-1)[band[1:, :]]
    return float(np.concatenate([dx, dy]).mean())


def test_the_texture_backdrop_is_finer_and_more_contrasted_than_every_table() -> None:
    """The shifted set's stated difference: around the same foods, its backdrop has about twice
    the neighbouring-pixel contrast of the training scenes' (medians 44 and 21 per pixel)."""
    energy = {
        background: [
            _edge_energy(draw_target(label, np.random.default_rng([3, i]), (96, 96), background))
            for i in range(40)
            for label in TARGET_CLASSES
        ]
        for background in ("table", "texture")
    }
    table, texture = (np.median(energy[b]) for b in ("table", "texture"))
    assert texture > 1.8 * table, (table, texture)
    assert np.percentile(energy["texture"], 25) > np.percentile(energy["table"], 60)


def test_the_default_backdrop_is_the_table() -> None:
    a = draw_target("hotdog", np.random.default_rng(4), (64, 64)).tobytes()
    assert a == draw_target("hotdog", np.random.default_rng(4), (64, 64), "table").tobytes()
    assert a != draw_target("hotdog", np.random.default_rng(4), (64, 64), "texture").tobytes()


def test_an_unknown_backdrop_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"'grass'.*table, texture"):
        draw_target("hotdog", np.random.default_rng(0), (64, 64), "grass")
    assert tuple(TARGET_BACKGROUNDS) == ("table", "texture")
