"""The chapter's recipe, ``train_fine_tuning``: the optimizer and loss of d2l's fine-tuning, on
the package's loop."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .checks import positive_finite, positive_int
from .data import HotdogData
from .distributed import Parallel
from .plot import LivePlot
from .train import History, default_device, evaluate, fit

D2L_WEIGHT_DECAY = 1e-3  # d2l's value, for a loss summed over the batch


def default_weight_decay(batch_size: int) -> float:
    """d2l's weight decay for a summed loss, as the same SGD steps on a mean loss."""
    batch_size = positive_int("batch_size", batch_size)
    return D2L_WEIGHT_DECAY / batch_size


def train_fine_tuning(
    net: nn.Module,
    learning_rate: float,
    data: HotdogData,
    batch_size: int = 128,
    num_epochs: int = 5,
    param_group: bool = True,
    *,
    head_multiplier: float = 10.0,
    seed: int = 0,
    augment: bool = True,
    device: torch.device | None = None,
    live: bool = True,
    label: str = "",
    on_batch: Callable[[int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    parallel: Parallel | None = None,
) -> History:
    """Fine-tune ResNet-18 ``net`` (its output layer is ``net.fc``) on ``data``; trains ``net``
    in place and returns its History.

    With ``param_group`` the output layer learns at ``learning_rate * head_multiplier``, every
    other layer at ``learning_rate``; else all at ``learning_rate``. The loss is the batch mean,
    so the weight decay is d2l's 0.001 divided by the batch size (:func:`default_weight_decay`).
    ``seed`` sets the order and augmentation of the batches; ``augment=False`` trains on the test
    transform (centre crops) instead of random crops and flips. ``live`` draws the curves after each
    epoch, shows a progress bar and prints the result lines; ``on_batch`` and ``should_stop``
    go to :func:`~d2lhelpers.train.fit`.

    ``parallel`` (from :func:`d2lhelpers.distributed.start`, under ``torchrun``) trains on
    several processes with the same steps as one device with ``batch_size``: each process takes
    its share of every batch on its ``parallel.device``, and only rank 0 is ``live``.
    """
    learning_rate = positive_finite("learning_rate", learning_rate)
    head_multiplier = positive_finite("head_multiplier", head_multiplier)
    device = parallel.device if parallel else device or default_device()
    train_iter, test_iter = data.loaders(batch_size, device, seed, augment)
    # channels_last: the same weights, in the layout that convolves fastest
    net = net.to(device, memory_format=torch.channels_last)
    if param_group:
        fc_params = list(net.fc.parameters())
        other_params = [
            p for name, p in net.named_parameters()
            if not name.startswith("fc.")
        ]  # fmt: skip
        params = [
            {"params": other_params},
            {"params": fc_params, "lr": learning_rate * head_multiplier},
        ]
    else:
        params = net.parameters()
    weight_decay = default_weight_decay(batch_size)
    optimizer = torch.optim.SGD(
        params, lr=learning_rate, weight_decay=weight_decay
    )  # fmt: skip
    loss = nn.CrossEntropyLoss()
    evaluator, reduce = evaluate, None  # one process
    if parallel is not None:  # several processes under torchrun
        net, train_iter, test_iter = parallel.shard(
            net, train_iter, test_iter
        )  # fmt: skip
        evaluator, reduce = parallel.evaluate, parallel.reduce
        live = live and parallel.is_main
    hparams = {
        "learning_rate": learning_rate, "param_group": param_group,
        "head_multiplier": head_multiplier, "batch_size": batch_size,
        "num_epochs": num_epochs, "weight_decay": weight_decay,
        "seed": seed, "augment": augment,
    }  # fmt: skip
    history = fit(
        net, train_iter, test_iter, optimizer, num_epochs, device=device,
        loss=loss, evaluator=evaluator, reduce=reduce, hparams=hparams,
        label=label, on_epoch=LivePlot(label) if live else None,
        progress=live, on_batch=on_batch, should_stop=should_stop,
    )  # fmt: skip
    if live:
        print(history.summary())
    return history
