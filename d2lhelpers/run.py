"""``Run``: how a recipe's training is carried out, apart from the recipe itself.

The recipe (:func:`d2lhelpers.finetune.train_fine_tuning`) decides what is learnt: the parameter
groups, the optimizer, the loss. A ``Run`` decides the rest: the seed of the batches' order and
augmentation, the device and memory layout, data-parallel processes, and what the learner sees
while it trains: a live view (the book's curves, :class:`d2lhelpers.book.plot.LivePlot`, or
:func:`print_epoch` in a shell), a progress bar, a Stop button.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from .checks import non_negative_int
from .data import BatchLoader, HotdogData
from .distributed import Parallel
from .precision import choose_precision
from .train import History, Loss, default_device, evaluate, fit

Live = Callable[[History], None]  # shown the History so far after every epoch


def print_epoch(history: History) -> None:
    """A live view for a shell: the last epoch of ``history`` on one line."""
    last = history.epochs[-1]
    tqdm.write(
        f"epoch {last.epoch}: loss {last.train_loss:.3f}, train acc {last.train_acc:.3f}, "
        f"held-out acc {last.held_out_acc:.3f}"
    )


@dataclass(frozen=True)
class Run:
    """How one training run is carried out.

    ``seed`` (an int >= 0) orders and augments the batches; ``augment=False`` trains on the
    test transform (centre crops) instead of random crops and flips. ``device`` defaults to
    the best one here; ``precision`` (``auto``, ``fp32``, ``bf16``, ``fp16``) to
    ``$D2LHELPERS_PRECISION``, else auto (see :func:`~d2lhelpers.precision.choose_precision`).
    ``live``, when given, is called with the History after every epoch (the book's
    ``LivePlot`` draws the curves); the run then also shows a progress bar and prints the
    result lines. Without it the run is silent. ``on_batch`` and ``should_stop`` go to
    :func:`~d2lhelpers.train.fit`. ``parallel`` (from :func:`d2lhelpers.distributed.start`,
    under ``torchrun``) trains on several processes with the same steps as one device: each
    process takes its share of every batch on its ``parallel.device``, and only rank 0 is
    live.
    """

    seed: int = 0
    augment: bool = True
    device: torch.device | None = None
    precision: str | None = None
    label: str = ""
    live: Live | None = None
    on_batch: Callable[[int], None] | None = None
    should_stop: Callable[[], bool] | None = None
    parallel: Parallel | None = None

    def __post_init__(self) -> None:
        non_negative_int("seed", self.seed)

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
        held_out_iter: BatchLoader,
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
            net, train_iter, held_out_iter = self.parallel.shard(net, train_iter, held_out_iter)
            evaluator, reduce = self.parallel.evaluate, self.parallel.reduce
            live = live if self.parallel.is_main else None
        history = fit(
            net, train_iter, held_out_iter, optimizer, num_epochs, device=device, loss=loss,
            precision=choose_precision(device, self.precision),
            evaluator=evaluator, reduce=reduce, label=self.label,
            progress=live is not None, hparams=hparams, on_epoch=live,
            on_batch=self.on_batch, should_stop=self.should_stop,
        )  # fmt: skip
        if live is not None:
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
