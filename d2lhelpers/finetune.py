"""The chapter's recipe, ``train_fine_tuning``: d2l's parameter groups, optimizer and loss.

Its source is what the chapter shows, so its lines are broken by hand to fit the book's code
column (pyproject.toml exempts this file from the formatter), and every name in it is introduced
on that page. How the training is carried out (device, data-parallel processes, live curves) is
a :class:`~d2lhelpers.run.Run`'s job.
"""

from __future__ import annotations

import torch
from torch import nn

from .data import HotdogData
from .run import Run
from .train import History

# d2l's weight decay, 0.001, is for a loss summed over the batch; PyTorch's (and this book's)
# loss is the batch mean, so the same SGD steps take 0.001 divided by the batch size.
WEIGHT_DECAY = 1e-3


def train_fine_tuning(net: nn.Module, data: HotdogData, learning_rate: float,
                      batch_size: int = 128, num_epochs: int = 5,
                      param_group: bool = True, head_multiplier: float = 10,
                      run: Run = Run()) -> History:
    """Train ``net`` (a ResNet whose output layer is ``net.fc``) in place on ``data``.

    With ``param_group`` the output layer learns at ``learning_rate * head_multiplier`` and
    every other layer at ``learning_rate``; else all at ``learning_rate``.
    """
    train_iter, held_out_iter = run.loaders(data, batch_size)
    if param_group:
        params_1x = [param for name, param in net.named_parameters()
                     if not name.startswith("fc.")]
        params = [{"params": params_1x},
                  {"params": net.fc.parameters(),
                   "lr": learning_rate * head_multiplier}]
    else:
        params = net.parameters()
    optimizer = torch.optim.SGD(params, lr=learning_rate,
                                weight_decay=WEIGHT_DECAY / batch_size)
    loss = nn.CrossEntropyLoss()
    return run.fit(net, train_iter, held_out_iter, loss, optimizer,
                   num_epochs)
