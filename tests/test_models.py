"""Tests for d2lhelpers.models: finding and replacing the head, parameter groups, freezing."""

from __future__ import annotations

import math
import re
import urllib.error

import pytest
import torch
from torch import nn
from torchvision import models as tvm
from torchvision.models.convnext import CNBlockConfig, ConvNeXt
from torchvision.ops import FrozenBatchNorm2d

from d2lhelpers.models import (
    HEAD_ATTRIBUTES,
    IMAGENET_WEIGHTS,
    WeightsError,
    copy_class_row,
    find_head,
    freeze_body,
    imagenet_resnet18,
    imagenet_weights_path,
    make_target_model,
)


class Tiny(nn.Module):
    """A small CNN with BatchNorm in the body and an ``fc`` head (like a ResNet)."""

    def __init__(self, num_classes: int = 10, width: int = 6) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.Sequential(nn.Conv2d(4, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x))


class NoHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Conv2d(3, 4, 1)
        self.classifier = nn.Sequential(nn.Conv2d(4, 2, 1), nn.Flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def trained_tiny(num_classes: int = 10) -> Tiny:
    """A Tiny model whose BatchNorm statistics and affine parameters are not the defaults."""
    net = Tiny(num_classes)
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(8, 3, 12, 12) * 3 + 1)
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return net


def tiny_vit() -> nn.Module:
    return tvm.VisionTransformer(
        image_size=32, patch_size=16, num_layers=1, num_heads=2, hidden_dim=16, mlp_dim=32
    )


def tiny_convnext() -> nn.Module:
    return ConvNeXt([CNBlockConfig(8, 16, 1), CNBlockConfig(16, None, 1)])


def body_state(net: nn.Module, head_path: str) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in net.state_dict().items() if not k.startswith(head_path + ".")}


# --------------------------------------------------------------------------------------------
# find_head
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "path"),
    [
        (lambda: tvm.resnet18(weights=None), "fc"),
        (lambda: tvm.mobilenet_v3_small(weights=None), "classifier.3"),
        (lambda: tvm.efficientnet_b0(weights=None), "classifier.1"),
        (lambda: tvm.convnext_tiny(weights=None), "classifier.2"),
        (lambda: tvm.vit_b_16(weights=None), "heads.head"),
        (tiny_convnext, "classifier.2"),
        (tiny_vit, "heads.head"),
        (Tiny, "fc"),
    ],
    ids=[
        "resnet18",
        "mobilenet_v3_small",
        "efficientnet_b0",
        "convnext_tiny",
        "vit_b_16",
        "small_convnext",
        "small_vit",
        "tiny",
    ],
)
def test_find_head_paths(build, path: str) -> None:
    net = build()
    head = find_head(net)
    assert head.layer is net.get_submodule(path)
    assert isinstance(head.layer, nn.Linear)
    assert getattr(head.parent, head.name) is head.layer


def test_find_head_without_linear_head_names_class_and_attributes() -> None:
    with pytest.raises(ValueError, match="NoHead") as info:
        find_head(NoHead())
    for attr in HEAD_ATTRIBUTES:
        assert re.search(rf"\b{attr}\b", str(info.value))


# --------------------------------------------------------------------------------------------
# make_target_model
# --------------------------------------------------------------------------------------------


def test_make_target_model_new_head() -> None:
    source = tvm.resnet18(weights=None)
    target = make_target_model(source, 2)
    head = target.fc
    assert (head.in_features, head.out_features) == (512, 2)
    assert head.weight.shape == (2, 512)
    bound = math.sqrt(6 / (512 + 2))
    largest = float(head.weight.detach().abs().max())
    assert largest <= bound
    assert largest > 0.5 * bound  # really Xavier, not the much smaller default init
    assert torch.equal(head.bias, torch.zeros(2))
    assert target(torch.randn(2, 3, 32, 32)).shape == (2, 2)


def test_make_target_model_copies_everything_but_the_head() -> None:
    source = trained_tiny()
    target = make_target_model(source, 3)
    src, dst = source.state_dict(), target.state_dict()
    assert src.keys() == dst.keys()
    for key in src:
        if not key.startswith("fc."):
            assert torch.equal(src[key], dst[key]), key
    assert dst["fc.weight"].shape == (3, 6)


