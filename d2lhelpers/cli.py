"""The chapter's recipe from a shell: fine-tune (or train from scratch) and save the results,
alone or on several processes under ``torchrun`` (see :mod:`d2lhelpers.distributed`).

One process::

    python -m d2lhelpers.cli --data standin --save model.pt --history-json history.json

Two GPUs (or two CPU processes) of one machine, the same steps as one device with the same
``--batch-size``::

    torchrun --standalone --nproc_per_node=2 -m d2lhelpers.cli --data real --save model.pt

Two machines with 8 GPUs each (the same command on both; HOST is the first machine)::

    torchrun --nnodes=2 --nproc_per_node=8 --rdzv-backend=c10d --rdzv-endpoint=HOST:29500 \\
        -m d2lhelpers.cli --data real --save model.pt

Run ``python -m d2lhelpers.cli --help`` for the options. Installed, the package also has it as the
command ``d2lhelpers-train`` (under torchrun: ``torchrun --no-python ... d2lhelpers-train ...``).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.elastic.multiprocessing.errors import record
from torchvision.models import resnet18

from .chapter import chapter_settings
from .checkpoint import save_model
from .checks import int_at_least, non_negative_int, one_line, positive_finite, positive_int
from .data import HotdogData
from .distributed import DEFAULT_TIMEOUT_S, Parallel, start, stop, under_torchrun
from .fileutil import display_path, is_writable
from .finetune import train_fine_tuning
from .models import freeze_batchnorm, make_target_model
from .run import Run, print_epoch
from .train import History, default_device
from .workspace import Workspace, folder_workspace, prepare

DESCRIPTION = """\
Fine-tune ResNet-18 on the hot dog data with the chapter's recipe (train_fine_tuning), or train
it from scratch (--scratch), alone or under torchrun on several processes: GPUs (NCCL), or CPU
processes (gloo) without CUDA. Under torchrun, --batch-size is the global batch: each of the P
processes takes batch-size / P examples of every batch at the same learning rate, which gives
the steps of one device with that batch (BatchNorm aside: see --batchnorm; with augmentation,
each process draws its own crops). Rank 0 alone prints, writes --history-json and --save.
Defaults are the chapter's settings for the data (d2lhelpers.chapter; $D2LHELPERS_SHORT_RUN=1
shortens them to one epoch)."""

EPILOG = """\
examples:
  python -m d2lhelpers.cli --data standin --history-json history.json
  torchrun --standalone --nproc_per_node=2 -m d2lhelpers.cli --data real --save model.pt
  torchrun --nnodes=2 --nproc_per_node=8 --rdzv-backend=c10d --rdzv-endpoint=HOST:29500 \\
      -m d2lhelpers.cli --data real --save model.pt     (the same command on every machine)

