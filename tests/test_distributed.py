"""Data-parallel training (d2lhelpers.distributed, d2lhelpers.cli) on the CPU with gloo.

The fast tests check the sharding and run a one-process job in this process. The slow ones
start ``torchrun --standalone --nproc_per_node=2 -m d2lhelpers.cli`` on the tiny stand-in
(12 training and 8 test images at 32 px) and compare it with one process.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torchvision.models import resnet18

from d2lhelpers import cli
from d2lhelpers.chapter import chapter_settings
from d2lhelpers.checkpoint import load_model, recipe_from_metadata
from d2lhelpers.data import BatchLoader, epoch_batches
from d2lhelpers.distributed import (
    HeldOutShare,
    ShardedBatches,
    share_sizes,
    start,
    stop,
    under_torchrun,
)
from d2lhelpers.finetune import train_fine_tuning
from d2lhelpers.models import freeze_batchnorm, make_target_model
from d2lhelpers.predict import predict
from d2lhelpers.run import Run
from d2lhelpers.workspace import Workspace

# Frozen BatchNorm, no augmentation: the two processes take exactly one device's steps, so the
# weights differ only by float rounding: each process sums its share's gradient and DDP sums
# the two (then halves), where one device sums the whole batch in another order; 4 steps amplify
# it. Measured (2 epochs of 12 images at 32 px, batch 10, lr 3e-3, fp32): 2.7e-5 against one
# process on one thread, 3e-8 against one process on two, and one process on one thread against
# itself on two: 2.7e-5 as well. The tolerance is that noise floor's size, and five orders of
# magnitude below what per-process BatchNorm changes (7.5, test_per_process_batchnorm...).
EXACT_TOLERANCE = 1e-4
JOB_SECONDS = 60  # a job whose rank fails must end within this


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _checkpoint(ws: Workspace) -> Path:
    (path,) = ws.root.parent.glob("standin-resnet18-*.pt")
    return path


def _args(ws: Workspace, *extra: str) -> list[str]:
    return [
        "--images",
        str(ws.root),
        "--source-checkpoint",
        str(_checkpoint(ws)),
        "--precision",
        "fp32",
        "--device",
        "cpu",
        "--quiet",
        "--epochs",
        "2",
        *extra,
    ]


def _torchrun(
    args: list[str], cwd: Path, timeout: float = 120, **faults: str
) -> subprocess.CompletedProcess:
    """The command line on two processes, through tests/cli_faults.py with ``faults`` (its
    environment variables, without their D2LHELPERS_TEST_ prefix)."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(Path(__file__).with_name("cli_faults.py")),
        *args,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    env.update({f"D2LHELPERS_TEST_{name.upper()}": value for name, value in faults.items()})
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def _one_process(args: list[str]) -> None:
    with pytest.MonkeyPatch.context() as patch:
        for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
            patch.delenv(name, raising=False)
        assert cli.main(args) == 0


def _params(path: Path) -> dict[str, torch.Tensor]:
    state = torch.load(path, weights_only=True)["state_dict"]  # a save_model checkpoint
    return {k: v for k, v in state.items() if k.endswith(("weight", "bias"))}


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def _epochs(path: Path) -> list[dict]:
    return json.loads(path.read_text())["epochs"]


# --- sharding -------------------------------------------------------------------------------


@pytest.mark.parametrize("processes", [1, 2, 3, 5])
def test_shares_cover_a_batch_without_a_lone_example(processes) -> None:
    for most in (2, 3, 8):
        for n in range(processes * most + 1):
            sizes = share_sizes(n, processes, most)
            assert len(sizes) == processes and sum(sizes) == n and max(sizes) <= most
            if n >= 2 and most >= 3:
                assert 1 not in sizes
            if n >= 2 * processes:  # as even as possible
                assert max(sizes) - min(sizes) <= 1


def test_a_share_larger_than_allowed_is_refused() -> None:
    with pytest.raises(ValueError, match="do not fit"):
        share_sizes(9, 2, 4)


def _index_loader(loader: BatchLoader) -> BatchLoader:
    loader.batch = lambda index: index  # the indices instead of the prepared images
    return loader