def test_make_target_model_leaves_the_source_alone() -> None:
    source = trained_tiny()
    before = {k: v.clone() for k, v in source.state_dict().items()}
    head_before = source.fc
    target = make_target_model(source, 2)

    assert source.fc is head_before
    assert source.fc.out_features == 10
    target_ptrs = {v.data_ptr() for v in target.state_dict().values()}
    assert not target_ptrs & {v.data_ptr() for v in source.state_dict().values()}
    with torch.no_grad():
        for t in target.state_dict().values():
            t.add_(1)  # weights and BatchNorm buffers of the target
    for key, value in source.state_dict().items():
        assert torch.equal(value, before[key]), key


@pytest.mark.parametrize("num_classes", [1, 0, -3, 2.5, True])
def test_make_target_model_needs_two_classes(num_classes: int) -> None:
    with pytest.raises(ValueError, match="num_classes"):
        make_target_model(Tiny(), num_classes)


def test_make_target_model_keeps_dtype() -> None:
    source = Tiny().to(torch.bfloat16)
    target = make_target_model(source, 2)
    assert target.fc.weight.dtype == torch.bfloat16
    assert target(torch.randn(2, 3, 8, 8, dtype=torch.bfloat16)).shape == (2, 2)


# --------------------------------------------------------------------------------------------
# freeze_body
# --------------------------------------------------------------------------------------------


def test_freeze_body_only_head_trains_and_no_batchnorm_left() -> None:
    net = trained_tiny()
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    assert n_bn == 2
    assert freeze_body(net) is net
    trainable = {name for name, p in net.named_parameters() if p.requires_grad}
    assert trainable == {"fc.weight", "fc.bias"}
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    assert sum(isinstance(m, FrozenBatchNorm2d) for m in net.modules()) == n_bn


def test_freeze_body_keeps_the_eval_function() -> None:
    net = trained_tiny()
    x = torch.randn(4, 3, 12, 12)
    net.eval()
    before = net(x)
    freeze_body(net)
    net.eval()
    assert torch.allclose(net(x), before, atol=1e-5)


def test_freeze_body_same_output_in_train_and_eval_mode() -> None:
    net = trained_tiny()
    x = torch.randn(4, 3, 12, 12)
    net.train()
    train_out = net(x).detach()
    net.eval()
    assert not torch.allclose(train_out, net(x), atol=1e-3)  # BatchNorm differs before freezing

    freeze_body(net)
    net.train()
    train_out = net(x)
    net.eval()
    assert torch.equal(train_out, net(x))


def test_freeze_body_resnet18_train_equals_eval() -> None:
    net = freeze_body(make_target_model(tvm.resnet18(weights=None), 2))
    x = torch.randn(8, 3, 32, 32)
    with torch.no_grad():
        net.train()
        a = net(x)
        net.eval()
        b = net(x)
    assert torch.equal(a, b)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())


def test_freeze_body_mobilenet_keeps_statistics_in_train_mode() -> None:
    net = freeze_body(make_target_model(tvm.mobilenet_v3_small(weights=None), 2))
    before = body_state(net, "classifier.3")
    net.train()
    with torch.no_grad():
        net(torch.randn(4, 3, 32, 32))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    for key, value in body_state(net, "classifier.3").items():
        assert torch.equal(value, before[key]), key


