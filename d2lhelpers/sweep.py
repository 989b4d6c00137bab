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

from .checks import int_at_least, non_negative_int, positive_finite, positive_int
from .data import HOTDOG_CLASSES, BatchLoader, batches_per_epoch, epoch_batches
from .finetune import WEIGHT_DECAY, train_fine_tuning
from .models import copy_class_row, find_head, freeze_body, make_target_model
from .precision import Precision, choose_precision
from .run import Run
from .seeds import spread
from .train import History, default_device, evaluate, fit
from .workspace import Workspace

HOTDOG_ROW = HOTDOG_CLASSES.index("hotdog")
RECORD_FIELDS = (
    "run", "seed", "learning_rate", "head_multiplier", "head_lr", "num_epochs", "freeze_body",
    "augment", "init_hotdog_row", "epoch", "train_loss", "train_acc", "val_acc", "test_acc",
    "seconds", "status",
)  # fmt: skip
SETTING_FIELDS = (
    "learning_rate",
    "head_multiplier",
    "num_epochs",
    "freeze_body",
    "augment",
    "init_hotdog_row",
)  # what a setting is, without its seed: runs that differ only in seed are repeats
UNFINISHED = ("stopped", "interrupted")  # statuses of runs cut short by the learner: no result


@dataclass(frozen=True)
class SweepSetting:
    """One run of a sweep. ``learning_rate`` is the body's; the head gets x ``head_multiplier``.

    ``seed`` draws the new output layer's weights and the batches' order and augmentation.
    ``augment=False`` trains on the test transform; a frozen body always does (its features are
    computed once). ``init_hotdog_row`` starts the hot-dog row of the output layer from the
    source model's hot-dog class, and the other row from its negative.
    """

    learning_rate: float
    head_multiplier: float = 10.0
    num_epochs: int = 5
    freeze_body: bool = False
    init_hotdog_row: bool = False
    augment: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        positive_finite("learning_rate", self.learning_rate)
        positive_finite("head_multiplier", self.head_multiplier)
        positive_int("num_epochs", self.num_epochs)
        non_negative_int("seed", self.seed)
        for name in ("freeze_body", "init_hotdog_row", "augment"):
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
        return batches_per_epoch(len(self.y), self.batch_size)

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


Progress = Callable[[int, int], None]  # (batches done in this run, batches in this run)


