"""Tests for d2lhelpers.finetune: the arguments are checked at the call, before any work."""

from __future__ import annotations

import math

import pytest
import torch

from d2lhelpers import finetune
from d2lhelpers.finetune import default_weight_decay, fine_tune

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
    ("weight_decay", math.nan),
    ("weight_decay", -1.0),
]


@pytest.mark.parametrize(("name", "value"), BAD_ARGUMENTS)
def test_bad_arguments_are_refused_before_any_work(name, value, tiny_workspace, monkeypatch):
    def no_loaders(*args, **kwargs):
        raise AssertionError("the loaders were built before the arguments were checked")

    monkeypatch.setattr(type(tiny_workspace), "loaders", no_loaders)
    kwargs = {"learning_rate": 1e-3, name: value}
    learning_rate = kwargs.pop("learning_rate")
    with pytest.raises(ValueError, match=name) as caught:
        fine_tune(torch.nn.Linear(2, 2), learning_rate, tiny_workspace, progress=False, **kwargs)
    assert repr(value) in str(caught.value) or str(value) in str(caught.value)


def test_default_weight_decay_refuses_a_batch_of_zero() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        default_weight_decay(0)
    assert default_weight_decay(128) == pytest.approx(finetune.D2L_WEIGHT_DECAY / 128)
