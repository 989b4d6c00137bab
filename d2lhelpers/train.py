"""The training loop: one epoch, evaluation, and ``fit`` that records a :class:`History`.

The loss is the *mean* cross-entropy over a batch (PyTorch's default). d2l's chapter sums the
loss over the batch instead; its learning rates are therefore 128x smaller for a batch of 128,
and its weight decay is 128x larger in relative terms
(see :data:`~d2lhelpers.finetune.WEIGHT_DECAY`).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .checks import positive_int
from .fileutil import atomic_write
from .precision import Precision, choose_precision

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # mean loss of (logits, labels)
Evaluator = Callable[[nn.Module, Batches, Precision], float]
Reduce = Callable[[torch.Tensor], torch.Tensor]  # sums a tensor over data-parallel processes


def default_device() -> torch.device:
    """CUDA if available, then Apple's MPS, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@dataclass
class EpochStats:
    """What one epoch measured; ``held_out_acc`` is the accuracy on the held-out images that
    ``fit`` evaluates on (the test set in the chapter, a validation split in sweeps)."""

    epoch: int
    train_loss: float
    train_acc: float
    held_out_acc: float
    examples_per_sec: float
    seconds: float


@dataclass
class History:
    """Per-epoch results of one training run, with its settings and how it ended."""

    label: str
    device: str
    precision: str
    hparams: dict
    epochs: list[EpochStats] = field(default_factory=list)
    status: str = "ok"  # "ok", "diverged", "stopped" (asked to) or "interrupted" (Ctrl-C)
    diverged_at: tuple[int, int] | None = None  # (epoch, batch), both counted from 1
    diverged_loss: float | None = None  # the batch loss that stopped it (inf, nan or exploded)

    @property
    def final(self) -> EpochStats | None:
        return self.epochs[-1] if self.epochs else None

    def status_text(self) -> str:
        if self.status == "diverged":
            epoch, batch = self.diverged_at
            loss = "" if self.diverged_loss is None else f" (loss {self.diverged_loss:.3g})"
            return f"diverged at epoch {epoch}, batch {batch}{loss}"
        return self.status

    def summary(self) -> str:
        """d2l-style closing lines: loss and accuracies, then throughput and device."""
        lines = []
        if self.status != "ok":
            lines.append(f"training {self.status_text()}")
        last = self.final
        if last is None:
            lines.append("no epoch completed")
            return "\n".join(lines)
        lines.append(
            f"loss {last.train_loss:.3f}, train acc {last.train_acc:.3f}, "
            f"held-out acc {last.held_out_acc:.3f}"
        )
        speed = sum(e.examples_per_sec for e in self.epochs) / len(self.epochs)
        lines.append(f"{speed:.1f} examples/sec on {self.device} ({self.precision})")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> History:
        """The History that :meth:`to_dict` gave ``data``; an epoch's ``test_acc`` (the name
        before ``held_out_acc``, as the shipped stand-in source model stores it) is read as
        ``held_out_acc``."""
        epochs = [
            EpochStats(**{"held_out_acc" if k == "test_acc" else k: v for k, v in e.items()})
            for e in data["epochs"]
        ]
        where = data.get("diverged_at")
        return cls(**{**data, "epochs": epochs, "diverged_at": where and tuple(where)})

    def save(self, path: str | Path) -> None:
        """Write :meth:`to_dict` as JSON to ``path`` atomically (a crash leaves the old file or
        none)."""
        text = json.dumps(self.to_dict(), indent=1).encode()
        atomic_write(Path(path), lambda f: f.write(text))


# A batch whose mean loss exceeds this many times the loss of guessing (ln of the number of
# classes) has exploded: its logits are hundreds of units apart. Such a run is stopped and
# marked diverged, as a non-finite loss is, instead of training on at chance accuracy.
EXPLODED_LOSS_FACTOR = 100.0


class Stopped(Exception):
    """Raised inside the loop when ``should_stop`` asked it to stop, between two batches."""


class Diverged(Exception):
    """Raised inside the loop when a batch's loss is not finite or has exploded."""

    def __init__(self, batch: int, loss: float) -> None:
        kind = "non-finite" if not math.isfinite(loss) else "exploded"
        super().__init__(f"{kind} loss {loss:.3g} at batch {batch}")
        self.batch, self.loss = batch, loss


def exploded_loss(num_classes: int) -> float:
    """The mean batch loss above which a run counts as diverged (see EXPLODED_LOSS_FACTOR)."""
    return EXPLODED_LOSS_FACTOR * math.log(max(num_classes, 2))