class Sweeper:
    """Runs sweeps on one workspace: every run trains on the training images less a validation
    split, is evaluated on that split after every epoch, and on the test set once, at its end.

    Choosing settings by ``val_acc`` and reporting the chosen run's ``test_acc`` keeps the test
    set out of the choice. The frozen body's features are kept between sweeps.
    """

    def __init__(
        self,
        workspace: Workspace,
        batch_size: int = 128,
        validation_fraction: float = 0.2,
        device: torch.device | None = None,
    ) -> None:
        batch_size = int_at_least("batch_size", batch_size, 2)
        self.workspace, self.batch_size = workspace, batch_size
        self.device = device or default_device()
        self.precision = choose_precision(self.device)
        self.source = workspace.source_model()
        full = workspace.data()
        self.data = full.split_validation(validation_fraction)  # train less validation, validation
        self.test_images = full.held_out
        self._features: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None
        self.feature_seconds: float | None = None  # time spent computing the features once
        self.runs_started = 0  # runs of earlier sweeps: the next sweep numbers from here

    @property
    def features_ready(self) -> bool:
        """Whether the frozen body's features are computed (the first frozen run computes them)."""
        return self._features is not None

    def run(
        self,
        settings: Sequence[SweepSetting],
        on_run: Callable[[list[dict]], None] | None = None,
        progress: bool = True,
        on_progress: Progress | None = None,
        should_stop: Callable[[], bool] | None = None,
        first_run: int | None = None,
    ) -> list[dict]:
        """Train one model per setting; returns one record per run and epoch.

        Runs are numbered from ``first_run``, by default from :attr:`runs_started`, so that the
        records of several sweeps on one Sweeper can be put together (a table, a figure) with
        every run told apart.

        ``on_run`` is called with all records so far after every run; ``on_progress`` after
        every batch of a run. ``should_stop`` is asked between batches: when it answers True the
        run ends, is recorded as "stopped", and no later setting runs; a run interrupted by
        Ctrl-C (the kernel's interrupt) is recorded as "interrupted" and ends the sweep too. A
        run whose loss stops being finite or explodes is recorded as "diverged at epoch e" (its
        accuracies None).
        """
        records: list[dict] = []
        start = self.runs_started if first_run is None else first_run
        for run, setting in enumerate(tqdm(settings, desc="sweep", disable=not progress), start):
            self.runs_started = max(self.runs_started, run + 1)
            history, test_acc = self.train(setting, on_progress, should_stop)
            records.extend(records_of(run, setting, history, test_acc))
            if on_run is not None:
                on_run(records)
            if history.status in ("stopped", "interrupted"):
                break
        return records

    def target_model(self, setting: SweepSetting) -> nn.Module:
        """The target model for ``setting``, its new output layer drawn from ``setting.seed``
        (the global random state is left as it was)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(setting.seed)
            net = make_target_model(self.source, len(HOTDOG_CLASSES))
        if setting.init_hotdog_row:
            copy_class_row(
                net, self.source, self.workspace.source_hotdog_class, HOTDOG_ROW,
                other_row_negated=True,
            )  # fmt: skip
        return net

    def train(
        self,
        setting: SweepSetting,
        on_progress: Progress | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> tuple[History, float | None]:
        """Train one run; returns its History (validation accuracy per epoch) and its test
        accuracy (None unless it ended "ok")."""
        net = self.target_model(setting)
        if setting.freeze_body:
            return self.train_head(find_head(net).layer, setting, on_progress, should_stop)
        batches = batches_per_epoch(len(self.data.train), self.batch_size, drop_single=True)
        run = Run(
            seed=setting.seed,
            augment=setting.augment,
            device=self.device,
            on_batch=_per_run(on_progress, setting.num_epochs, batches),
            should_stop=should_stop,
        )
        history = train_fine_tuning(
            net,
            self.data,
            setting.learning_rate,
            self.batch_size,
            setting.num_epochs,
            head_multiplier=setting.head_multiplier,
            run=run,
        )
        return history, self.test_accuracy(net) if history.status == "ok" else None

    def test_accuracy(self, net: nn.Module) -> float:
        """``net``'s accuracy on the test set (centre crops), measured in evaluation mode."""
        test = BatchLoader(
            self.test_images, 2 * self.batch_size, self.data.recipe, train=False,
            device=self.device,
        )  # fmt: skip
        return evaluate(net.to(self.device), test, self.precision)

    def train_head(
        self,
        head: nn.Linear,
        setting: SweepSetting,
        on_progress: Progress | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> tuple[History, float | None]:
        """Train only ``head`` on the cached features of the frozen source body."""
        features = self.features()
        train = TensorBatches(*features["train"], self.batch_size, True, setting.seed)
        validation = TensorBatches(*features["validation"], 2 * self.batch_size, False)
        test = TensorBatches(*features["test"], 2 * self.batch_size, False)
        head = head.to(self.device)
        head_lr = setting.learning_rate * setting.head_multiplier
        optimizer = torch.optim.SGD(
            head.parameters(), lr=head_lr, weight_decay=WEIGHT_DECAY / self.batch_size
        )
        fp32 = choose_precision(self.device, "fp32")
        history = fit(
            head, train, validation, optimizer, setting.num_epochs, device=self.device,
            precision=fp32, hparams=asdict(setting), progress=False, should_stop=should_stop,
            on_batch=_per_run(on_progress, setting.num_epochs, len(train)),
        )  # fmt: skip
        return history, evaluate(head, test, fp32) if history.status == "ok" else None

    def features(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Features and labels of the frozen source body for the training, validation and test
        images (centre crops), computed on first use."""
        if self._features is None:
            start = time.perf_counter()
            body = frozen_body_of(self.source).to(self.device, memory_format=torch.channels_last)
            recipe, side = self.data.recipe, self.data.recipe.resize_side
            splits = {
                "train": self.data.train.resized(side),
                "validation": self.data.held_out,
                "test": self.test_images,
            }
            self._features = {
                name: compute_features(
                    body,
                    BatchLoader(images, 256, recipe, train=False, device=self.device),
                    self.precision,
                )
                for name, images in splits.items()
            }
            self.feature_seconds = time.perf_counter() - start
        return self._features


def _per_run(on_progress: Progress | None, epochs: int, batches: int):
    """``fit``'s per-batch callback as (batches done in the run, batches in the run)."""
    if on_progress is None:
        return None
    done = iter(range(1, epochs * batches + 1))
    return lambda _batch: on_progress(next(done, epochs * batches), epochs * batches)


def records_of(
    run: int, setting: SweepSetting, history: History, test_acc: float | None = None
) -> list[dict]:
    """Tidy records of one run: one per completed epoch, plus one for the epoch where it
    diverged, was stopped or was interrupted (its numbers None), so that a run's last record
    tells how it ended and an unfinished run is never read as a result.

    ``val_acc`` is the validation accuracy after the epoch; ``test_acc`` (measured once, at the
    end of a run that ended "ok") is on the last record only. ``seconds`` is the epoch's
    training time (its evaluation excluded).
    """
    base = {
        "run": run,
        **asdict(setting),
        "augment": setting.augment and not setting.freeze_body,  # frozen: features of centre crops
        "head_lr": setting.learning_rate * setting.head_multiplier,
    }
    status = history.status_text()
    rows = [
        {**base, "epoch": e.epoch, "train_loss": e.train_loss, "train_acc": e.train_acc,
         "val_acc": e.held_out_acc, "test_acc": None, "seconds": e.seconds, "status": status}
        for e in history.epochs
    ]  # fmt: skip
    if history.status in ("diverged", "stopped", "interrupted"):
        epoch = history.diverged_at[0] if history.diverged_at else len(history.epochs) + 1
        if epoch <= setting.num_epochs:
            rows.append(
                {**base, "epoch": epoch, "train_loss": None, "train_acc": None, "val_acc": None,
                 "test_acc": None, "seconds": None, "status": status}
            )  # fmt: skip
    if rows and test_acc is not None:
        rows[-1]["test_acc"] = test_acc
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


def setting_of(record: dict) -> tuple:
    """The setting a record belongs to, without its seed (see :data:`SETTING_FIELDS`)."""
    return tuple(record[name] for name in SETTING_FIELDS)


def seed_summary(records: Sequence[dict], key: str = "val_acc") -> list[dict]:
    """One row per setting over its seeds' final records: the setting's fields, ``seeds``
    (every run's), ``mean``, ``low`` and ``high`` of ``key`` (over the runs that have it),
    ``failed`` (how many runs diverged or stopped) and ``finished`` (how many were not cut
    short, see :data:`UNFINISHED`). Settings in order of their first run."""
    groups: dict[tuple, list[dict]] = {}
    for record in final_records(records):
        groups.setdefault(setting_of(record), []).append(record)
    rows = []
    for group in groups.values():
        found = spread(r[key] for r in group)
        rows.append({
            **{name: group[0][name] for name in SETTING_FIELDS},
            "head_lr": group[0]["head_lr"],
            "seeds": [r["seed"] for r in group],
            "spread": found,
            "mean": found and found.mean,
            "low": found and found.low,
            "high": found and found.high,
            "failed": sum(r["status"] != "ok" for r in group),
            "finished": sum(r["status"] not in UNFINISHED for r in group),
            "statuses": [r["status"] for r in group],
        })  # fmt: skip
    return rows
