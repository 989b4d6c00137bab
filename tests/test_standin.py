"""The offline stand-in: drawing image sets to disk, and the stand-in source model's
checkpoint (trained, saved, loaded; the one shipped with the package matches the code)."""

from __future__ import annotations

import errno
import multiprocessing
import os
from pathlib import Path

import pytest
import torch
from PIL import Image

from d2lhelpers import fileutil, standin
from d2lhelpers.standin import (
    SOURCE_HOTDOG_CLASS,
    ImageSetSpec,
    SourceTraining,
    load_source_checkpoint,
    save_source_checkpoint,
    shifted_test_set,
    standin_resnet18,
    target_set,
    train_source_checkpoint,
    write_image_set,
)
from d2lhelpers.standin_draw import SOURCE_CLASSES, TARGET_CLASSES, draw_target

TINY = ImageSetSpec(train_per_class=3, test_per_class=2, min_side=20, max_side=36, seed=5)
TINY_SOURCE = ImageSetSpec(train_per_class=4, test_per_class=1, min_side=36, max_side=44)
TINY_TRAINING = SourceTraining(image_size=32, epochs=1, batch_size=16)


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.jpg"))}


def test_target_set_layout_counts_and_sizes(tmp_path: Path) -> None:
    root = target_set(tmp_path, TINY, progress=False)
    for split, count in (("train", 3), ("test", 2)):
        for name in TARGET_CLASSES:
            images = sorted((root / split / name).glob("*.jpg"))
            assert len(images) == count
            for path in images:
                with Image.open(path) as img:
                    assert img.mode == "RGB"
                    assert all(20 <= side <= 36 for side in img.size)


def test_same_spec_gives_identical_files(tmp_path: Path) -> None:
    a = write_image_set(tmp_path / "a", TARGET_CLASSES, draw_target, TINY, progress=False)
    b = write_image_set(tmp_path / "b", TARGET_CLASSES, draw_target, TINY, progress=False)
    assert files(a) == files(b)
    other = ImageSetSpec(**{**TINY.__dict__, "seed": 6})
    c = write_image_set(tmp_path / "c", TARGET_CLASSES, draw_target, other, progress=False)
    assert files(a).keys() == files(c).keys()
    assert files(a) != files(c)


def test_the_shifted_set_is_test_images_only_and_the_same_for_the_same_seed(
    tmp_path: Path,
) -> None:
    spec = ImageSetSpec(train_per_class=0, test_per_class=3, min_side=20, max_side=36, seed=7)
    a = shifted_test_set(tmp_path / "a", spec, progress=False)
    b = shifted_test_set(tmp_path / "b", spec, progress=False)
    assert files(a) == files(b)  # drawn alike from the same seed
    assert sorted(files(a)) == [f"test/{c}/{i:04d}.jpg" for c in TARGET_CLASSES for i in range(3)]
    assert not (a / "train").exists()
    other = shifted_test_set(tmp_path / "a", ImageSetSpec(**{**spec.__dict__, "seed": 8}), False)
    assert other != a and files(other) != files(a)
    regular = target_set(tmp_path / "a", ImageSetSpec(0, 3, 20, 36, seed=7), progress=False)
    assert regular != a  # a folder of its own beside the target set
    assert files(regular).keys() == files(a).keys() and files(regular) != files(a)


