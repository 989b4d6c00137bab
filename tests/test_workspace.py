"""Choosing real data or the stand-in, and the real path end to end against a local server."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest
import torch
from http_server import Reply, Server
from PIL import Image
from torchvision.models import ResNet18_Weights, resnet18

from d2lhelpers import workspace
from d2lhelpers.download import ChecksumError, extract_zip
from d2lhelpers.models import IMAGENET_HOTDOG_CLASS
from d2lhelpers.workspace import Workspace, data_dir, prepare


def hotdog_zip(per_class: int = 2) -> bytes:
    """A miniature hot dog zip with the real archive's layout."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for split in ("train", "test"):
            for label, color in (("hotdog", (200, 60, 40)), ("not-hotdog", (40, 160, 60))):
                for i in range(per_class):
                    img = io.BytesIO()
                    Image.new("RGB", (40 + i, 30), color).save(img, "JPEG")
                    zf.writestr(f"hotdog/{split}/{label}/{i}.jpg", img.getvalue())
    return buffer.getvalue()


@pytest.fixture
def imagenet_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Stands a random ResNet-18 state dict where torchvision caches the ImageNet weights."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    state = resnet18().state_dict()
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(state, folder / Path(ResNet18_Weights.IMAGENET1K_V1.url).name)
    return state


@pytest.fixture
def real_server(server: Server, monkeypatch: pytest.MonkeyPatch) -> bytes:
    body = hotdog_zip()
    server.routes["/hotdog.zip"] = [Reply(200, body)]
    monkeypatch.setattr(workspace, "HOTDOG_URL", server.url("/hotdog.zip"))
    monkeypatch.setattr(workspace, "HOTDOG_SHA1", hashlib.sha1(body).hexdigest())
    return body


def test_unknown_kind_lists_the_choices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="auto, real, standin"):
        prepare("imagenet", tmp_path)
    monkeypatch.setenv("D2LHELPERS_DATA_SOURCE", "offline")
    with pytest.raises(ValueError, match="D2LHELPERS_DATA_SOURCE"):
        prepare(None, tmp_path)


def test_data_dir_argument_then_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("D2LHELPERS_DATA", str(tmp_path / "env"))
    assert data_dir() == tmp_path / "env"
    assert data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert (tmp_path / "arg").is_dir()


@pytest.mark.parametrize(("available", "expected"), [(True, "real"), (False, "standin")])
def test_auto_chooses_by_availability(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, available: bool, expected: str
) -> None:
    monkeypatch.delenv("D2LHELPERS_DATA_SOURCE", raising=False)
    monkeypatch.setattr(workspace, "real_available", lambda folder: available)
    monkeypatch.setattr(workspace, "_prepare_real", lambda folder, progress: "real")
    monkeypatch.setattr(workspace, "_prepare_standin", lambda folder, progress: "standin")
    assert prepare(data_dir_path=tmp_path) == expected


def test_environment_forces_the_standin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("D2LHELPERS_DATA_SOURCE", "standin")
    monkeypatch.setattr(workspace, "real_available", lambda folder: pytest.fail("probed network"))
    monkeypatch.setattr(workspace, "_prepare_standin", lambda folder, progress: "standin")
    assert prepare(data_dir_path=tmp_path) == "standin"


def test_real_available_offline_when_everything_is_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, imagenet_checkpoint: dict
) -> None:
    monkeypatch.setattr(workspace, "_reachable", lambda url: pytest.fail(f"asked {url}"))
    archive = tmp_path / "zips" / "hotdog.zip"
    archive.parent.mkdir()
    archive.write_bytes(hotdog_zip())
    extract_zip(archive, tmp_path, "hotdog")  # extracted, then the zip is gone
    assert workspace.real_available(tmp_path)


def test_real_available_does_not_trust_an_unverified_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, imagenet_checkpoint: dict
) -> None:
    monkeypatch.setattr(workspace, "_reachable", lambda url: False)
    (tmp_path / "hotdog" / "train").mkdir(parents=True)  # half extracted, no manifest
    assert not workspace.real_available(tmp_path)


def test_real_path_uses_a_verified_folder_without_its_zip_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, imagenet_checkpoint: dict
) -> None:
    archive = tmp_path / "zips" / "hotdog.zip"
    archive.parent.mkdir()
    archive.write_bytes(hotdog_zip())
    data = tmp_path / "data"
    extract_zip(archive, data, "hotdog")
    archive.unlink()  # deleted to save space, or never copied to a read-only mount
    monkeypatch.setattr(workspace, "download", lambda *a, **k: pytest.fail("downloaded"))
    monkeypatch.setattr(workspace, "_reachable", lambda url: pytest.fail(f"asked {url}"))
    for kind in ("real", "auto"):
        ws = prepare(kind, data, progress=False)
        assert ws.kind == "real" and ws.root == data / "hotdog"


def test_real_unavailable_when_servers_do_not_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(workspace, "_reachable", lambda url: False)
    assert not workspace.real_available(tmp_path)


def test_real_path_downloads_extracts_and_loads_imagenet_weights(
    tmp_path: Path, real_server: bytes, imagenet_checkpoint: dict
) -> None:
    ws = prepare("real", tmp_path / "data", progress=False)
    assert isinstance(ws, Workspace)
    assert ws.kind == "real"
    assert ws.recipe.size == 224
    assert ws.source_hotdog_class == IMAGENET_HOTDOG_CLASS
    assert sorted(p.name for p in ws.root.iterdir() if p.name[0] != ".") == ["test", "train"]
    net = ws.source_model()
    assert net.fc.out_features == 1000
    for key, value in net.state_dict().items():
        assert torch.equal(value, imagenet_checkpoint[key]), key
    train_iter, test_iter = ws.loaders(batch_size=4)
    x, labels = next(iter(train_iter))
    assert x.shape == (4, 3, 224, 224)
    assert set(labels.tolist()) <= {0, 1}
    assert sum(len(y) for _, y in test_iter) == 4


def test_real_path_checksum_mismatch_is_an_error_not_a_fallback(
    tmp_path: Path, real_server: bytes, imagenet_checkpoint: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(workspace, "HOTDOG_SHA1", "0" * 40)
    monkeypatch.setattr(workspace, "real_available", lambda folder: True)
    monkeypatch.setattr(workspace, "_prepare_standin", lambda *a: pytest.fail("fell back"))
    with pytest.raises(ChecksumError, match="0" * 40):
        prepare("auto", tmp_path, progress=False)
    assert not (tmp_path / "hotdog.zip").exists()
    assert not (tmp_path / "hotdog").exists()


def test_read_only_home_is_a_clear_error_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.write_text("not a folder: nothing can be created below it, even by root")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("D2LHELPERS_DATA", raising=False)
    with pytest.raises(PermissionError, match="D2LHELPERS_DATA") as info:
        prepare("standin")
    assert str(home / ".cache" / "d2lhelpers") in str(info.value)


def test_workspace_loaders_take_a_cache_folder(tiny_workspace: Workspace, tmp_path: Path) -> None:
    train, test = tiny_workspace.loaders(batch_size=4, cache_dir=tmp_path / "cache")
    assert len(train.images) == 12 and len(test.images) == 8
    assert len(list((tmp_path / "cache").glob("*.u8"))) == 2
