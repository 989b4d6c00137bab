"""Checkpoints: plain data that ``weights_only`` loads, the same predictions in a fresh process,
atomic writes, and a clear error naming the file for every way a file can be wrong."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models import resnet18

import d2lhelpers
from d2lhelpers.checkpoint import (
    FORMAT,
    CheckpointError,
    load_model,
    recipe_from_metadata,
    save_model,
)
from d2lhelpers.data import HOTDOG_CLASSES, Recipe
from d2lhelpers.models import freeze_batchnorm

ROOT = Path(__file__).resolve().parent.parent
RECIPE = Recipe(32)
PLAIN = (dict, list, str, int, float, bool, type(None), torch.Tensor)


def trained_net() -> nn.Module:
    """A ResNet-18 of two classes whose BatchNorm statistics and head are not the initial ones."""
    torch.manual_seed(0)
    net = resnet18(num_classes=2)
    with torch.no_grad():
        net(torch.randn(4, 3, 32, 32) * 3 + 1)  # training mode: running statistics move
        net.fc.bias.copy_(torch.tensor([0.5, -0.5]))
    return net.eval()


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[nn.Module, Path]:
    net = trained_net()
    path = tmp_path_factory.mktemp("checkpoint") / "hotdog.pt"
    returned = save_model(
        net, path, classes=HOTDOG_CLASSES, recipe=RECIPE, source_model="imagenet-resnet18",
        test_acc=0.9375, extra={"epochs": 5, "lr": 6.4e-3, "notes": ["fine-tuned", None]},
    )  # fmt: skip
    assert returned == path
    return net, path


@pytest.fixture(scope="module")
def payload(saved: tuple[nn.Module, Path]) -> dict:
    return torch.load(saved[1], weights_only=True)


def only_plain(value: object) -> bool:
    if isinstance(value, dict):
        return all(type(k) is str and only_plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(only_plain(v) for v in value)
    return type(value) in PLAIN


def test_checkpoint_holds_plain_data_and_metadata(
    saved: tuple[nn.Module, Path], payload: dict
) -> None:
    net, _ = saved
    assert set(payload) == {"format", "state_dict", "metadata"} and payload["format"] == FORMAT
    assert only_plain(payload)  # exact types: no tuple, no TorchVersion, no OrderedDict
    meta = payload["metadata"]
    assert meta["classes"] == ["hotdog", "not-hotdog"] and meta["num_classes"] == 2
    assert meta["architecture"] == "resnet18" and meta["source_model"] == "imagenet-resnet18"
    assert meta["test_acc"] == 0.9375
    assert meta["recipe"]["size"] == 32 and meta["recipe"]["mean"] == list(RECIPE.mean)
    assert recipe_from_metadata(meta) == RECIPE
    assert meta["versions"] == {
        "torch": str(torch.__version__),
        "torchvision": str(torchvision.__version__),
        "d2lhelpers": d2lhelpers.__version__,
    }
    assert meta["saved_at"].endswith("+00:00")
    assert meta["extra"] == {"epochs": 5, "lr": 6.4e-3, "notes": ["fine-tuned", None]}
    state = net.state_dict()
    assert list(payload["state_dict"]) == list(state)
    assert all(torch.equal(payload["state_dict"][k], v) for k, v in state.items())


def test_a_fresh_process_predicts_exactly_the_same(
    saved: tuple[nn.Module, Path], tmp_path: Path
) -> None:
    net, path = saved
    torch.manual_seed(1)
    x = torch.randn(3, 3, 32, 32)
    torch.save(x, tmp_path / "x.pt")
    with torch.inference_mode():
        expected = net(x)
    code = textwrap.dedent(
        f"""
        import torch
        from d2lhelpers.checkpoint import load_model
        torch.set_num_threads(1)  # as the tests run
        net, meta = load_model({str(path)!r})
        assert not net.training
        x = torch.load({str(tmp_path / "x.pt")!r}, weights_only=True)
        with torch.inference_mode():
            torch.save(net(x), {str(tmp_path / "y.pt")!r})
        print(meta["classes"], meta["test_acc"])
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['hotdog', 'not-hotdog'] 0.9375"
    got = torch.load(tmp_path / "y.pt", weights_only=True)
    assert torch.equal(got, expected)
    assert not torch.equal(expected, resnet18(num_classes=2).eval()(x).detach())  # it can fail