def test_failed_drawing_leaves_nothing(tmp_path: Path) -> None:
    calls = []

    def flaky(label, rng, size):
        calls.append(label)
        if len(calls) == 4:
            raise RuntimeError("boom")
        return draw_target(label, rng, size)

    with pytest.raises(RuntimeError, match="boom"):
        write_image_set(tmp_path / "set", TARGET_CLASSES, flaky, TINY, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_existing_set_is_reused_without_drawing(tmp_path: Path) -> None:
    root = target_set(tmp_path, TINY, progress=False)
    before = files(root)

    def refuse(*args):
        raise AssertionError("drew again")

    assert write_image_set(root, TARGET_CLASSES, refuse, TINY, progress=False) == root
    assert files(root) == before


def _build_target(folder: str) -> str:
    return str(target_set(Path(folder), TINY, progress=False))


def test_two_processes_building_at_once_agree(tmp_path: Path) -> None:
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        roots = pool.map(_build_target, [str(tmp_path)] * 2)
    assert roots[0] == roots[1]
    built = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert built == [Path(roots[0])]  # one complete set, no temporary folder left
    assert len(files(built[0])) == 2 * (3 + 2)


def test_a_trained_source_checkpoint_saves_in_half_precision_and_loads(tmp_path: Path) -> None:
    checkpoint = train_source_checkpoint(tmp_path, TINY_TRAINING, TINY_SOURCE, progress=False)
    assert checkpoint["classes"] == list(SOURCE_CLASSES)
    assert len(checkpoint["history"]["epochs"]) == 1
    assert checkpoint["history"]["status"] == "ok"
    assert checkpoint["settings"]["image_size"] == 32
    assert checkpoint["train_images"] == 4 * len(SOURCE_CLASSES)
    path = tmp_path / "model" / "source.pt"
    save_source_checkpoint(checkpoint, path)
    assert [p.name for p in path.parent.iterdir()] == ["source.pt"]  # no temporary file left
    saved = torch.load(path, weights_only=True)["state_dict"]
    assert saved["fc.weight"].dtype == torch.float16
    net = standin_resnet18(load_source_checkpoint(path, TINY_TRAINING, TINY_SOURCE))
    assert net.fc.out_features == len(SOURCE_CLASSES)
    for key, value in net.state_dict().items():
        expected = checkpoint["state_dict"][key]
        if expected.is_floating_point():
            assert value.dtype == torch.float32, key
            expected = expected.half().float()
        assert torch.equal(value, expected), key
    assert not net.training


def test_a_source_checkpoint_for_other_drawings_or_settings_is_refused(tmp_path: Path) -> None:
    checkpoint = train_source_checkpoint(tmp_path, TINY_TRAINING, TINY_SOURCE, progress=False)
    path = tmp_path / "source.pt"
    save_source_checkpoint(checkpoint, path)
    other = SourceTraining(image_size=32, epochs=2, batch_size=16)
    with pytest.raises(ValueError, match="make standin-model") as caught:
        load_source_checkpoint(path, other, TINY_SOURCE)
    assert str(path) in str(caught.value)
    with pytest.raises(FileNotFoundError, match="make standin-model"):
        load_source_checkpoint(tmp_path / "missing.pt", TINY_TRAINING, TINY_SOURCE)


def test_the_shipped_source_model_matches_the_code_and_learnt_its_set() -> None:
    """The model in d2lhelpers/modeldata was trained for today's drawings and settings (a
    change to either without `make standin-model` fails here), and well: it is the source of
    the chapter's lesson."""
    checkpoint = load_source_checkpoint()
    history = checkpoint["history"]
    assert history["status"] == "ok"
    assert len(history["epochs"]) == SourceTraining().epochs
    assert history["epochs"][-1]["test_acc"] > 0.6  # 18 classes: chance is 0.056
    assert checkpoint["build_seconds"] > 0 and checkpoint["built_on"]


def test_source_hotdog_class_is_the_hotdog_row() -> None:
    assert SOURCE_CLASSES[SOURCE_HOTDOG_CLASS] == "hotdog"


@pytest.mark.parametrize("error", [errno.ENOLCK, errno.EOPNOTSUPP])
def test_file_system_without_flock_still_builds(tmp_path: Path, monkeypatch, error: int) -> None:
    def flock(handle, operation) -> None:
        raise OSError(error, os.strerror(error))

    monkeypatch.setattr(fileutil.fcntl, "flock", flock)
    root = target_set(tmp_path, TINY, progress=False)
    assert len(files(root)) == 2 * (3 + 2)
    assert not any(p.name.endswith(".lock.d") for p in tmp_path.iterdir())  # released


def test_killed_runs_temporary_folders_are_removed(tmp_path: Path) -> None:
    root = tmp_path / "set"
    killed = tmp_path / ".set-k1ll3d"
    (killed / "train" / "hotdog").mkdir(parents=True)
    other = tmp_path / ".other-k1ll3d"  # another set's: not this lock's to remove
    other.mkdir()
    write_image_set(root, TARGET_CLASSES, draw_target, TINY, progress=False)
    assert not killed.exists() and other.exists()


def test_finished_set_is_reused_from_a_read_only_folder(tmp_path: Path, monkeypatch) -> None:
    root = target_set(tmp_path, TINY, progress=False)
    monkeypatch.setattr(standin, "exclusive", lambda path: pytest.fail("took a lock"))
    assert target_set(tmp_path, TINY, progress=False) == root


def test_the_source_optimizer_is_adamw_and_its_fused_kernel_updates_alike() -> None:
    torch.manual_seed(0)
    net = torch.nn.Linear(16, 4)
    twin = torch.nn.Linear(16, 4)
    twin.load_state_dict(net.state_dict())
    settings = SourceTraining()
    fused = standin._adamw(net, settings)
    plain = torch.optim.AdamW(
        twin.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay
    )
    assert isinstance(fused, torch.optim.AdamW)
    assert fused.defaults["lr"] == settings.learning_rate
    assert fused.defaults["weight_decay"] == settings.weight_decay
    x = torch.randn(8, 16)
    for _ in range(3):
        for model, optimizer in ((net, fused), (twin, plain)):
            optimizer.zero_grad()
            model(x).square().mean().backward()
            optimizer.step()
    for a, b in zip(net.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(a, b)
