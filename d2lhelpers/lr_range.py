"""The learning-rate range test (Smith 2017; fastai's ``lr_find``): which rates train at all.

A short pass over the training batches raises the rate exponentially from ``start`` to ``end``,
one step per batch, and records each batch's loss. The loss first stays flat (the rate is too
small to move the weights), then falls, then rises and explodes (the steps overshoot). A good
rate lies on the falling stretch: the test suggests a tenth of the rate at the lowest smoothed
loss (the "minimum / 10" rule of Smith and of fastai), well before the loss turns upward.

The test trains the net it is given and then puts it back: its weights and buffers (BatchNorm
statistics), its training mode and the optimizer's state and rates are saved before the first
step and restored afterwards, also when the test fails. The training batches' random state (a
:class:`~d2lhelpers.data.BatchLoader`'s generator) does advance: for the same batches as
without the test, train on loaders made anew (``run.loaders(data, batch_size)``).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from .checks import int_at_least, positive_finite
from .precision import Precision, choose_precision
from .run import Run
from .train import Batches, Loss

# The smoothing of the loss, an exponential moving average over about 1 / (1 - BETA) = 5
# batches. fastai's 0.98 (about 50 batches) suits its 100-step test; over a 40-step test it
# averages more batches than the falling stretch has, and the curve lags far behind the losses.
BETA = 0.8
DIVERGENCE_FACTOR = 4.0  # stop once the smoothed loss exceeds this many times its best
EDGE_FRACTION = 0.05  # a minimum in the first or last 5% of the steps is at the edge


@dataclass(frozen=True)
class RangeTest:
    """What a range test recorded, step by step, and the rate it suggests.

    ``rates`` are the first parameter group's (the body's, in the chapter's optimizer); every
    other group ran at its own rate times the same factor. ``losses[i]`` is the batch's mean
    loss at ``rates[i]``, before that rate's step; ``smoothed[i]`` its moving average.
    ``stopped`` is ``""`` when every step ran, ``"diverged"`` when the smoothed loss exceeded
    :data:`DIVERGENCE_FACTOR` times its best (that step is recorded), ``"non-finite"`` when a
    loss was not finite (that step is not).

    ``minimum`` is the step of the lowest smoothed loss and ``suggestion`` a tenth of its rate.
    ``at_edge`` says the range did not show that minimum clearly: it lies in the first or last
    5% of the steps recorded, or the suggestion lies below the lowest rate tested. Test a wider
    range then (a lower ``start`` or a higher ``end``).
    """

    rates: list[float]
    losses: list[float]
    smoothed: list[float]
    stopped: str
    minimum: int

    @property
    def suggestion(self) -> float:
        """A tenth of the rate at the lowest smoothed loss."""
        return self.rates[self.minimum] / 10

    @property
    def at_edge(self) -> bool:
        edge = max(1, round(EDGE_FRACTION * len(self.rates)))
        low, high = self.minimum < edge, self.minimum >= len(self.rates) - edge
        return low or high or self.suggestion < self.rates[0]


def lr_range_test(
    net: nn.Module,
    train_iter: Batches,
    loss: Loss,
    optimizer: torch.optim.Optimizer,
    *,
    start: float = 1e-5,
    end: float = 1.0,
    steps: int = 100,
    run: Run = Run(),
) -> RangeTest:
    """Train ``net`` for ``steps`` batches of ``train_iter`` (from its start again when it has
    fewer), its first parameter group's rate rising exponentially from ``start`` to ``end``
    and every other group's kept in proportion; then restore ``net`` and ``optimizer``.

    ``loss`` is the batch's mean loss of (logits, labels). The test runs on ``run``'s device
    (``net`` is moved there in channels-last layout, as :meth:`Run.fit` moves it) in its
    precision (autocast, and a gradient scaler for fp16), and stops early on divergence (see
    :class:`RangeTest`).
    """
    start, end = positive_finite("start", start), positive_finite("end", end)
    if start >= end:
        raise ValueError(f"start must be below end, got start={start!r} and end={end!r}.")
    steps = int_at_least("steps", steps, 2)
    first_rate = positive_finite(
        "the rate of the optimizer's first group", optimizer.param_groups[0]["lr"]
    )
    rates = [start * (end / start) ** (i / (steps - 1)) for i in range(steps)]
    precision = choose_precision(run.target_device, run.precision)
    net = net.to(run.target_device, memory_format=torch.channels_last)
    net_state, optimizer_state = copy.deepcopy((net.state_dict(), optimizer.state_dict()))
    training = net.training
    try:
        return _sweep(net, train_iter, loss, optimizer, precision, [r / first_rate for r in rates])
    finally:
        net.load_state_dict(net_state)
        optimizer.load_state_dict(optimizer_state)
        net.train(training)


def _sweep(
    net: nn.Module,
    train_iter: Batches,
    loss: Loss,
    optimizer: torch.optim.Optimizer,
    precision: Precision,
    factors: list[float],
) -> RangeTest:
    """Step once per factor, every group's rate times that factor; record and judge."""
    base = [group["lr"] for group in optimizer.param_groups]
    rates, losses, smoothed, stopped, average = [], [], [], "", 0.0
    net.train()
    for step, (factor, (x, y)) in enumerate(zip(factors, _cycle(train_iter), strict=False)):
        for group, rate in zip(optimizer.param_groups, base, strict=True):
            group["lr"] = rate * factor
        with precision.autocast():
            mean = loss(net(x), y)
        value = mean.item()
        if not math.isfinite(value):
            stopped = "non-finite"
            break
        average = BETA * average + (1 - BETA) * value
        rates.append(base[0] * factor)
        losses.append(value)
        smoothed.append(average / (1 - BETA ** (step + 1)))
        if smoothed[-1] > DIVERGENCE_FACTOR * min(smoothed):
            stopped = "diverged"
            break
        optimizer.zero_grad(set_to_none=True)
        precision.backward_and_step(mean, optimizer)
    if not rates:
        raise ValueError(f"The loss of the first batch, before any step, is {value}: not finite.")
    best = min(range(len(smoothed)), key=smoothed.__getitem__)
    return RangeTest(rates, losses, smoothed, stopped, best)


def _cycle(batches: Batches) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The batches, again and again; ValueError if there are none."""
    while True:
        empty = True
        for batch in batches:
            empty = False
            yield batch
        if empty:
            raise ValueError("train_iter yielded no batch.")