def test_load_model_in_process(saved: tuple[nn.Module, Path]) -> None:
    net, path = saved
    loaded, meta = load_model(path, num_classes=2)
    assert not loaded.training and next(loaded.parameters()).device.type == "cpu"
    assert meta["num_classes"] == 2
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        assert torch.equal(loaded(x), net(x))


def test_a_net_with_frozen_batchnorm_loads_as_a_plain_resnet(tmp_path: Path) -> None:
    frozen = freeze_batchnorm(trained_net())
    path = save_model(
        frozen, tmp_path / "frozen.pt", classes=HOTDOG_CLASSES, recipe=RECIPE,
        source_model="stand-in", test_acc=None,
    )  # fmt: skip
    loaded, _ = load_model(path)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(loaded(x), frozen.eval()(x), atol=1e-5)


def test_save_is_atomic(
    saved: tuple[nn.Module, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    net, _ = saved
    path = tmp_path / "model.pt"
    path.write_bytes(b"the previous model")

    def broken_save(obj: object, f: object) -> None:
        f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_model(
            net, path, classes=HOTDOG_CLASSES, recipe=RECIPE, source_model="x", test_acc=None
        )
    assert path.read_bytes() == b"the previous model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt", "model.pt.lock"]


def test_a_save_removes_the_temporaries_of_killed_saves_and_survives_a_full_disk(
    saved: tuple[nn.Module, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    net, _ = saved
    path = tmp_path / "model.pt"
    killed = [tmp_path / f"model.pt.{tag}.tmp" for tag in ("x1y2z3", "a9b8c7")]
    for leftover in killed:
        leftover.write_bytes(b"40 MB of a model, once")
    common = {"classes": HOTDOG_CLASSES, "recipe": RECIPE, "source_model": "x", "test_acc": None}
    save_model(net, path, **common)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt", "model.pt.lock"]
    assert load_model(path)[1]["source_model"] == "x"
    real_save = torch.save

    def full_disk(obj: object, f) -> None:
        try:
            real_save(obj, f)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError:
            raise RuntimeError("PytorchStreamWriter failed writing file data/0") from None

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match=r"model\.pt: it needs about 4[0-9.]+ MiB, and"):
        save_model(net, path, **{**common, "source_model": "y"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt", "model.pt.lock"]
    assert load_model(path)[1]["source_model"] == "x"  # the previous model, whole


def test_save_refuses_what_it_cannot_load(saved: tuple[nn.Module, Path], tmp_path: Path) -> None:
    net, _ = saved
    path = tmp_path / "m.pt"
    common = {"recipe": RECIPE, "source_model": "x"}
    with pytest.raises(ValueError, match=r"not a resnet18 with 3 outputs.*wrong shape keys: fc"):
        save_model(net, path, classes=("a", "b", "c"), test_acc=None, **common)
    with pytest.raises(ValueError, match=r"missing keys: conv1\.weight"):
        save_model(nn.Linear(2, 2), path, classes=HOTDOG_CLASSES, test_acc=None, **common)
    with pytest.raises(ValueError, match=r"extra\['when'\] holds a Recipe"):
        save_model(
            net, path, classes=HOTDOG_CLASSES, test_acc=0.5, extra={"when": RECIPE}, **common
        )
    for bad in (1.5, float("nan"), "0.9", True):
        with pytest.raises(ValueError, match="test_acc must be a number in"):
            save_model(net, path, classes=HOTDOG_CLASSES, test_acc=bad, **common)
    assert not path.exists()
    nested = tmp_path / "new" / "folder" / "m.pt"
    assert save_model(net, nested, classes=HOTDOG_CLASSES, test_acc=None, **common) == nested
    assert load_model(nested)[1]["test_acc"] is None


def write(path: Path, obj: object) -> Path:
    torch.save(obj, path)
    return path


def tampered(payload: dict, **changes: object) -> dict:
    """A copy of ``payload`` with metadata entries and state-dict entries changed
    (``state=`` a function of the state dict)."""
    state = dict(payload["state_dict"])
    edit = changes.pop("state", None)
    if edit is not None:
        edit(state)
    meta = {**payload["metadata"], **changes}
    return {**payload, "state_dict": state, "metadata": meta}


def test_missing_file_folder_and_non_torch_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"nope\.pt: no such file"):
        load_model(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match="a folder, not a file"):
        load_model(tmp_path)
    for name, data in [("text.pt", b"hello"), ("empty.pt", b""), ("photo.jpg", b"\xff\xd8\xff")]:
        (tmp_path / name).write_bytes(data)
        with pytest.raises(
            CheckpointError, match=rf"{name} is not a d2lhelpers checkpoint .*: torch\.save did"
        ):
            load_model(tmp_path / name)


class RunsCode:
    """A pickle that would run a command when loaded without weights_only."""

    def __reduce__(self) -> tuple:
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize(
    "obj", [{"format": FORMAT, "recipe": RECIPE}, {"x": RunsCode()}], ids=["object", "command"]
)
def test_code_in_a_pickle_is_refused_without_advising_to_load_it_unsafely(
    tmp_path: Path, obj: object
) -> None:
    path = write(tmp_path / "object.pt", obj)
    with pytest.raises(CheckpointError, match=r"object\.pt is not .*could run code") as caught:
        load_model(path)
    assert "weights_only=False" not in str(caught.value)
    assert "`weights_only` set to `False`" not in str(caught.value)


def test_plain_state_dict_and_other_formats(tmp_path: Path, payload: dict) -> None:
    plain = write(tmp_path / "plain.pt", payload["state_dict"])
    with pytest.raises(CheckpointError, match=r"plain\.pt is a plain state_dict without metadata"):
        load_model(plain)
    other = write(tmp_path / "other.pt", {**payload, "format": "d2lhelpers-finetuned/9"})
    with pytest.raises(CheckpointError, match=r"other\.pt has format 'd2lhelpers-finetuned/9'"):
        load_model(other)
    for name, obj in [("list.pt", [1, 2]), ("dict.pt", {"epoch": 3})]:
        with pytest.raises(CheckpointError, match=rf"{name} (holds a list|is not a d2lhelpers)"):
            load_model(write(tmp_path / name, obj))
    no_meta = write(tmp_path / "no-meta.pt", {"format": FORMAT, "state_dict": {}})
    with pytest.raises(CheckpointError, match="lacks its 'state_dict' or 'metadata'"):
        load_model(no_meta)


def test_number_of_classes_must_agree(tmp_path: Path, payload: dict) -> None:
    three = tampered(payload, num_classes=3, classes=["a", "b", "c"])
    with pytest.raises(CheckpointError, match=r"three\.pt: its output layer has 2 classes but "):
        load_model(write(tmp_path / "three.pt", three))
    odd = tampered(payload, num_classes=3)
    with pytest.raises(CheckpointError, match="num_classes 3 does not match classes"):
        load_model(write(tmp_path / "odd.pt", odd))
    with pytest.raises(CheckpointError, match=r"good\.pt is a model of 2 classes .*, not 5"):
        load_model(write(tmp_path / "good.pt", payload), num_classes=5)
    other = tampered(payload, architecture="mobilenet_v3_small")
    with pytest.raises(CheckpointError, match="'mobilenet_v3_small'; only resnet18"):
        load_model(write(tmp_path / "arch.pt", other))


# Every way the metadata can be tampered with: (change, what the error names)
TAMPERED_METADATA = {
    "no-recipe": ({"recipe": None}, "has no recipe"),
    "recipe-unknown-key": ({"recipe": {**vars(RECIPE), "colour": 1}}, "recipe is not valid"),
    "size-as-text": ({"recipe": {**vars(RECIPE), "size": "32"}}, "Recipe.size"),
    "size-too-small": ({"recipe": {**vars(RECIPE), "size": 4}}, "Recipe.size"),
    "size-4096": ({"recipe": {**vars(RECIPE), "size": 4096}}, "crop size 4096"),
    "size-10**7": ({"recipe": {**vars(RECIPE), "size": 10**7}}, "crop size 10000000"),
    "resize-ratio-huge": ({"recipe": {**vars(RECIPE), "resize_ratio": 1e6}}, "resized to"),
    "mean-as-text": ({"recipe": {**vars(RECIPE), "mean": ["a", "b", "c"]}}, "Recipe.mean"),
    "std-nan": ({"recipe": {**vars(RECIPE), "std": [float("nan")] * 3}}, "Recipe.std"),
    "classes-not-str": ({"classes": [1, 2]}, "not a list of names"),
    "classes-a-str": ({"classes": "ab"}, "not a list of names"),
    "num-classes-bool": ({"num_classes": True, "classes": ["a"]}, "num_classes True"),
    "source-not-str": ({"source_model": 3}, "source_model"),
    "test-acc-2": ({"test_acc": 2.0}, "test_acc"),
}


@pytest.mark.parametrize("case", sorted(TAMPERED_METADATA))
def test_tampered_metadata_is_refused_at_load_naming_the_file(
    case: str, tmp_path: Path, payload: dict
) -> None:
    change, named = TAMPERED_METADATA[case]
    path = write(tmp_path / "tampered.pt", tampered(payload, **change))
    with pytest.raises(CheckpointError, match=r"tampered\.pt") as caught:
        load_model(path)
    assert named in str(caught.value)


def test_missing_metadata_entries_are_named(tmp_path: Path, payload: dict) -> None:
    bare = {**payload, "metadata": {"classes": list(HOTDOG_CLASSES)}}
    with pytest.raises(CheckpointError, match=r"bare\.pt: its metadata lacks recipe, architec"):
        load_model(write(tmp_path / "bare.pt", bare))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_weights_are_refused_at_load_and_at_save(
    bad: float, tmp_path: Path, payload: dict
) -> None:
    def spoil(state: dict) -> None:
        state["layer2.0.conv1.weight"] = state["layer2.0.conv1.weight"].clone()
        state["layer2.0.conv1.weight"][0, 0, 0, 0] = bad

    path = write(tmp_path / "spoilt.pt", tampered(payload, state=spoil))
    with pytest.raises(CheckpointError, match=r"spoilt\.pt: weights layer2\.0\.conv1\.weight"):
        load_model(path)
    net = trained_net()
    with torch.no_grad():
        net.layer2[0].conv1.weight[0, 0, 0, 0] = bad
    with pytest.raises(ValueError, match=r"layer2\.0\.conv1\.weight hold NaN or infinite"):
        save_model(
            net, tmp_path / "m.pt", classes=HOTDOG_CLASSES, recipe=RECIPE, source_model="x",
            test_acc=None,
        )  # fmt: skip
    assert not (tmp_path / "m.pt").exists()


def test_missing_unexpected_and_misshapen_keys(tmp_path: Path, payload: dict) -> None:
    missing = tampered(payload, state=lambda s: s.pop("layer4.1.bn2.weight"))
    with pytest.raises(CheckpointError, match=r"missing\.pt does not fit .*layer4\.1\.bn2\.weight"):
        load_model(write(tmp_path / "missing.pt", missing))
    extra = tampered(payload, state=lambda s: s.update({"fc2.weight": torch.zeros(2, 2)}))
    with pytest.raises(CheckpointError, match=r"unexpected keys: fc2\.weight"):
        load_model(write(tmp_path / "extra.pt", extra))
    shape = tampered(payload, state=lambda s: s.update({"conv1.weight": torch.zeros(64, 3, 3, 3)}))
    with pytest.raises(CheckpointError, match=r"wrong shape keys: conv1\.weight \(64, 3, 3, 3\)"):
        load_model(write(tmp_path / "shape.pt", shape))
    wrapped = tampered(
        payload, state=lambda s: s.update({f"module.{k}": s.pop(k) for k in list(s)})
    )
    with pytest.raises(CheckpointError, match=r"missing keys: conv1\.weight.* and \d+ more"):
        load_model(write(tmp_path / "wrapped.pt", wrapped))
