"""Tests for d2lhelpers.finetune: the recipe's optimizer and loss, and its arguments checked
before any training."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision

from d2lhelpers import run, train
from d2lhelpers.finetune import WEIGHT_DECAY, train_fine_tuning
from d2lhelpers.run import Run
from d2lhelpers.sweep import SweepSetting

QUIET = Run()  # no live view: silent

# (argument, bad value, what the error names)
BAD_ARGUMENTS = [
    ("learning_rate", math.nan, "learning rate"),
    ("learning_rate", math.inf, "learning rate"),
    ("learning_rate", 0.0, "learning rate"),
    ("learning_rate", -1e-3, "learning rate"),
    ("head_multiplier", math.nan, "learning rate of parameter group 1"),
    ("head_multiplier", 0.0, "learning rate of parameter group 1"),
    ("batch_size", 0, "batch_size"),
    ("batch_size", 1, "batch_size"),
    ("num_epochs", 0, "num_epochs"),
    ("num_epochs", -2, "num_epochs"),
]


@pytest.mark.parametrize(("name", "value", "named"), BAD_ARGUMENTS)
def test_bad_arguments_are_refused_before_any_training(
    name, value, named, tiny_workspace, monkeypatch
):
    def no_training(*args, **kwargs):
        raise AssertionError("an epoch started before the arguments were checked")

    monkeypatch.setattr(train, "train_one_epoch", no_training)
    kwargs = {"learning_rate": 1e-3, name: value}
    learning_rate = kwargs.pop("learning_rate")
    net = torchvision.models.resnet18(num_classes=2)
    with pytest.raises(ValueError, match=named) as caught:
        train_fine_tuning(net, tiny_workspace.data(), learning_rate, run=QUIET, **kwargs)
    assert repr(value) in str(caught.value) or str(value) in str(caught.value)


BAD_SEEDS = [True, 1.5, "0", None, math.nan, -1]


@pytest.mark.parametrize("seed", BAD_SEEDS, ids=repr)
def test_a_seed_that_is_not_an_int_of_at_least_0_is_refused_as_the_sweep_refuses_it(
    seed, tiny_workspace, monkeypatch
):
    """The run's seed is checked by the same check as SweepSetting's, before any work."""
    with pytest.raises(ValueError, match="seed") as caught:
        Run(seed=seed)
    assert repr(seed) in str(caught.value)
    with pytest.raises(ValueError, match="seed"):
        tiny_workspace.data().loaders(4, seed=seed)
    with pytest.raises(ValueError, match="seed") as sweep_caught:
        SweepSetting(0.01, seed=seed)
    assert str(sweep_caught.value) == str(caught.value)


def _capture_fit(monkeypatch) -> dict:
    """Replace the loop: the dict gets the optimizer, loss and settings the recipe passes."""
    seen = {}

    def capture(net, train_iter, held_out_iter, optimizer, num_epochs, **kw):
        seen.update(optimizer=optimizer, loss=kw["loss"], hparams=kw["hparams"])
        return train.History("", "cpu", "fp32", kw["hparams"])

    monkeypatch.setattr(run, "fit", capture)
    return seen


def test_param_groups_put_the_output_layer_at_ten_times_the_rate(tiny_workspace, monkeypatch):
    seen = _capture_fit(monkeypatch)
    net = torchvision.models.resnet18(num_classes=2)
    train_fine_tuning(net, tiny_workspace.data(), 0.01, batch_size=4, run=QUIET)
    body, head = seen["optimizer"].param_groups
    assert body["lr"] == pytest.approx(0.01) and head["lr"] == pytest.approx(0.1)
    assert [id(p) for p in head["params"]] == [id(net.fc.weight), id(net.fc.bias)]
    assert len(body["params"]) == len(list(net.parameters())) - 2
    assert body["weight_decay"] == pytest.approx(WEIGHT_DECAY / 4)
    assert isinstance(seen["loss"], torch.nn.CrossEntropyLoss)
    assert seen["hparams"]["learning_rates"] == pytest.approx([0.01, 0.1])
    assert seen["hparams"]["batch_size"] == 4


def test_without_param_groups_every_parameter_shares_the_rate(tiny_workspace, monkeypatch):
    seen = _capture_fit(monkeypatch)
    net = torchvision.models.resnet18(num_classes=2)
    train_fine_tuning(net, tiny_workspace.data(), 0.05, batch_size=4, param_group=False, run=QUIET)
    (group,) = seen["optimizer"].param_groups
    assert group["lr"] == pytest.approx(0.05)
    assert len(group["params"]) == len(list(net.parameters()))
    assert seen["hparams"]["learning_rates"] == pytest.approx([0.05])


def test_the_recipe_the_chapter_shows_fits_its_code_column() -> None:
    """The chapter prints train_fine_tuning's source without its docstring: 77 columns, and at
    most 20 lines (d2l's recipe is about 15)."""
    import ast
    import inspect

    source = inspect.getsource(train_fine_tuning)
    docstring = ast.parse(source).body[0].body[0]
    lines = source.splitlines()
    del lines[docstring.lineno - 1 : docstring.end_lineno]
    assert max(len(line) for line in lines) <= 77
    assert len(lines) <= 20
    assert "fmt:" not in source and "noqa" not in source
    assert any("torch.optim.SGD(" in line for line in lines)  # the recipe is what it shows
    assert any("nn.CrossEntropyLoss()" in line for line in lines)
