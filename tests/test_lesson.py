"""The lesson itself, on the stand-in: fine-tuning beats training from scratch.

Slow (trains two ResNet-18s, and builds the stand-in on first use): run with ``-m slow``.
"""

from __future__ import annotations

import os

import pytest
import torch
import torchvision

from d2lhelpers.chapter import CHAPTER_SETTINGS
from d2lhelpers.finetune import train_fine_tuning
from d2lhelpers.models import make_target_model
from d2lhelpers.workspace import prepare

pytestmark = pytest.mark.slow


@pytest.fixture
def all_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)
    yield
    torch.set_num_threads(threads)


def test_fine_tuned_beats_scratch_by_ten_points(all_threads) -> None:
    ws = prepare("standin", progress=False)
    settings = CHAPTER_SETTINGS["standin"]
    common = {"batch_size": settings["batch_size"], "num_epochs": settings["num_epochs"]}

    torch.manual_seed(0)
    finetune_net = make_target_model(ws.source_model(), 2)
    tuned = train_fine_tuning(
        finetune_net, settings["finetune_lr"], ws.data(), live=False, **common
    )

    torch.manual_seed(0)
    scratch_net = torchvision.models.resnet18(num_classes=2)
    scratch = train_fine_tuning(
        scratch_net, settings["scratch_lr"], ws.data(), param_group=False, live=False, **common
    )

    assert tuned.status == scratch.status == "ok"
    assert len(tuned.epochs) == len(scratch.epochs) == settings["num_epochs"]
    gap = tuned.final.test_acc - scratch.final.test_acc
    assert gap >= 0.10, (
        f"fine-tuned {tuned.final.test_acc:.3f} vs scratch {scratch.final.test_acc:.3f}"
    )
