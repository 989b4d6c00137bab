"""Sweeps for the exercises: one fine-tuned model per setting, tidy records per run and epoch.

A frozen body computes the same features every epoch (its BatchNorm layers are frozen too, see
:func:`~d2lhelpers.models.freeze_body`), so frozen runs compute the features of the training
and test images once and train only the output layer on them. Those features come from the
centre-cropped training images (no random augmentation), so that computing them once is exact.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from .checks import positive_finite, positive_int
from .data import HOTDOG_CLASSES, BatchLoader, decode_folder, epoch_batches
from .finetune import default_weight_decay, fine_tune
from .models import copy_class_row, find_head, freeze_body, make_target_model
from .precision import Precision, choose_precision
from .train import History, default_device, fit
from .workspace import Workspace

HOTDOG_ROW = HOTDOG_CLASSES.index("hotdog")
RECORD_FIELDS = (
    "run", "learning_rate", "head_multiplier", "head_lr", "num_epochs", "freeze_body",
    "init_hotdog_row", "epoch", "train_loss", "train_acc", "test_acc", "seconds", "status",
)  # fmt: skip


@dataclass(frozen=True)
class SweepSetting:
    """One run of a sweep. ``learning_rate`` is the body's; the head gets x ``head_multiplier``."""

    learning_rate: float
    head_multiplier: float = 10.0
    num_epochs: int = 5
    freeze_body: bool = False
    init_hotdog_row: bool = False

    def __post_init__(self) -> None:
        positive_finite("learning_rate", self.learning_rate)
        positive_finite("head_multiplier", self.head_multiplier)
        positive_int("num_epochs", self.num_epochs)
        for name in ("freeze_body", "init_hotdog_row"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}.")


