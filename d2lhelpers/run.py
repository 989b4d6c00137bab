"""``Run``: how a recipe's training is carried out, apart from the recipe itself.

The recipe (:func:`d2lhelpers.finetune.train_fine_tuning`) decides what is learnt: the parameter
groups, the optimizer, the loss. A ``Run`` decides the rest: the seed of the batches' order and
augmentation, the device and memory layout, data-parallel processes, and what the learner sees
while it trains (live curves, a progress bar, a Stop button).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .data import BatchLoader, HotdogData
from .distributed import Parallel
from .plot import LivePlot
from .train import History, Loss, default_device, evaluate, fit


@dataclass(frozen=True)
class Run:
    """How one training run is carried out.

    ``seed`` orders and augments the batches; ``augment=False`` trains on the test transform
    (centre crops) instead of random crops and flips. ``device`` defaults to the best one here.
    ``live`` draws the curves after each epoch, shows a progress bar and prints the result
    lines. ``on_batch`` and ``should_stop`` go to :func:`~d2lhelpers.train.fit`. ``parallel``
    (from :func:`d2lhelpers.distributed.start`, under ``torchrun``) trains on several processes
    with the same steps as one device: each process takes its share of every batch on its
    ``parallel.device``, and only rank 0 is live.
    """

    seed: int = 0
    augment: bool = True
    device: torch.device | None = None
    label: str = ""
    live: bool = True
    on_batch: Callable[[int], None] | None = None
    should_stop: Callable[[], bool] | None = None
    parallel: Parallel | None = None

    @property
    def target_device(self) -> torch.device:
        """The device this run trains on."""
        if self.parallel is not None:
            return self.parallel.device
        return self.device or default_device()

    def loaders(self, data: HotdogData, batch_size: int) -> tuple[BatchLoader, BatchLoader]:
        """``data``'s training and held-out batches for this run's seed, augmentation and
        device (see :meth:`~d2lhelpers.data.HotdogData.loaders`)."""
        return data.loaders(batch_size, self.target_device, self.seed, self.augment)

    def fit(
        self,
        net: nn.Module,
        train_iter: BatchLoader,
        test_iter: BatchLoader,
        loss: Loss,
        optimizer: torch.optim.Optimizer,
        num_epochs: int,
    ) -> History:
        """Train ``net`` in place with ``optimizer`` on the batch mean of ``loss`` and return
        its History; its ``hparams`` record the optimizer's rates and this run's settings."""
        _check_rates(optimizer)
        device = self.target_device
        # channels_last: the same weights, in the layout that convolves fastest
        net = net.to(device, memory_format=torch.channels_last)
        hparams = self.hparams(optimizer, train_iter, num_epochs)  # the whole batch's size
        evaluator, reduce, live = evaluate, None, self.live
        if self.parallel is not None:
            net, train_iter, test_iter = self.parallel.shard(net, train_iter, test_iter)
            evaluator, reduce = self.parallel.evaluate, self.parallel.reduce
            live = live and self.parallel.is_main
        history = fit(
            net, train_iter, test_iter, optimizer, num_epochs, device=device, loss=loss,
            evaluator=evaluator, reduce=reduce, label=self.label, progress=live,
            hparams=hparams,
            on_epoch=LivePlot(self.label) if live else None,
            on_batch=self.on_batch, should_stop=self.should_stop,
        )  # fmt: skip
        if live:
            print(history.summary())
        return history

    def hparams(
        self, optimizer: torch.optim.Optimizer, train_iter: object, num_epochs: int
    ) -> dict:
        """What this run trained with: each parameter group's rate, the weight decay, the
        batch size, the epochs, the seed and the augmentation."""
        groups = optimizer.param_groups
        return {
            "learning_rates": [group["lr"] for group in groups],
            "weight_decay": groups[0].get("weight_decay", 0.0),
            "batch_size": getattr(train_iter, "batch_size", None),
            "num_epochs": num_epochs,
            "seed": self.seed,
            "augment": self.augment,
        }


def _check_rates(optimizer: torch.optim.Optimizer) -> None:
    """Refuse a rate that is not a positive finite number, naming it, before any step."""
    for index, group in enumerate(optimizer.param_groups):
        rate = group["lr"]
        if not (isinstance(rate, int | float) and math.isfinite(rate) and rate > 0):
            raise ValueError(
                f"The learning rate of parameter group {index} is {rate!r}; "
                "it must be a positive finite number (for example 0.003)."
            )
