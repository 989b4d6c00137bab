"""After training: a model's predictions on a decoded split and its mistakes, as numbers.

:func:`predict` runs a model over a :class:`~d2lhelpers.data.DecodedImages` split with the test
transform (the centre crop of :class:`~d2lhelpers.data.BatchLoader`), in eval mode and under the
device's autocast, and keeps every example's class probabilities and loss. The summaries
(:func:`confusion_matrix`, :func:`per_class_accuracy`, :func:`top_losses`,
:func:`mistake_counts`) work on those :class:`Predictions`, and so do the book's figures
(:mod:`d2lhelpers.book.predict_plots`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .checks import positive_int
from .data import BatchLoader, DecodedImages, Recipe
from .precision import choose_precision


@dataclass
class Predictions:
    """A model's outputs on N examples of C classes, all on the CPU.

    ``probabilities`` (N, C) float32 softmax outputs; ``labels`` (N,) the true classes;
    ``predicted`` (N,) the most probable classes; ``losses`` (N,) each example's cross-entropy.
    """

    probabilities: torch.Tensor
    labels: torch.Tensor
    predicted: torch.Tensor
    losses: torch.Tensor
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def correct(self) -> torch.Tensor:
        """(N,) bool: the prediction is the true class."""
        return self.predicted == self.labels

    @property
    def accuracy(self) -> float:
        return self.correct.float().mean().item() if len(self) else float("nan")

    @property
    def confidence(self) -> torch.Tensor:
        """(N,) the probability of each predicted class."""
        return self.probabilities.gather(1, self.predicted[:, None]).squeeze(1)


def _net_device(net: nn.Module, device: torch.device | str | None) -> torch.device:
    """``device``, or the device of the net's parameters; ValueError when they differ."""
    own = next(net.parameters()).device
    chosen = own if device is None else torch.device(device)
    if chosen.type != own.type or (chosen.index is not None and chosen != own):
        raise ValueError(f"The net is on {own}, not on {chosen}: move it first (net.to(device)).")
    return chosen


@contextmanager
def eval_mode(net: nn.Module) -> Iterator[nn.Module]:
    """``net`` in eval mode inside; every module's own training mode restored on leaving."""
    modes = [(module, module.training) for module in net.modules()]
    net.eval()
    try:
        yield net
    finally:
        for module, training in modes:
            module.training = training


@torch.inference_mode()
def logits_of(
    net: nn.Module,
    images: DecodedImages,
    recipe: Recipe,
    device: torch.device | str | None = None,
    batch_size: int = 256,
) -> torch.Tensor:
    """(N, C) float32 logits of ``net`` for ``images`` with the test transform, on the CPU.

    Images stored at another size than ``recipe.resize_side`` (a training split) are first
    squashed to it, as the test images are. ``net`` runs in eval mode under the device's
    autocast; every module's training mode is restored afterwards. ``device`` (default: the
    net's) is where the batches are prepared; the net must already be there.
    """
    batch_size = positive_int("batch_size", batch_size)
    device = _net_device(net, device)
    loader = BatchLoader(
        images.resized(recipe.resize_side), batch_size, recipe, train=False, device=device
    )
    precision = choose_precision(device)
    out = []
    with eval_mode(net):
        for x, _ in loader:
            with precision.autocast():
                out.append(net(x).float().cpu())
    return torch.cat(out) if out else torch.empty(0, len(images.classes))


def predict(
    net: nn.Module,
    images: DecodedImages,
    recipe: Recipe,
    device: torch.device | str | None = None,
    batch_size: int = 256,
) -> Predictions:
    """The :class:`Predictions` of ``net`` on ``images`` (see :func:`logits_of`)."""
    logits = logits_of(net, images, recipe, device, batch_size)
    if logits.shape[1] != len(images.classes):
        raise ValueError(
            f"The net has {logits.shape[1]} outputs but the images have "
            f"{len(images.classes)} classes {images.classes}."
        )
    labels = images.labels.to(torch.int64).cpu()
    return Predictions(
        probabilities=logits.softmax(1),
        labels=labels,
        predicted=logits.argmax(1),
        losses=F.cross_entropy(logits, labels, reduction="none"),
        classes=tuple(images.classes),
    )


def confusion_matrix(pred: Predictions) -> torch.Tensor:
    """(C, C) int64 counts: row = true class, column = predicted class."""
    c = len(pred.classes)
    counts = torch.bincount(pred.labels * c + pred.predicted, minlength=c * c)
    return counts.reshape(c, c)


def per_class_accuracy(pred: Predictions) -> dict[str, float]:
    """Accuracy within each true class (NaN for a class without examples)."""
    matrix = confusion_matrix(pred).double()
    totals = matrix.sum(1)
    return {
        name: (matrix[i, i] / totals[i]).item() if totals[i] else float("nan")
        for i, name in enumerate(pred.classes)
    }


def top_losses(pred: Predictions, k: int, *, mistakes_only: bool = False) -> torch.Tensor:
    """Indices of the ``k`` examples of highest loss, highest first; with ``mistakes_only``,
    of the misclassified ones only (fewer when there are fewer mistakes)."""
    k = positive_int("k", k)
    candidates = (
        torch.nonzero(~pred.correct).flatten() if mistakes_only else torch.arange(len(pred))
    )
    order = torch.argsort(pred.losses[candidates], descending=True, stable=True)
    return candidates[order[:k]]


def mistake_counts(pred: Predictions) -> dict[tuple[str, str], int]:
    """How many examples of each true class were predicted as each other class:
    ``{(true, predicted): count}``, every pair of different classes, in class order."""
    matrix = confusion_matrix(pred)
    return {
        (t, p): int(matrix[i, j])
        for i, t in enumerate(pred.classes)
        for j, p in enumerate(pred.classes)
        if i != j
    }


def spread_indices(n: int, total: int) -> torch.Tensor:
    """``n`` indices spread evenly over ``0 .. total - 1`` (all of them when ``total <= n``);
    a split sorted by class then shows every class."""
    if total <= n:
        return torch.arange(total)
    return torch.linspace(0, total - 1, n).round().long()
