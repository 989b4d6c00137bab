"""Choosing real data or the stand-in, and the real path end to end against a local server."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import zipfile
from pathlib import Path

import pytest
import torch
from http_server import Reply, Server
from PIL import Image
from torchvision.models import ResNet18_Weights, resnet18

from d2lhelpers import standin, workspace
from d2lhelpers.data import Recipe
from d2lhelpers.download import ChecksumError, extract_zip, sha1_of
from d2lhelpers.environment import HOTDOG_URL_ENV
from d2lhelpers.models import IMAGENET_HOTDOG_CLASS
from d2lhelpers.precision import choose_precision
from d2lhelpers.standin import ImageSetSpec, load_source_checkpoint
from d2lhelpers.standin_draw import SOURCE_CLASSES
from d2lhelpers.train import default_device
from d2lhelpers.workspace import Workspace, data_dir, hotdog_urls, prepare


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
    train_iter, test_iter = ws.data().loaders(batch_size=4)
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


def test_workspace_data_uses_its_cache_folder_and_is_decoded_once(
    tiny_workspace: Workspace, tmp_path: Path
) -> None:
    ws = dataclasses.replace(tiny_workspace, cache_dir=tmp_path / "cache", _data=None)
    data = ws.data()
    assert len(data.train) == 12 and len(data.held_out) == 8
    assert len(list((tmp_path / "cache").glob("*.u8"))) == 2
    assert ws.data() is data


def test_the_standin_draws_its_shifted_test_set_on_first_use(
    tiny_workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tiny = ImageSetSpec(train_per_class=0, test_per_class=3, min_side=36, max_side=48, seed=7)
    drawn = []

    def shifted_test_set(folder: Path, progress: bool) -> Path:
        drawn.append(folder)
        return standin.shifted_test_set(folder, tiny, progress)

    monkeypatch.setattr(workspace, "shifted_test_set", shifted_test_set)
    ws = dataclasses.replace(tiny_workspace, cache_dir=tmp_path / "cache", _data=None)
    assert ws.shifted_test_images() is None  # a folder of one's own: no shifted set
    ws.shifted_folder = tmp_path / "data"
    shifted = ws.shifted_test_images()
    assert drawn == [tmp_path / "data"]
    assert shifted.classes == ws.data().held_out.classes
    assert shifted.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert shifted.pixels.shape[-1] == ws.recipe.resize_side  # decoded as the test images are
    assert not torch.equal(shifted.pixels[:3], ws.data().held_out.pixels[:3])


def test_prepare_gives_the_standin_a_shifted_set_and_the_real_data_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(workspace, "target_set", lambda folder, progress: folder / "target")
    monkeypatch.setattr(workspace, "load_source_checkpoint", load_source_checkpoint)
    assert prepare("standin", tmp_path, progress=False).shifted_folder == tmp_path
    assert workspace._real_workspace(tmp_path).shifted_test_images() is None


# --------------------------------------------------------------------------------------------
# Behind a firewall: mirrors, and a zip put in the data folder by hand
# --------------------------------------------------------------------------------------------


@pytest.fixture
def official(server: Server, monkeypatch: pytest.MonkeyPatch) -> bytes:
    """The official URL points at the local server, which has no file there (404); the zip's
    SHA-1 is that of the returned body, which the mirrors may serve."""
    body = hotdog_zip()
    monkeypatch.setattr(workspace, "HOTDOG_URL", server.url("/official/hotdog.zip"))
    monkeypatch.setattr(workspace, "HOTDOG_SHA1", hashlib.sha1(body).hexdigest())
    monkeypatch.delenv(HOTDOG_URL_ENV, raising=False)
    return body


def test_hotdog_urls_put_the_mirrors_first_in_order(
    official: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert hotdog_urls() == [workspace.HOTDOG_URL]
    monkeypatch.setenv(HOTDOG_URL_ENV, "  https://a.example/h.zip\thttp://b.example/h.zip ")
    assert hotdog_urls() == [
        "https://a.example/h.zip",
        "http://b.example/h.zip",
        workspace.HOTDOG_URL,
    ]
    monkeypatch.setenv(HOTDOG_URL_ENV, workspace.HOTDOG_URL)
    assert hotdog_urls() == [workspace.HOTDOG_URL]


@pytest.mark.parametrize("value", ["ftp://a.example/hotdog.zip", "/home/me/hotdog.zip"])
def test_a_mirror_that_is_not_a_url_names_the_variable(
    official: bytes, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str
) -> None:
    monkeypatch.setenv(HOTDOG_URL_ENV, value)
    with pytest.raises(ValueError, match=HOTDOG_URL_ENV) as info:
        prepare("real", tmp_path, progress=False)
    assert value in str(info.value)


def test_the_mirror_is_used(
    tmp_path: Path, server: Server, official: bytes, imagenet_checkpoint: dict, monkeypatch
) -> None:
    server.routes["/gone/hotdog.zip"] = [Reply(404, b"gone")]
    server.routes["/mirror/hotdog.zip"] = [Reply(200, official)]
    mirrors = f"{server.url('/gone/hotdog.zip')} {server.url('/mirror/hotdog.zip')}"
    monkeypatch.setenv(HOTDOG_URL_ENV, mirrors)
    with pytest.warns(UserWarning, match="/gone/hotdog.zip"):
        ws = prepare("real", tmp_path, progress=False)
    assert ws.kind == "real" and ws.root == tmp_path / "hotdog"
    assert sha1_of(tmp_path / "hotdog.zip") == workspace.HOTDOG_SHA1
    assert server.hits["/mirror/hotdog.zip"] == 1
    assert server.hits["/official/hotdog.zip"] == 0


def test_a_mirror_serving_other_bytes_is_refused(
    tmp_path: Path, server: Server, official: bytes, imagenet_checkpoint: dict, monkeypatch
) -> None:
    server.routes["/mirror/hotdog.zip"] = [Reply(200, hotdog_zip(per_class=3))]
    monkeypatch.setenv(HOTDOG_URL_ENV, server.url("/mirror/hotdog.zip"))
    monkeypatch.setattr(workspace, "_prepare_standin", lambda *a: pytest.fail("fell back"))
    with pytest.warns(UserWarning), pytest.raises(ChecksumError) as info:
        prepare("real", tmp_path / "data", progress=False)
    message = str(info.value)
    for part in (server.url("/mirror/hotdog.zip"), "SHA-1 mismatch", HOTDOG_URL_ENV, "404"):
        assert part in message
    assert [p.name for p in (tmp_path / "data").iterdir() if p.suffix != ".lock"] == []


@pytest.mark.parametrize("kind", ["auto", "real"])
def test_a_zip_placed_by_hand_is_used_offline(
    tmp_path: Path, official: bytes, imagenet_checkpoint: dict, monkeypatch, kind: str
) -> None:
    (tmp_path / "hotdog.zip").write_bytes(official)
    monkeypatch.setattr(workspace, "_reachable", lambda url: pytest.fail(f"asked {url}"))
    monkeypatch.setattr(workspace, "download", lambda *a, **k: pytest.fail("downloaded"))
    ws = prepare(kind, tmp_path, progress=False)
    assert ws.kind == "real" and ws.root == tmp_path / "hotdog"
    assert sorted(p.name for p in (ws.root / "train").iterdir()) == ["hotdog", "not-hotdog"]


@pytest.mark.parametrize("kind", ["auto", "real"])
def test_a_bad_zip_placed_by_hand_is_an_error_saying_what_to_do(
    tmp_path: Path, server: Server, official: bytes, monkeypatch, kind: str
) -> None:
    placed = tmp_path / "hotdog.zip"
    placed.write_bytes(official[: len(official) // 2])  # an interrupted copy
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no weights either
    monkeypatch.setattr(workspace, "_reachable", lambda url: False)
    monkeypatch.setattr(workspace, "_prepare_standin", lambda *a: pytest.fail("fell back"))
    with pytest.raises(ChecksumError) as info:
        prepare(kind, tmp_path, progress=False)
    message = str(info.value)
    for part in (str(placed), sha1_of(placed), workspace.HOTDOG_SHA1, "Delete it"):
        assert part in message
    for part in (workspace.HOTDOG_URL, HOTDOG_URL_ENV, "D2LHELPERS_DATA_SOURCE=standin"):
        assert part in message
    assert placed.read_bytes() == official[: len(official) // 2]  # left as it is
    assert not (tmp_path / "hotdog").exists()
    assert sum(server.hits.values()) == 0


def test_the_standin_records_how_long_its_source_model_took_and_where(tiny_workspace) -> None:
    seconds, machine = tiny_workspace.source_build()
    assert seconds > 0
    assert machine.startswith(("CPU ", "GPU "))
    assert machine.endswith(choose_precision(default_device()).name)
    real = Workspace("real", tiny_workspace.root, Recipe(224), "ImageNet", 934)
    assert real.source_build() is None


def test_source_set_size_counts_the_stand_in_source_set(tiny_workspace: Workspace) -> None:
    classes, images = tiny_workspace.source_set_size()
    assert classes == len(SOURCE_CLASSES)
    assert images == classes * 3  # the tiny source set: 3 training images per class


def test_source_set_size_of_the_imagenet_model() -> None:
    ws = Workspace("real", Path("."), Recipe(224), "ImageNet", IMAGENET_HOTDOG_CLASS)
    assert ws.source_set_size() == (1000, 1_281_167)


def test_source_history_is_the_stand_in_source_models_training(tiny_workspace) -> None:
    history = tiny_workspace.source_history()
    assert history.status == "ok" and len(history.epochs) == 1
    assert 0 <= history.final.held_out_acc <= 1
    real = Workspace("real", tiny_workspace.root, Recipe(224), "ImageNet", 934)
    assert real.source_history() is None