class TensorBatches:
    """Mini-batches of in-memory tensors, reshuffled every epoch from a seeded generator."""

    def __init__(
        self, x: torch.Tensor, y: torch.Tensor, batch_size: int, shuffle: bool, seed: int = 0
    ) -> None:
        if len(x) != len(y):
            raise ValueError(f"x and y differ in length: {len(x)} and {len(y)}.")
        batch_size = positive_int("batch_size", batch_size)
        self.x, self.y, self.batch_size, self.shuffle = x, y, batch_size, shuffle
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return -(-len(self.y) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for index in epoch_batches(
            len(self.y), self.batch_size, self.generator, shuffle=self.shuffle
        ):
            index = index.to(self.x.device)
            yield self.x[index], self.y[index]


def frozen_body_of(net: nn.Module) -> nn.Module:
    """A frozen copy of ``net`` whose output layer is the identity: it returns the features."""
    body = freeze_body(copy.deepcopy(net))
    head = find_head(body)
    setattr(head.parent, head.name, nn.Identity())
    return body


@torch.inference_mode()
def compute_features(
    body: nn.Module, batches: BatchLoader, precision: Precision
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (float32) and labels of every batch, in the loader's order."""
    body.eval()
    features, labels = [], []
    for x, y in batches:
        with precision.autocast():
            features.append(body(x).float())
        labels.append(y)
    return torch.cat(features), torch.cat(labels)


class Sweeper:
    """Runs sweeps on one workspace; keeps the frozen body's features between sweeps."""

    def __init__(
        self,
        workspace: Workspace,
        batch_size: int = 128,
        seed: int = 0,
        device: torch.device | None = None,
    ) -> None:
        batch_size = positive_int("batch_size", batch_size, minimum=2)
        self.workspace, self.batch_size, self.seed = workspace, batch_size, seed
        self.device = device or default_device()
        self.precision = choose_precision(self.device)
        self.source = workspace.source_model()
        self._features: tuple[TensorBatches, TensorBatches] | None = None
        self.feature_seconds: float | None = None  # time spent computing the features once

    def run(
        self,
        settings: Sequence[SweepSetting],
        on_run: Callable[[list[dict]], None] | None = None,
        progress: bool = True,
    ) -> list[dict]:
        """Train one model per setting; returns one record per run and epoch.

        ``on_run`` is called with all records so far after every run. A run whose loss stops
        being finite is recorded as "diverged at epoch e" (its accuracies None, never NaN).
        """
        records: list[dict] = []
        for run, setting in enumerate(tqdm(settings, desc="sweep", disable=not progress)):
            history = self.train(setting)
            records.extend(records_of(run, setting, history))
            if on_run is not None:
                on_run(records)
        return records

    def target_model(self, setting: SweepSetting) -> nn.Module:
        """The target model for ``setting``: same seed, so every run starts from one head."""
        torch.manual_seed(self.seed)
        net = make_target_model(self.source, len(HOTDOG_CLASSES))
        if setting.init_hotdog_row:
            copy_class_row(net, self.source, self.workspace.source_hotdog_class, HOTDOG_ROW)
        return net

    def train(self, setting: SweepSetting) -> History:
        net = self.target_model(setting)
        if setting.freeze_body:
            return self.train_head(find_head(net).layer, setting)
        return fine_tune(
            net,
            setting.learning_rate,
            self.workspace,
            batch_size=self.batch_size,
            num_epochs=setting.num_epochs,
            head_multiplier=setting.head_multiplier,
            seed=self.seed,
            device=self.device,
            progress=False,
        )

    def train_head(self, head: nn.Linear, setting: SweepSetting) -> History:
        """Train only ``head`` on the cached features of the frozen source body."""
        train_batches, test_batches = self.features()
        head = head.to(self.device)
        head_lr = setting.learning_rate * setting.head_multiplier
        optimizer = torch.optim.SGD(
            head.parameters(), lr=head_lr, weight_decay=default_weight_decay(self.batch_size)
        )
        return fit(
            head,
            train_batches,
            test_batches,
            optimizer,
            setting.num_epochs,
            device=self.device,
            precision=choose_precision(self.device, "fp32"),
            hparams=asdict(setting),
            progress=False,
        )

    def features(self) -> tuple[TensorBatches, TensorBatches]:
        """Training and test features of the frozen source body, computed on first use."""
        if self._features is None:
            start = time.perf_counter()
            body = frozen_body_of(self.source).to(self.device, memory_format=torch.channels_last)
            recipe, root = self.workspace.recipe, self.workspace.root
            batches = []
            for split, shuffle in (("train", True), ("test", False)):
                images = decode_folder(
                    root / split, recipe.stored_size, HOTDOG_CLASSES, self.workspace.cache_dir
                )
                loader = BatchLoader(images, 256, recipe, train=False, device=self.device)
                x, y = compute_features(body, loader, self.precision)
                batches.append(TensorBatches(x, y, self.batch_size, shuffle, self.seed))
            self._features = (batches[0], batches[1])
            self.feature_seconds = time.perf_counter() - start
        return self._features


def records_of(run: int, setting: SweepSetting, history: History) -> list[dict]:
    """Tidy records of one run: one per completed epoch, plus one for a diverged epoch.

    ``seconds`` is the epoch's training time (its evaluation excluded), None for a diverged one.
    """
    base = {
        "run": run,
        **asdict(setting),
        "head_lr": setting.learning_rate * setting.head_multiplier,
    }
    status = history.status_text()
    rows = [
        {**base, "epoch": e.epoch, "train_loss": e.train_loss, "train_acc": e.train_acc,
         "test_acc": e.test_acc, "seconds": e.seconds, "status": status}
        for e in history.epochs
    ]  # fmt: skip
    if history.status == "diverged":
        rows.append(
            {**base, "epoch": history.diverged_at[0], "train_loss": None, "train_acc": None,
             "test_acc": None, "seconds": None, "status": status}
        )  # fmt: skip
    return [{key: row[key] for key in RECORD_FIELDS} for row in rows]


def records_by_run(records: Sequence[dict]) -> list[list[dict]]:
    """The records grouped by run, runs in order, each run's records in their order."""
    runs: dict[int, list[dict]] = {}
    for record in records:
        runs.setdefault(record["run"], []).append(record)
    return [runs[run] for run in sorted(runs)]


def final_records(records: Sequence[dict]) -> list[dict]:
    """The last record of every run (its final epoch, or the epoch where it diverged)."""
    return [run[-1] for run in records_by_run(records)]
