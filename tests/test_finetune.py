"""Tests for d2lhelpers.finetune: the recipe's arguments are checked before any training."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision

from d2lhelpers import finetune, train
from d2lhelpers.finetune import default_weight_decay, train_fine_tuning

BAD_ARGUMENTS = [
    ("learning_rate", math.nan),
    ("learning_rate", math.inf),
    ("learning_rate", 0.0),
    ("learning_rate", -1e-3),
    ("head_multiplier", math.nan),
    ("head_multiplier", 0.0),
    ("batch_size", 0),
    ("batch_size", 1),
    ("num_epochs", 0),
    ("num_epochs", -2),
]


@pytest.mark.parametrize(("name", "value"), BAD_ARGUMENTS)
def test_bad_arguments_are_refused_before_any_training(name, value, tiny_workspace, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("an epoch started before the arguments were checked")

    monkeypatch.setattr(train, "train_one_epoch", no_training)
    kwargs = {"learning_rate": 1e-3, name: value}
    learning_rate = kwargs.pop("learning_rate")
    net = torchvision.models.resnet18(num_classes=2)
    with pytest.raises(ValueError, match=name) as caught:
        train_fine_tuning(net, learning_rate, tiny_workspace.data(), live=False, **kwargs)
    assert repr(value) in str(caught.value) or str(value) in str(caught.value)


def test_default_weight_decay_refuses_a_batch_of_zero() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        default_weight_decay(0)
    assert default_weight_decay(128) == pytest.approx(finetune.D2L_WEIGHT_DECAY / 128)


def _capture_fit(monkeypatch) -> dict:
    """Replace the loop: the dict gets the optimizer, loss and settings the recipe passes."""
    seen = {}

    def capture(net, train_iter, test_iter, optimizer, num_epochs, **kw):
        seen.update(optimizer=optimizer, loss=kw["loss"], hparams=kw["hparams"])
        return train.History("", "cpu", "fp32", kw["hparams"])

    monkeypatch.setattr(finetune, "fit", capture)
    return seen


def test_param_groups_put_the_output_layer_at_ten_times_the_rate(tiny_workspace, monkeypatch):
    seen = _capture_fit(monkeypatch)
    net = torchvision.models.resnet18(num_classes=2)
    train_fine_tuning(net, 0.01, tiny_workspace.data(), batch_size=4, live=False)
    body, head = seen["optimizer"].param_groups
    assert body["lr"] == pytest.approx(0.01) and head["lr"] == pytest.approx(0.1)
    assert [id(p) for p in head["params"]] == [id(net.fc.weight), id(net.fc.bias)]
    assert len(body["params"]) == len(list(net.parameters())) - 2
    assert body["weight_decay"] == pytest.approx(default_weight_decay(4))
    assert isinstance(seen["loss"], torch.nn.CrossEntropyLoss)


def test_without_param_groups_every_parameter_shares_the_rate(tiny_workspace, monkeypatch):
    seen = _capture_fit(monkeypatch)
    net = torchvision.models.resnet18(num_classes=2)
    train_fine_tuning(net, 0.05, tiny_workspace.data(), batch_size=4, param_group=False, live=False)
    (group,) = seen["optimizer"].param_groups
    assert group["lr"] == pytest.approx(0.05)
    assert len(group["params"]) == len(list(net.parameters()))
    assert seen["hparams"]["param_group"] is False


def test_the_recipe_the_chapter_shows_fits_its_code_column() -> None:
    """The chapter prints train_fine_tuning's source without its docstring: 78 columns."""
    import ast
    import inspect

    source = inspect.getsource(train_fine_tuning)
    docstring = ast.parse(source).body[0].body[0]
    lines = source.splitlines()
    del lines[docstring.lineno - 1 : docstring.end_lineno]
    assert max(len(line) for line in lines) <= 78
    assert any("torch.optim.SGD(" in line for line in lines)  # the recipe is what it shows
    assert any("nn.CrossEntropyLoss()" in line for line in lines)
