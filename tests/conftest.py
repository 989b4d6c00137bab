"""Shared fixtures: one torch thread, a fixed seed, tiny image folders, a tiny workspace."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from http_server import Server, serve
from PIL import Image

from d2lhelpers.data import Recipe
from d2lhelpers.standin import (
    SOURCE_HOTDOG_CLASS,
    ImageSetSpec,
    SourceTraining,
    save_source_checkpoint,
    target_set,
    train_source_checkpoint,
)
from d2lhelpers.workspace import Workspace

Colors = dict[str, list[tuple[int, int, int]]]
# Not smaller: on CPUs with bf16, oneDNN's bf16 convolution sometimes returns non-finite weight
# gradients when ResNet-18's last block sees a 1x1 map (16 px inputs), which flakes tests.
TINY_SIZE = 32


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> Iterator[None]:
    """The tensors here are tiny; extra intra-op threads only add spin-waiting on busy CPUs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def image_tree(tmp_path: Path) -> Callable[..., Path]:
    """``image_tree({"hotdog": [(r, g, b), ...], ...})`` writes solid-colour PNGs.

    Files are ``<tmp>/<split>/<class>/<index>.png`` (24 x 20 px unless ``size`` says otherwise);
    the split folder is returned.
    """

    def make(colors: Colors, split: str = "train", size: tuple[int, int] = (24, 20)) -> Path:
        split_dir = tmp_path / split
        for name, rgbs in colors.items():
            folder = split_dir / name
            folder.mkdir(parents=True, exist_ok=True)
            for i, rgb in enumerate(rgbs):
                Image.new("RGB", size, rgb).save(folder / f"{i}.png")
        return split_dir

    return make


@pytest.fixture
def server() -> Iterator[Server]:
    """A scriptable HTTP server on 127.0.0.1 (see tests/http_server.py)."""
    with serve() as state:
        yield state


@pytest.fixture(scope="session")
def tiny_workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """A real stand-in workspace, miniature: 6 + 4 images per class, a 1-epoch source model."""
    folder = tmp_path_factory.mktemp("tiny-standin")
    root = target_set(folder, ImageSetSpec(6, 4, min_side=36, max_side=48), progress=False)
    checkpoint = train_source_checkpoint(
        folder,
        SourceTraining(image_size=TINY_SIZE, epochs=1, batch_size=16),
        ImageSetSpec(3, 1, min_side=36, max_side=44),
        progress=False,
    )
    save_source_checkpoint(checkpoint, folder / "standin-resnet18-tiny.pt")  # for the CLI's tests
    return Workspace(
        "standin", root, Recipe(TINY_SIZE), "tiny", SOURCE_HOTDOG_CLASS, None, checkpoint
    )
