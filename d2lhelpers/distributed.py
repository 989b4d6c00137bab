"""Data-parallel training on several processes (one per GPU, on one machine or several), as
``torchrun`` starts them, with ``DistributedDataParallel`` (DDP) and the chapter's recipe.

Each process trains a copy of the model on its *share* of every batch; DDP averages the
gradients over the processes during the backward pass, so every copy takes the same step.
:func:`~d2lhelpers.finetune.train_fine_tuning` does it all with ``parallel=start()``: the same
recipe and the same loop as on one device (``python -m d2lhelpers.cli`` runs it from a shell).

**The steps match one device with the same (global) batch size B.** With P processes each takes
``B / P`` examples of every batch (B must be a multiple of P), at the same learning rate:

* *Order.* Every process draws the epoch's permutation from its own copy of the seeded
  generator, so all draw the same one; it is cut into batches of B exactly as on one device
  (:func:`~d2lhelpers.data.epoch_batches`, a trailing batch of one dropped), and each batch
  into P contiguous shares (:func:`share_sizes`): every image is used once per epoch, by one
  process. Without augmentation (``augment=False``) the batches are one device's, image for
  image. With it, each process draws the random crops and flips of its own share from its own
  generator: the same distribution, not one device's exact crops.
* *Loss and gradient.* A process with ``n`` of a batch's examples steps on its mean loss times
  ``n * P / full``, ``full`` being the epoch's full (global) batch size (the ``reduce`` hook of
  :func:`~d2lhelpers.train.train_one_epoch` sums the shares' sizes); DDP's average over the P
  processes is then the gradient of the whole batch's loss sum over ``full``, which is what one
  device steps on: the mean for a full batch, and for a short last batch a step in proportion
  to its size. Uneven shares of a short last batch (sizes differing by one, or pairs and empty
  shares when it has fewer than two examples per process) therefore step exactly as one device
  does; an empty share contributes a zero gradient. SGD's weight decay is applied by every
  process to identical weights, so the copies stay identical.
* *BatchNorm.* By default each process normalises with the statistics of its own share (B / P
  examples), which is *not* one device's BatchNorm over B: the steps then differ a little (and
  the running statistics of rank 0 are broadcast to the others before every forward pass and
  every evaluation, so all evaluate and save the same model). ``sync_batchnorm`` (CUDA only)
  uses ``SyncBatchNorm``, the statistics of the whole batch; :func:`freeze_batchnorm` (the
  source model's statistics, fixed) makes the steps independent of how a batch is split.
  Either way, the remaining differences from one device are float rounding: the gradient is
  summed in another order (per share, then over processes).

**All-reduced** (summed over the processes): every batch's loss sum, size and correct count
(so the progress bar, the divergence check and the History's training loss and accuracy are
the whole batch's, the same on every process), the gradients (DDP), and the evaluation's
correct and total counts: the held-out images are split into P contiguous parts, each
evaluated by one process, so every image is counted exactly once.

**Rank 0** alone shows the progress bar and the result lines, draws live figures, writes the
History JSON and saves the model (:mod:`d2lhelpers.cli`); every process computes the same History.

**Failures end the job in bounded time.** A process that raises or dies ends with a non-zero
exit status; ``torchrun`` then stops the other processes on its machine at once (it checks its
workers every ``--monitor-interval`` seconds, 0.1 by default), and the processes on other
machines find the peer gone in their next collective operation (a closed connection) or, at
the latest, when it times out after ``timeout`` seconds (:data:`DEFAULT_TIMEOUT_S`, the CLI's
``--timeout``), raise and exit (the command line says so in one line, also when gloo or
NCCL raises in DDP's all-reduce of the backward pass). The same timeout bounds a process that
hangs. NCCL enforces it through its watchdog (``TORCH_NCCL_ASYNC_ERROR_HANDLING``, on by
default), gloo in every operation. A process that is stopped (SIGSTOP) would ignore torchrun's
SIGTERM until torchrun kills it after its grace period (30 s): the processes on its machine
kill it once it has been stopped for longer than ``timeout`` (:mod:`d2lhelpers.processes`, on
Linux), so that job too ends within about ``timeout``. Collective operations happen only
inside training and evaluation, where the processes keep in step; before training, every
process prepares its data on its own (in the data folder's locks), so a first run that builds
the stand-in on one machine only needs a longer timeout (or a run alone first).

Backends: NCCL on CUDA (one GPU per process, ``cuda:LOCAL_RANK``), gloo on the CPU. The
frozen-feature sweep (:mod:`d2lhelpers.sweep`) stays single-process.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .checks import non_negative_int, positive_finite, positive_int
from .data import BatchLoader, batches_per_epoch, epoch_batches
from .precision import Precision
from .processes import ProcessId, StoppedPeerWatch, on_this_machine, this_process
from .train import evaluate

DEFAULT_TIMEOUT_S = 300.0  # a collective operation waits at most this long for the others
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
_watch: StoppedPeerWatch | None = None  # this process's watch of the job's stopped processes

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "HeldOutShare",
    "Parallel",
    "ShardedBatches",
    "share_sizes",
    "start",
    "stop",
    "under_torchrun",
]


def under_torchrun() -> bool:
    """True when this process was started by ``torchrun`` (its environment variables are set)."""
    return all(os.environ.get(name) for name in TORCHRUN_VARIABLES)


def share_sizes(n: int, processes: int, most: int) -> list[int]:
    """How many of a batch's ``n`` examples each of ``processes`` takes, in rank order (shares
    are contiguous), none more than ``most``.

    As even as possible (sizes differing by at most one) while that gives every process two or
    more. Below two per process, the first processes take pairs (the last pair takes an odd
    example too, when ``most`` allows three) and the others none: BatchNorm cannot normalise a
    lone example where a feature map is 1 x 1 (ResNet-18's last block at 32 px inputs).
    """
    n, processes = non_negative_int("n", n), positive_int("processes", processes)
    base, extra = divmod(n, processes)
    if base >= 2 or n < 2:
        sizes = [base + (rank < extra) for rank in range(processes)]
    else:
        pairs, odd = divmod(n, 2)
        sizes = [2] * pairs + [0] * (processes - pairs)
        if odd:
            sizes[pairs - 1 if most >= 3 else pairs] += 1
    if max(sizes) > most:
        raise ValueError(f"{n} examples do not fit {processes} shares of at most {most}.")
    return sizes


class ShardedBatches:
    """This process's shares of the training batches of ``loader``, the loader of one device.

    Every epoch is one device's: a permutation of the images from a copy of ``loader``'s seeded
    generator (the same on every process), cut into batches of ``loader.batch_size``; each
    process prepares only its share of each batch (:func:`share_sizes`) with ``local``, a loader
    of the same images with the per-process batch size (and its own generator for the random
    crops). ``len()`` is the number of whole batches, the same on every process.
    """

    def __init__(self, loader: BatchLoader, local: BatchLoader, rank: int, processes: int):
        self.loader, self.local, self.rank, self.processes = loader, local, rank, processes
        self.generator = torch.Generator()
        self.generator.set_state(loader.generator.get_state())  # the same order everywhere

    def __len__(self) -> int:
        return batches_per_epoch(len(self.loader.images), self.loader.batch_size, drop_single=True)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n, batch_size = len(self.loader.images), self.loader.batch_size
        for index in epoch_batches(n, batch_size, self.generator, drop_single=True):
            sizes = share_sizes(len(index), self.processes, self.local.batch_size)
            yield self.local.batch(index.split(sizes)[self.rank])


class HeldOutShare:
    """This process's part of the held-out images: a contiguous ``1 / processes`` of them (sizes
    differing by at most one), in batches of ``loader.batch_size``."""

    def __init__(self, loader: BatchLoader, rank: int, processes: int) -> None:
        self.loader = loader
        self.index = torch.arange(len(loader.images)).tensor_split(processes)[rank]

    def __len__(self) -> int:
        return batches_per_epoch(len(self.index), self.loader.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for part in self.index.split(self.loader.batch_size):
            yield self.loader.batch(part)


@dataclass(frozen=True)
class Parallel:
    """This process in a data-parallel job (see the module docstring); :func:`start` makes it.

    ``rank`` counts the processes of the job from 0, ``processes`` is their number (torchrun's
    world size), ``device`` this process's device.
    """

    rank: int
    processes: int
    device: torch.device
    sync_batchnorm: bool = False

    def end_stopped_peers(self) -> list[int]:
        """Kill the processes of the job stopped on this machine now (after a collective
        operation timed out waiting for them, see :mod:`d2lhelpers.processes`); return the
        ranks of all those this process has killed."""
        return _watch.end_stopped() if _watch is not None else []

    @property
    def is_main(self) -> bool:
        """True on rank 0, the process that reports and saves."""
        return self.rank == 0

    def check_batch_size(self, batch_size: int) -> int:
        """``batch_size`` (the global one) when it is a multiple of the number of processes,
        with at least two examples per process; ValueError otherwise."""
        if batch_size % self.processes or batch_size < 2 * self.processes:
            raise ValueError(
                f"batch_size {batch_size} must be a multiple of the number of processes "
                f"({self.processes}), with at least 2 examples per process."
            )
        return batch_size

    def shard(
        self, net: nn.Module, train_iter: BatchLoader, held_out_iter: BatchLoader
    ) -> tuple[DistributedDataParallel, ShardedBatches, HeldOutShare]:
        """``net`` wrapped in DDP (it shares ``net``'s parameters, so an optimizer built on
        ``net`` steps the wrapped model), and this process's shares of one device's loaders.

        ``train_iter``'s batch size is the global one; it must be a multiple of the number of
        processes, with at least two examples per process.
        """
        share = self.check_batch_size(train_iter.batch_size) // self.processes
        seed = int(np.random.SeedSequence([train_iter.generator.initial_seed(), self.rank])
                   .generate_state(1)[0])  # fmt: skip
        local = BatchLoader(
            train_iter.images, share, train_iter.recipe, train=True, augment=train_iter.augment,
            device=train_iter.device, seed=seed, channels_last=train_iter.channels_last,
        )  # fmt: skip
        held_out = BatchLoader(
            held_out_iter.images, max(1, held_out_iter.batch_size // self.processes),
            held_out_iter.recipe,
            train=False, device=held_out_iter.device, channels_last=held_out_iter.channels_last,
        )  # fmt: skip
        if self.sync_batchnorm:
            net = nn.SyncBatchNorm.convert_sync_batchnorm(net)  # keeps the same parameters
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        wrapped = DistributedDataParallel(net, device_ids=device_ids)
        return (
            wrapped,
            ShardedBatches(train_iter, local, self.rank, self.processes),
            HeldOutShare(held_out, self.rank, self.processes),
        )

    def reduce(self, values: torch.Tensor) -> torch.Tensor:
        """``values`` summed over the processes (every process gets the sum), on the CPU."""
        summed = values.to(self.device, copy=True)  # NCCL reduces CUDA tensors only
        dist.all_reduce(summed)
        return summed.cpu()

    def broadcast_buffers(self, net: nn.Module) -> None:
        """Give every process rank 0's buffers (BatchNorm's running statistics)."""
        for buffer in net.buffers():
            dist.broadcast(buffer, src=0)

    def evaluate(self, net: nn.Module, batches: HeldOutShare, precision: Precision) -> float:
        """The accuracy over all the held-out images, each evaluated by one process: every
        process evaluates its part with rank 0's buffers, and the correct and total counts are
        summed over the processes."""
        module = net.module if isinstance(net, DistributedDataParallel) else net
        self.broadcast_buffers(module)
        count = len(batches.index)
        correct = round(evaluate(module, batches, precision) * count)  # no collective inside
        total_correct, total = self.reduce(torch.tensor([correct, count], dtype=torch.float64))
        return (total_correct / max(total, 1)).item()


def start(
    *,
    device: str | torch.device | None = None,
    sync_batchnorm: bool = False,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> Parallel:
    """Join the job that ``torchrun`` started this process in (its environment variables name
    the rank, the number of processes and where to meet) and return this process's
    :class:`Parallel`.

    ``device`` defaults to ``cuda:LOCAL_RANK`` where CUDA is available (backend NCCL), else the
    CPU (backend gloo). ``sync_batchnorm`` needs CUDA. ``timeout`` (seconds) bounds every
    collective operation, and so how long a process waits for one that failed or hangs.
    """
    missing = [name for name in TORCHRUN_VARIABLES if not os.environ.get(name)]
    if missing:
        raise RuntimeError(
            f"Not started by torchrun ({', '.join(missing)} unset): run "
            "`torchrun --nproc_per_node=N -m d2lhelpers.cli ...`, or train without parallel."
        )
    timeout = positive_finite("timeout", timeout)
    local_rank = int(os.environ["LOCAL_RANK"])
    if device is None:
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda":
        if device.index is None:
            device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise ValueError(f"Data-parallel training runs on CUDA or the CPU, not {device.type}.")
    if sync_batchnorm and device.type != "cuda":
        raise ValueError(
            "SyncBatchNorm needs CUDA; on the CPU each process normalises its own share."
        )
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout))
    rank, processes = dist.get_rank(), dist.get_world_size()
    _watch_peers(rank, processes, timeout)
    return Parallel(rank, processes, device, sync_batchnorm)


def _watch_peers(rank: int, processes: int, timeout: float) -> None:
    """Learn who the other processes are, and watch those on this machine: one stopped for
    longer than ``timeout`` is killed (:class:`~d2lhelpers.processes.StoppedPeerWatch`)."""
    global _watch
    everyone: list[ProcessId | None] = [None] * processes
    dist.all_gather_object(everyone, this_process())
    peers = {r: p for r, p in enumerate(everyone) if r != rank and p and on_this_machine(p)}
    _close_watch()
    _watch = StoppedPeerWatch(peers, after=timeout) if peers else None


def _close_watch() -> None:
    global _watch
    if _watch is not None:
        _watch.close()
        _watch = None


def stop() -> None:
    """Leave the job (destroy the process group, end the watch of its stopped processes), if
    this process joined one."""
    _close_watch()
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