@pytest.mark.parametrize(("batch_size", "processes"), [(4, 2), (10, 2), (6, 3)])
def test_shards_are_one_devices_batches_split_over_the_processes(
    tiny_workspace, batch_size, processes
) -> None:
    data = tiny_workspace.data()
    n = len(data.train)
    expected_gen = torch.Generator().manual_seed(5)
    expected = [
        list(epoch_batches(n, batch_size, expected_gen, drop_single=True)) for _ in range(3)
    ]
    shards = []
    for rank in range(processes):
        train, _ = data.loaders(batch_size, seed=5, augment=False)
        local = BatchLoader(data.train, batch_size // processes, data.recipe, train=True)
        shards.append(ShardedBatches(train, _index_loader(local), rank, processes))
    assert {len(s) for s in shards} == {len(expected[0])}
    for epoch in expected:
        per_rank = [list(s) for s in shards]
        for i, index in enumerate(epoch):
            assert torch.equal(torch.cat([shares[i] for shares in per_rank]), index)
        used = torch.cat([torch.cat(shares) for shares in per_rank])
        assert sorted(used.tolist()) == sorted(torch.cat(epoch).tolist())  # each image once


def test_held_out_parts_count_every_image_once(tiny_workspace) -> None:
    data = tiny_workspace.data()
    _, test = data.loaders(4, augment=False)
    parts = [HeldOutShare(_index_loader(test), rank, 3) for rank in range(3)]
    seen = torch.cat([torch.cat(list(p)) for p in parts])
    assert seen.tolist() == list(range(len(data.held_out)))


def test_frozen_batchnorm_computes_the_same_in_both_modes() -> None:
    net = freeze_batchnorm(resnet18(num_classes=2))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    x = torch.randn(3, 3, 32, 32)
    assert torch.equal(net.train()(x), net.eval()(x))


# --- start and the one-process job ------------------------------------------------------------


def test_start_outside_torchrun_says_how_to_run(monkeypatch) -> None:
    monkeypatch.delenv("RANK", raising=False)
    assert not under_torchrun()
    with pytest.raises(RuntimeError, match="torchrun --nproc_per_node"):
        start()


def test_sync_batchnorm_needs_cuda(monkeypatch) -> None:
    for name, value in [
        ("RANK", "0"),
        ("WORLD_SIZE", "1"),
        ("LOCAL_RANK", "0"),
        ("MASTER_ADDR", "127.0.0.1"),
        ("MASTER_PORT", "1"),
    ]:
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match="SyncBatchNorm needs CUDA"):
        start(device="cpu", sync_batchnorm=True)


def test_a_one_process_job_takes_exactly_one_devices_steps(tiny_workspace, monkeypatch) -> None:
    """The whole DDP path in this process (gloo, world size 1): the same weights, bit for bit,
    and the same History as without ``parallel``."""
    monkeypatch.setenv("D2LHELPERS_PRECISION", "fp32")
    data = tiny_workspace.data()
    runs = []
    for parallel in (False, True):
        torch.manual_seed(0)
        net = make_target_model(tiny_workspace.source_model(), 2)
        if parallel:
            for name, value in [
                ("RANK", "0"),
                ("WORLD_SIZE", "1"),
                ("LOCAL_RANK", "0"),
                ("MASTER_ADDR", "127.0.0.1"),
                ("MASTER_PORT", str(_free_port())),
            ]:
                monkeypatch.setenv(name, value)
            job = start(device="cpu", timeout=30)
            assert (job.rank, job.processes, job.is_main) == (0, 1, True)
        try:
            run = Run(
                augment=False,
                device=torch.device("cpu"),
                parallel=job if parallel else None,
            )
            history = train_fine_tuning(net, data, 3e-3, batch_size=10, num_epochs=2, run=run)
        finally:
            if parallel:
                stop()
        runs.append((net.state_dict(), history))
    (one, one_history), (ddp, ddp_history) = runs
    assert all(torch.equal(one[k], ddp[k]) for k in one)
    assert ddp_history.epochs[-1].held_out_acc == one_history.epochs[-1].held_out_acc
    assert [e.train_loss for e in ddp_history.epochs] == [e.train_loss for e in one_history.epochs]


def test_the_cli_alone_trains_from_scratch_with_the_chapters_rate(
    tiny_workspace, tmp_path, monkeypatch
) -> None:
    """The model that --save writes loads with load_model and predicts as the trained one."""
    trained = []

    def keep(net, *args, **kwargs):
        trained.append(net)
        return train_fine_tuning(net, *args, **kwargs)

    monkeypatch.setattr(cli, "train_fine_tuning", keep)
    out = tmp_path / "history.json"
    args = _args(tiny_workspace, "--scratch", "--epochs", "1", "--batch-size", "8")
    _one_process([*args, "--history-json", str(out), "--save", str(tmp_path / "m.pt")])
    history = json.loads(out.read_text())
    assert history["status"] == "ok" and len(history["epochs"]) == 1
    assert history["label"] == "from scratch"
    hparams = history["hparams"]
    assert hparams["learning_rates"] == [chapter_settings("standin")["scratch_lr"]]
    assert hparams["processes"] == 1
    loaded, metadata = load_model(tmp_path / "m.pt")
    assert metadata["source_model"] == cli.SCRATCH_SOURCE
    assert metadata["test_acc"] == history["epochs"][-1]["held_out_acc"]
    images = tiny_workspace.data().held_out
    recipe = recipe_from_metadata(metadata)
    same = (
        predict(loaded, images, recipe).predicted == predict(trained[0], images, recipe).predicted
    )
    assert same.all()


def test_the_help_shows_the_torchrun_commands() -> None:
    text = cli.build_parser().format_help()
    assert "torchrun --standalone --nproc_per_node=2 -m d2lhelpers.cli" in text
    assert "--rdzv-endpoint=HOST:29500" in text and "--timeout" in text


# --- two processes under torchrun -----------------------------------------------------------