def train_one_epoch(
    net: nn.Module,
    batches: Batches,
    optimizer: torch.optim.Optimizer,
    precision: Precision,
    progress: tqdm | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    *,
    loss: Loss | None = None,
    on_batch: Callable[[int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    reduce: Reduce | None = None,
) -> tuple[float, float, int]:
    """One pass over ``batches``; returns (mean loss, accuracy, number of examples).

    ``loss`` is the batch's *mean* loss of (logits, labels), cross-entropy by default.
    ``scheduler``, when given, steps after every batch (one-cycle and warm-up schedules);
    ``on_batch`` is called with the batch's number (from 1) after its step; ``should_stop`` is
    asked before every batch and raises :class:`Stopped` when it answers True.

    The loss a step minimises is the batch's mean loss times its size over the epoch's full
    batch size (the largest batch so far): the mean for a full batch, and for a short last batch
    a step proportional to its size, as d2l's summed loss takes it (the mean would give those
    few examples the weight of a full batch, just before the epoch's evaluation).

    Raises :class:`Diverged` as soon as a batch's loss is not finite or above
    :func:`exploded_loss`, before that batch updates the weights.

    ``reduce``, for data-parallel training (:mod:`d2lhelpers.distributed`), sums a float64 tensor
    over the processes, each of which trains on its share of every batch with its model wrapped
    in ``DistributedDataParallel`` (which averages the gradients over the processes). Each batch's
    loss sum, size and correct count are then summed over the processes, so that the divergence
    check, the progress bar and the returned numbers are the whole batch's, the same on every
    process; the full batch size is the whole batch's, and a process's share of ``n`` examples
    steps on its mean loss times ``n * processes / full``: averaged over the processes, the
    gradient of the whole batch's loss sum over ``full``, as one process takes it. A share may be
    empty (a short last batch split over more processes than it has examples): it steps on zero.
    """
    loss = loss or F.cross_entropy
    net.train()
    full = 0.0
    loss_sum = correct = count = 0.0
    for batch, (x, y) in enumerate(batches, start=1):
        if should_stop is not None and should_stop():
            raise Stopped
        n = len(y)
        with precision.autocast():
            logits = net(x)
            mean = loss(logits, y) if n else logits.sum() * 0.0  # an empty share: no loss
        right = (logits.argmax(1) == y).sum().item()
        totals = torch.tensor([mean.item() * n, n, right, 1.0], dtype=torch.float64)
        if reduce is not None:  # the whole batch's numbers, over every process
            totals = reduce(totals)
        batch_loss, batch_size, right, processes = totals.tolist()
        value = batch_loss / batch_size if batch_size else math.nan
        full = max(full, batch_size)
        if not math.isfinite(value) or value > exploded_loss(logits.shape[1]):
            raise Diverged(batch, value)
        optimizer.zero_grad(set_to_none=True)
        precision.backward_and_step(mean * (n * processes / full), optimizer)
        if scheduler is not None:
            scheduler.step()
        loss_sum += batch_loss
        correct += right
        count += batch_size
        if progress is not None:  # the epoch's mean loss so far, as the summary prints it
            progress.update(1)
            progress.set_postfix(loss=f"{loss_sum / count:.3f}", refresh=False)
        if on_batch is not None:
            on_batch(batch)
    return loss_sum / max(count, 1), correct / max(count, 1), int(count)


@torch.inference_mode()
def evaluate(net: nn.Module, batches: Batches, precision: Precision) -> float:
    """Accuracy of ``net`` over ``batches`` in eval mode."""
    net.eval()
    correct = count = 0
    for x, y in batches:
        with precision.autocast():
            correct += (net(x).argmax(1) == y).sum().item()
        count += len(y)
    return correct / max(count, 1)


def _weights_finite(net: nn.Module) -> bool:
    return all(torch.isfinite(p).all().item() for p in net.parameters() if p.requires_grad)


def fit(
    net: nn.Module,
    train_iter: Batches,
    held_out_iter: Batches,
    optimizer: torch.optim.Optimizer,
    num_epochs: int,
    *,
    device: torch.device,
    precision: Precision | None = None,
    label: str = "",
    hparams: dict | None = None,
    on_epoch: Callable[[History], None] | None = None,
    progress: bool = True,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    loss: Loss | None = None,
    on_batch: Callable[[int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    evaluator: Evaluator = evaluate,
    reduce: Reduce | None = None,
) -> History:
    """Train for ``num_epochs`` and evaluate on ``held_out_iter`` after each epoch.

    ``net`` and the batches must already be on ``device``. A non-finite or exploded loss (see
    :func:`train_one_epoch`) stops training and marks the History "diverged"; ``should_stop``
    answering True marks it "stopped", Ctrl-C "interrupted". Either way the epochs completed so
    far are returned, never a NaN. ``loss``, ``scheduler``, ``on_batch`` and ``should_stop`` go
    to :func:`train_one_epoch`; ``evaluator(net, held_out_iter, precision)`` measures the
    held-out accuracy (:func:`evaluate` by default). ``reduce`` goes to :func:`train_one_epoch` for
    data-parallel training (:mod:`d2lhelpers.distributed`); ``should_stop`` must then answer the
    same on every process.
    """
    num_epochs = positive_int("num_epochs", num_epochs)
    precision = precision or choose_precision(device)
    history = History(label, str(device), precision.name, dict(hparams or {}))
    steps = num_epochs * len(train_iter) if hasattr(train_iter, "__len__") else None
    bar = tqdm(total=steps, desc=label or "train", unit="batch", disable=not progress)
    try:
        for epoch in range(1, num_epochs + 1):
            start = time.perf_counter()
            try:
                mean_loss, train_acc, count = train_one_epoch(
                    net, train_iter, optimizer, precision, bar, scheduler,
                    loss=loss, on_batch=on_batch, should_stop=should_stop, reduce=reduce,
                )  # fmt: skip
            except Stopped:
                history.status = "stopped"
                break
            except Diverged as err:
                history.status, history.diverged_at = "diverged", (epoch, err.batch)
                history.diverged_loss = err.loss
                break
            seconds = time.perf_counter() - start
            if not _weights_finite(net):  # the last update blew the weights up
                history.status, history.diverged_at = "diverged", (epoch, len(train_iter))
                break
            held_out_acc = evaluator(net, held_out_iter, precision)
            history.epochs.append(
                EpochStats(epoch, mean_loss, train_acc, held_out_acc, count / seconds, seconds)
            )
            if on_epoch is not None:
                on_epoch(history)
    except KeyboardInterrupt:
        history.status = "interrupted"
    finally:
        bar.close()
    return history