def test_freeze_body_training_changes_only_the_head() -> None:
    net = freeze_body(make_target_model(trained_tiny(), 2))
    body_before = body_state(net, "fc")
    head_before = {k: v.clone() for k, v in net.fc.state_dict().items()}
    trainable = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(trainable, lr=0.1, momentum=0.9, weight_decay=0.01)
    net.train()
    for _ in range(3):
        x, y = torch.randn(8, 3, 12, 12) * 2 + 1, torch.randint(0, 2, (8,))
        loss = nn.functional.cross_entropy(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    body_after = body_state(net, "fc")
    assert body_after.keys() == body_before.keys()
    assert any("running_mean" in k for k in body_after)
    for key, value in body_before.items():
        assert torch.equal(value, body_after[key]), key
    assert not torch.equal(head_before["weight"], net.fc.weight)
    assert not torch.equal(head_before["bias"], net.fc.bias)


# --------------------------------------------------------------------------------------------
# copy_class_row
# --------------------------------------------------------------------------------------------


def test_copy_class_row_copies_weight_row_and_bias() -> None:
    source = Tiny(num_classes=10)
    target = make_target_model(source, 2)
    other_row = target.fc.weight[1].clone()
    copy_class_row(target, source, source_class=7, target_class=0)
    assert torch.equal(target.fc.weight[0], source.fc.weight[7])
    assert torch.equal(target.fc.bias[0], source.fc.bias[7])
    assert torch.equal(target.fc.weight[1], other_row)
    assert torch.equal(target.fc.bias[1:], torch.zeros(1))
    assert target.fc.weight.data_ptr() != source.fc.weight.data_ptr()


@pytest.mark.parametrize(
    ("source_class", "target_class", "word"),
    [
        (10, 0, "source_class"),
        (-1, 0, "source_class"),
        (3, 2, "target_class"),
        (3, -1, "target_class"),
        (1.5, 0, "source_class"),
        (3, None, "target_class"),
    ],
)
def test_copy_class_row_out_of_range(source_class: int, target_class: int, word: str) -> None:
    source = Tiny(num_classes=10)
    target = make_target_model(source, 2)
    with pytest.raises(ValueError, match=word):
        copy_class_row(target, source, source_class, target_class)


def test_copy_class_row_can_negate_the_other_row() -> None:
    source = Tiny(num_classes=10)
    target = make_target_model(source, 2)
    copy_class_row(target, source, source_class=7, target_class=1, other_row_negated=True)
    assert torch.equal(target.fc.weight[1], source.fc.weight[7])
    assert torch.equal(target.fc.weight[0], -source.fc.weight[7])
    assert torch.equal(target.fc.bias, torch.stack([-source.fc.bias[7], source.fc.bias[7]]))
    x = torch.randn(4, 3, 8, 8)
    score = source(x)[:, 7]
    assert torch.allclose(target(x), torch.stack([-score, score], 1), atol=1e-6)


def test_copy_class_row_negation_needs_two_classes() -> None:
    source = Tiny(num_classes=10)
    with pytest.raises(ValueError, match="two-class output layer, got 3"):
        copy_class_row(make_target_model(source, 3), source, 7, 0, other_row_negated=True)


def test_copy_class_row_in_features_mismatch() -> None:
    source = Tiny(num_classes=10, width=6)
    target = make_target_model(Tiny(num_classes=10, width=5), 2)
    with pytest.raises(ValueError, match="input sizes differ"):
        copy_class_row(target, source, 3, 0)


# --------------------------------------------------------------------------------------------
# imagenet_resnet18: clear errors when the weights are missing offline or corrupt
# --------------------------------------------------------------------------------------------


@pytest.fixture
def torch_home(tmp_path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch"


def assert_names_the_way_out(message: str, torch_home) -> None:
    folder = torch_home / "hub" / "checkpoints"
    assert imagenet_weights_path() == folder / "resnet18-f37072fd.pth"
    assert "resnet18-f37072fd.pth" in message
    assert str(folder) in message and "$TORCH_HOME/hub/checkpoints" in message
    assert IMAGENET_WEIGHTS.url in message
    assert "D2LHELPERS_DATA_SOURCE=standin" in message


def test_imagenet_weights_offline_is_a_clear_error(torch_home, monkeypatch) -> None:
    def offline(url, dst, *args, **kwargs):
        raise urllib.error.URLError(OSError(101, "Network is unreachable"))

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(WeightsError, match="offline") as info:
        imagenet_resnet18(progress=False)
    assert_names_the_way_out(str(info.value), torch_home)


@pytest.mark.parametrize("content", [b"", b"garbage, not a checkpoint", b"PK\x03\x04broken"])
def test_imagenet_weights_corrupt_cache_is_a_clear_error(torch_home, content: bytes) -> None:
    path = imagenet_weights_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with pytest.raises(WeightsError, match="corrupt") as info:
        imagenet_resnet18(progress=False)
    assert_names_the_way_out(str(info.value), torch_home)
    assert f"{path} is corrupt" in str(info.value) and "delete it" in str(info.value)