@pytest.fixture(scope="module")
def runs(tiny_workspace, tmp_path_factory) -> Path:
    """One process and two (torchrun) with frozen BatchNorm, batch 10 (an epoch: a batch of 10,
    then one of 2, whose shares are 2 and none); and both with the default per-process
    BatchNorm, batch 8; every rank of the two-process jobs saves its weights."""
    out = tmp_path_factory.mktemp("ddp-runs")
    for name, extra in [
        ("frozen", ["--batchnorm", "frozen", "--batch-size", "10"]),
        ("local", ["--batch-size", "8"]),
    ]:
        args = _args(tiny_workspace, "--no-augment", *extra)
        _one_process(
            [
                *args,
                "--save",
                str(out / f"{name}-1.pt"),
                "--history-json",
                str(out / f"{name}-1.json"),
            ]
        )
        saved = ["--save", str(out / f"{name}-2.pt"), "--history-json", str(out / f"{name}-2.json")]
        job = _torchrun([*args, *saved], out, save_every_rank=str(out / f"{name}-2.state"))
        assert job.returncode == 0, job.stdout + job.stderr
    return out


@pytest.mark.slow
def test_two_processes_take_one_devices_steps(runs) -> None:
    diff = _max_diff(_params(runs / "frozen-1.pt"), _params(runs / "frozen-2.pt"))
    print(f"frozen BatchNorm: max |w(2 processes) - w(1 process)| = {diff:.3g}")
    assert diff < EXACT_TOLERANCE
    one, two = _epochs(runs / "frozen-1.json"), _epochs(runs / "frozen-2.json")
    assert len(one) == len(two) == 2
    for a, b in zip(one, two, strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
        assert (b["train_acc"], b["held_out_acc"]) == (a["train_acc"], a["held_out_acc"])
    hparams = json.loads((runs / "frozen-2.json").read_text())["hparams"]
    assert hparams["processes"] == 2 and hparams["batch_size"] == 10


@pytest.mark.slow
@pytest.mark.parametrize("name", ["frozen", "local"])
def test_the_processes_end_with_identical_weights(runs, name) -> None:
    rank0 = torch.load(runs / f"{name}-2.state.rank0", weights_only=True)
    rank1 = torch.load(runs / f"{name}-2.state.rank1", weights_only=True)
    assert rank0.keys() == rank1.keys()
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)  # buffers too


@pytest.mark.slow
def test_per_process_batchnorm_is_not_one_devices(runs) -> None:
    """The default normalises each share of 4 (then 2) with its own statistics, where one
    device normalises the batch of 8: a different computation, not a rounding difference."""
    diff = _max_diff(_params(runs / "local-1.pt"), _params(runs / "local-2.pt"))
    print(f"per-process BatchNorm: max |w(2 processes) - w(1 process)| = {diff:.3g}")
    assert diff > 1000 * EXACT_TOLERANCE
    assert len(_epochs(runs / "local-2.json")) == 2


def _failing_job(ws: Workspace, tmp_path: Path, mode: str) -> tuple[str, int]:
    """The output and exit status of a job whose rank 1 fails after 2 batches; a job that does
    not end within JOB_SECONDS fails the test (subprocess.TimeoutExpired)."""
    args = _args(ws, "--batch-size", "4", "--epochs", "3", "--timeout", "8")
    job = _torchrun(args, tmp_path, timeout=JOB_SECONDS, fail=f"1:2:{mode}")
    return job.stdout + job.stderr, job.returncode


@pytest.mark.slow
def test_a_rank_that_dies_ends_the_job(tiny_workspace, tmp_path) -> None:
    output, code = _failing_job(tiny_workspace, tmp_path, "exit")
    assert code != 0, output
    assert "rank 1: failing after 2 batches" in output
    assert "exitcode  : 3" in output and "rank      : 1" in output  # torchrun's root cause


@pytest.mark.slow
def test_a_rank_that_hangs_ends_the_job_after_the_timeout(tiny_workspace, tmp_path) -> None:
    output, code = _failing_job(tiny_workspace, tmp_path, "hang")
    assert code != 0, output
    assert (
        "rank 0 of 2 stops: another process of the job failed, left or did not answer within "
        "--timeout (8 s)" in output
    ), output


@pytest.mark.slow
def test_a_rank_that_is_stopped_ends_the_job_within_the_timeout(tiny_workspace, tmp_path) -> None:
    """A rank stopped with SIGSTOP ignored torchrun's SIGTERM, and the job ended 30 s after the
    timeout (torchrun's grace period); now its peer kills it when the timeout finds it."""
    output, code = _failing_job(tiny_workspace, tmp_path, "stop")
    ended = time.time()
    assert code != 0, output
    assert "Killed rank 1, which was stopped." in output, output
    stopped = float(re.search(r"rank 1: stopping at ([0-9.]+)", output).group(1))
    print(f"from the stop to the job's end: {ended - stopped:.1f} s (--timeout 8)")
    assert ended - stopped < 8 + 15, output  # --timeout 8; torchrun's grace alone is 30 s