A process that fails or hangs ends the job: torchrun stops the other processes of its machine
at once, and those of other machines stop at their next collective operation, after --timeout
seconds at the latest, each saying so in one line. A process stopped by a signal (SIGSTOP) is
killed by the processes of its machine once it has been stopped for --timeout seconds.
Exit status: 0 when training ended normally, 1 when it diverged, was stopped or failed, 2 when
an option, an output path or the data was refused (in one line, before training), 130 when
interrupted."""

SCRATCH_SOURCE = "none (trained from scratch)"
PROG = "python -m d2lhelpers.cli"


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, without the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (--help lists the options)\n")


def _checked(check: Callable[[str, Any], Any], convert: type, name: str) -> Callable[[str], Any]:
    """An argparse type: the text converted, then checked as the library checks ``name``."""

    def parse(text: str) -> Any:
        try:
            return check(name, convert(text))
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    return parse


def _fail(message: str) -> NoReturn:
    """End the command with ``message`` on one line (exit status 2), before any training."""
    print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr)
    raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    """The command line's options (see ``--help``)."""
    parser = _Parser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data = parser.add_argument_group("data")
    data.add_argument(
        "--data",
        choices=("auto", "real", "standin"),
        default=None,
        help="real hot dog photos and ImageNet weights, or the offline stand-in "
        "(default: $D2LHELPERS_DATA_SOURCE, else auto: real when reachable)",
    )
    data.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="the data folder (default: $D2LHELPERS_DATA, else ~/.cache/d2lhelpers)",
    )
    data.add_argument(
        "--images",
        type=Path,
        default=None,
        metavar="DIR",
        help="train on this hot dog folder instead of --data (DIR/train and DIR/test, each "
        "with hotdog/ and not-hotdog/), starting from --source-checkpoint, or "
        "from ImageNet weights at 224 px without it",
    )
    data.add_argument(
        "--source-checkpoint",
        type=Path,
        default=None,
        metavar="FILE",
        help="with --images: a stand-in source model checkpoint (the .pt file "
        "the stand-in caches in the data folder); its image size is the crop "
        "size",
    )
    train = parser.add_argument_group("training (defaults: the chapter's)")
    train.add_argument(
        "--scratch",
        action="store_true",
        help="train a randomly initialised ResNet-18 at one learning rate "
        "instead of fine-tuning the source model",
    )
    train.add_argument("--epochs", type=_checked(positive_int, int, "num_epochs"), default=None)
    train.add_argument(
        "--batch-size",
        type=_checked(lambda name, value: int_at_least(name, value, 2), int, "batch_size"),
        default=None,
        help="the global batch size (a multiple of the number of processes)",
    )
    train.add_argument(
        "--lr",
        type=_checked(positive_finite, float, "learning_rate"),
        default=None,
        help="learning rate (default: the chapter's finetune_lr, or scratch_lr)",
    )
    train.add_argument(
        "--head-multiplier",
        type=_checked(positive_finite, float, "head_multiplier"),
        default=10.0,
        help="the output layer's learning rate over the others' when fine-tuning (default 10)",
    )
    train.add_argument(
        "--seed",
        type=_checked(non_negative_int, int, "seed"),
        default=0,
        help="seeds the new output layer, the batch order and the crops",
    )
    train.add_argument(
        "--no-augment",
        action="store_true",
        help="train on centre crops instead of random crops and flips",
    )
    train.add_argument(
        "--batchnorm",
        choices=("local", "sync", "frozen"),
        default="local",
        help="local (default): each process normalises with its own share's "
        "statistics; sync: SyncBatchNorm over the whole batch (CUDA only); "
        "frozen: the source model's statistics, fixed, and BatchNorm's weights "
        "do not learn (the steps then do not depend on how a batch is split)",
    )
    train.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16", "fp16"),
        default=None,
        help="autocast precision (default: $D2LHELPERS_PRECISION, else auto)",
    )
    train.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda", "mps"),
        default="auto",
        help="auto: CUDA (cuda:LOCAL_RANK under torchrun), else MPS alone, else the CPU",
    )
    train.add_argument(
        "--timeout",
        type=_checked(positive_finite, float, "timeout"),
        default=DEFAULT_TIMEOUT_S,
        help="under torchrun: seconds a process waits in a collective operation "
        "for the others before it fails (default %(default)g)",
    )
    out = parser.add_argument_group("output (rank 0)")
    out.add_argument(
        "--save",
        type=Path,
        default=None,
        metavar="PATH",
        help="save the trained model here with its classes and image recipe "
        "(d2lhelpers.checkpoint.save_model; load it with load_model)",
    )
    out.add_argument(
        "--history-json",
        type=Path,
        default=None,
        metavar="PATH",
        help="write the History (per-epoch loss and accuracies, settings) as JSON",
    )
    out.add_argument("--label", default=None, help="the run's label in the History")
    out.add_argument(
        "--quiet", action="store_true", help="no progress bar, epoch lines or result lines"
    )
    return parser


def check_arguments(args: argparse.Namespace) -> None:
    """End the command in one line, before any work, when ``args`` cannot work together or an
    output path cannot be written (a folder, or a file in a missing or read-only folder)."""
    if args.source_checkpoint is not None and args.images is None:
        _fail("--source-checkpoint needs --images (the folder it goes with).")
    for option, path in (("--save", args.save), ("--history-json", args.history_json)):
        problem = None if path is None else _unwritable(path)
        if problem:
            _fail(f"{option} {display_path(path)}: {problem}.")


def _unwritable(path: Path) -> str | None:
    """Why a file cannot be written at ``path``, or None."""
    folder = path.parent
    if path.is_dir():
        return "is a folder; give the path of a file in it"
    if not folder.is_dir():
        return f"the folder {display_path(folder)} does not exist; create it first"
    if not is_writable(folder):
        return f"the folder {display_path(folder)} cannot be written (read-only?); choose another"
    return None


def load_data(args: argparse.Namespace, progress: bool) -> Workspace:
    """The hot dog images and the source model that ``args`` name."""
    if args.images is None:
        return prepare(args.data, args.data_dir, progress=progress)
    return folder_workspace(args.images, args.source_checkpoint)


