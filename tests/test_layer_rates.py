"""Tests for d2lhelpers.layer_rates: a ResNet's stages and their rates, every parameter once,
decay=1 as the chapter's optimizer, nets refused; a Run trains with such an optimizer, after a
range test on the same net and loaders."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torchvision
from torch import nn

from d2lhelpers import run, train
from d2lhelpers.finetune import train_fine_tuning
from d2lhelpers.layer_rates import layerwise_param_groups, layerwise_sgd
from d2lhelpers.lr_range import lr_range_test
from d2lhelpers.run import Run

NAMES = ["stem", "layer1", "layer2", "layer3", "layer4", "head"]


def resnet() -> nn.Module:
    return torchvision.models.resnet18(num_classes=2)


def test_stages_from_the_input_upward_each_decay_times_the_one_above() -> None:
    groups = layerwise_param_groups(resnet(), 0.01, decay=0.5, head_multiplier=10)
    assert [g["name"] for g in groups] == NAMES
    rates = [g["lr"] for g in groups]
    assert rates == pytest.approx([0.01 / 16, 0.01 / 8, 0.01 / 4, 0.01 / 2, 0.01, 0.1])


def test_every_parameter_is_in_exactly_one_group_and_the_head_is_the_output_layer() -> None:
    net = resnet()
    groups = layerwise_param_groups(net, 0.01, decay=0.7)
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in net.parameters())
    assert len(set(ids)) == len(ids)
    assert [id(p) for p in groups[-1]["params"]] == [id(net.fc.weight), id(net.fc.bias)]
    assert {id(p) for p in groups[0]["params"]} == {
        id(p) for m in (net.conv1, net.bn1) for p in m.parameters()
    }
    torch.optim.SGD(groups, lr=0.01)  # torch accepts the groups, names and all


def per_parameter(optimizer: torch.optim.Optimizer) -> dict[int, tuple]:
    """Each parameter's settings in ``optimizer``: what its SGD step depends on."""
    keys = ("lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize")
    return {
        id(p): tuple(group[k] for k in keys) for group in optimizer.param_groups
        for p in group["params"]
    }  # fmt: skip


def test_decay_1_steps_as_the_chapters_optimizer(tiny_workspace, monkeypatch) -> None:
    seen = {}
    monkeypatch.setattr(run, "fit", lambda *args, **kw: seen.update(optimizer=args[3]))
    net = resnet()
    train_fine_tuning(net, tiny_workspace.data(), 0.02, batch_size=4, run=Run())
    chapter = per_parameter(seen["optimizer"])
    layerwise = per_parameter(layerwise_sgd(net, 0.02, batch_size=4, decay=1.0))
    assert layerwise.keys() == chapter.keys()
    for key, settings in chapter.items():
        assert layerwise[key] == pytest.approx(settings)


def test_a_net_without_resnet_stages_is_refused_naming_what_it_lacks() -> None:
    net = nn.Sequential(nn.Linear(4, 2))
    with pytest.raises(ValueError, match=r"ResNet.*Sequential has no conv1, bn1, layer1"):
        layerwise_param_groups(net, 0.01, 0.5)
    mobilenet = torchvision.models.mobilenet_v3_small(num_classes=2)
    with pytest.raises(ValueError, match="MobileNetV3 has no"):
        layerwise_param_groups(mobilenet, 0.01, 0.5)


def test_a_parameter_outside_every_stage_is_refused_by_name() -> None:
    net = resnet()
    net.extra = nn.Linear(2, 2)
    with pytest.raises(ValueError, match=r"extra\.weight, extra\.bias"):
        layerwise_param_groups(net, 0.01, 0.5)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"decay": 0.0}, "decay"),
        ({"decay": 1.5}, "decay must be at most 1"),
        ({"decay": math.nan}, "decay"),
        ({"learning_rate": -0.1}, "learning_rate"),
        ({"head_multiplier": math.inf}, "head_multiplier"),
    ],
    ids=str,
)
def test_bad_rates_are_refused_naming_the_value(kwargs: dict, named: str) -> None:
    arguments = {"learning_rate": 0.01, "decay": 0.5, **kwargs}
    with pytest.raises(ValueError, match=named) as caught:
        layerwise_param_groups(resnet(), **arguments)
    (value,) = kwargs.values()
    assert repr(value) in str(caught.value)


def test_a_run_trains_with_layerwise_rates_after_a_range_test(tiny_workspace) -> None:
    """The page's lines: the chapter's loaders and Run, a range test, then the loop with a
    layer-wise optimizer. The range test leaves the net as it was."""
    quiet = Run(precision="fp32")
    net = resnet()
    before = copy.deepcopy(net.state_dict())
    optimizer = layerwise_sgd(net, 0.01, batch_size=4, decay=0.5)
    train_iter, held_out_iter = quiet.loaders(tiny_workspace.data(), 4)
    loss = nn.CrossEntropyLoss()
    found = lr_range_test(net, train_iter, loss, optimizer, end=1e-3, steps=5, run=quiet)
    assert found.stopped == "" and len(found.rates) == 5 > len(train_iter)  # cycled
    assert all(torch.equal(net.state_dict()[k], v) for k, v in before.items())
    history = quiet.fit(net, train_iter, held_out_iter, loss, optimizer, 1)
    assert history.status == "ok" and len(history.epochs) == 1
    assert history.hparams["learning_rates"] == pytest.approx(
        [0.01 / 16, 0.01 / 8, 0.01 / 4, 0.01 / 2, 0.01, 0.1]
    )
    assert not torch.equal(net.conv1.weight, before["conv1.weight"])


def test_a_run_refuses_a_layerwise_optimizer_with_a_bad_rate_before_training(
    tiny_workspace, monkeypatch
) -> None:
    monkeypatch.setattr(train, "train_one_epoch", pytest.fail)
    net = resnet()
    optimizer = layerwise_sgd(net, 0.01, batch_size=4, decay=0.5)
    optimizer.param_groups[2]["lr"] = math.nan
    train_iter, held_out_iter = Run().loaders(tiny_workspace.data(), 4)
    with pytest.raises(ValueError, match="parameter group 2 is nan"):
        Run().fit(net, train_iter, held_out_iter, nn.CrossEntropyLoss(), optimizer, 1)