def setup(
    args: argparse.Namespace, parallel: Parallel | None, progress: bool
) -> tuple[Workspace, HotdogData, nn.Module, dict]:
    """The workspace, its decoded data, the model to train and the training settings (the
    chapter's where ``args`` do not say); an error of the library's ends the command in one
    line, before any training."""
    try:
        workspace = load_data(args, progress)
        chapter = chapter_settings(workspace.kind)
        default_lr = chapter["scratch_lr" if args.scratch else "finetune_lr"]
        settings = {
            "learning_rate": args.lr or default_lr,  # options are checked: positive
            "batch_size": args.batch_size or chapter["batch_size"],
            "num_epochs": args.epochs or chapter["num_epochs"],
        }
        if parallel is not None:
            parallel.check_batch_size(settings["batch_size"])
        data = workspace.data()
        torch.manual_seed(args.seed)  # the new output layer (or the whole scratch model)
        if args.scratch:
            net = resnet18(num_classes=2)
        else:
            net = make_target_model(workspace.source_model(), num_classes=2)
    except (ValueError, OSError, RuntimeError) as err:  # with DownloadError, the library's
        _fail(one_line(err, with_type=False))
    if args.batchnorm == "frozen":
        freeze_batchnorm(net)
    return workspace, data, net, settings


def train(args: argparse.Namespace, parallel: Parallel | None) -> History:
    """Train as ``args`` say (on this process's share under torchrun); rank 0 saves the model
    and the History where ``--save`` and ``--history-json`` say."""
    main = parallel is None or parallel.is_main
    workspace, data, net, settings = setup(args, parallel, progress=main and not args.quiet)
    device = None if args.device == "auto" else torch.device(args.device)
    run = Run(
        seed=args.seed,
        augment=not args.no_augment,
        device=device or default_device(),
        precision=args.precision,
        label=args.label or ("from scratch" if args.scratch else "fine-tuning"),
        live=None if args.quiet else print_epoch,
        parallel=parallel,
    )
    history = train_fine_tuning(
        net,
        data,
        settings["learning_rate"],
        batch_size=settings["batch_size"],
        num_epochs=settings["num_epochs"],
        param_group=not args.scratch,
        head_multiplier=args.head_multiplier,
        run=run,
    )
    history.hparams.update(
        data=workspace.kind,
        image_size=data.recipe.size,
        batchnorm=args.batchnorm,
        processes=parallel.processes if parallel else 1,
    )
    if main and args.save is not None:
        save(net, args, workspace, data, history)
    if main and args.history_json is not None:
        history.save(args.history_json)
    return history


def save(
    net: nn.Module,
    args: argparse.Namespace,
    workspace: Workspace,
    data: HotdogData,
    history: History,
) -> None:
    """Save the trained ``net`` where ``--save`` says; a model that cannot be saved (weights
    that diverged to NaN, a full disk) is reported in one line."""
    try:
        save_model(
            net,
            args.save,
            classes=data.train.classes,
            recipe=data.recipe,
            source_model=SCRATCH_SOURCE if args.scratch else workspace.source_name,
            test_acc=history.final.held_out_acc if history.final else None,
            extra={"hparams": history.hparams, "status": history.status_text()},
        )
    except (ValueError, OSError) as err:
        reason = one_line(err, with_type=False)
        print(f"{PROG}: --save {display_path(args.save)} not written: {reason}", file=sys.stderr)


def _from_collective(err: BaseException) -> bool:
    """Whether ``err`` was raised in a collective operation of ``torch.distributed`` (or DDP,
    also in the backward pass's all-reduce, whose gloo or NCCL error names its backend), as
    when another process of the job failed, left or hung past the timeout."""
    if isinstance(err, dist.DistError):
        return True
    if any(backend in str(err).lower() for backend in ("gloo", "nccl")):
        return True
    frames = traceback.extract_tb(err.__traceback__)
    where = Path(frames[-1].filename).parts[-3:] if frames else ()
    return "distributed" in where[:-1] or where[-2:] == ("parallel", "distributed.py")


@record  # torchrun's summary then shows a failed process's exception
def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    args = build_parser().parse_args(argv)
    check_arguments(args)
    parallel = None
    if under_torchrun():
        device = None if args.device == "auto" else args.device
        parallel = start(device=device, sync_batchnorm=args.batchnorm == "sync",
                         timeout=args.timeout)  # fmt: skip
    elif args.batchnorm == "sync":
        _fail("--batchnorm sync needs several processes: run under torchrun.")
    try:
        history = train(args, parallel)
    except RuntimeError as err:
        if parallel is None or not _from_collective(err):
            raise
        ended = parallel.end_stopped_peers()
        killed = f" Killed rank {', '.join(map(str, ended))}, which was stopped." if ended else ""
        print(
            f"d2lhelpers.cli: rank {parallel.rank} of {parallel.processes} stops: another "
            f"process of the job failed, left or did not answer within --timeout "
            f"({args.timeout:g} s).{killed} {one_line(err, with_type=False)[:300]}",
            file=sys.stderr,
        )
        return 1  # without destroying the process group, which can wait on the lost peer
    stop()
    if history.status == "interrupted":
        return 130
    return 0 if history.status == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
