"""The command line checks its arguments and output paths before any work and answers a bad
one in one line that names it, without a traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from d2lhelpers import cli
from d2lhelpers.checkpoint import save_model
from d2lhelpers.data import HOTDOG_CLASSES, Recipe
from d2lhelpers.distributed import Parallel
from d2lhelpers.standin import SHIPPED_SOURCE

# torchrun's @record on main() cannot install its fault handler under pytest's capture
pytestmark = pytest.mark.filterwarnings("ignore:Unable to enable fault handler:UserWarning")


@pytest.fixture(autouse=True)
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading data or training fails the test: every answer here comes before either."""

    def refused(*args: object, **kwargs: object) -> None:
        raise AssertionError("work started before the arguments were checked")

    monkeypatch.setattr(cli, "prepare", refused)
    monkeypatch.setattr(cli, "train_fine_tuning", refused)
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)


def answer(args: list[str], capsys: pytest.CaptureFixture) -> str:
    """What the command prints when it refuses ``args``: one line, no traceback."""
    with pytest.raises(SystemExit) as caught:
        cli.main(args)
    assert caught.value.code == 2
    text = capsys.readouterr().err
    assert text.count("\n") == 1, text
    assert "Traceback" not in text and "Error:" not in text, text
    return text


BAD_VALUES = [
    ("--lr", "nan", "learning_rate"),
    ("--lr", "0", "learning_rate"),
    ("--lr", "fast", "could not convert"),
    ("--epochs", "0", "num_epochs"),
    ("--batch-size", "1", "batch_size"),
    ("--seed", "-1", "seed"),
    ("--seed", "1.5", "invalid literal"),
    ("--head-multiplier", "inf", "head_multiplier"),
    ("--timeout", "nan", "timeout"),
    ("--timeout", "0", "timeout"),
]


@pytest.mark.parametrize(("option", "value", "named"), BAD_VALUES)
def test_a_bad_value_is_refused_in_one_line_before_any_work(
    option: str, value: str, named: str, capsys: pytest.CaptureFixture
) -> None:
    text = answer(["--data", "standin", option, value], capsys)
    assert f"argument {option}" in text and named in text and value in text


def read_only(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``folder`` made read-only (for root, which writes anyway, as the check would find it)."""
    folder.mkdir()
    folder.chmod(0o555)
    if os.geteuid() == 0:
        monkeypatch.setattr(cli, "is_writable", lambda path: path != folder)
    return folder


@pytest.mark.parametrize("option", ["--save", "--history-json"])
@pytest.mark.parametrize("where", ["missing-folder", "a-folder", "read-only-folder"])
def test_an_output_path_that_cannot_be_written_is_refused_before_any_work(
    option: str, where: str, tmp_path: Path, monkeypatch, capsys
) -> None:
    path, problem = {
        "missing-folder": (tmp_path / "missing" / "out", "does not exist"),
        "a-folder": (tmp_path, "is a folder"),
        "read-only-folder": (read_only(tmp_path / "ro", monkeypatch) / "out", "cannot be written"),
    }[where]
    text = answer(["--data", "standin", option, str(path)], capsys)
    assert f"{option} {path}" in text and problem in text


def plain_state_dict(path: Path) -> Path:
    torch.save({"conv1.weight": torch.zeros(2, 3)}, path)
    return path


def fine_tuned(path: Path) -> Path:
    from torchvision.models import resnet18

    net = resnet18(num_classes=2)
    save_model(
        net, path, classes=HOTDOG_CLASSES, recipe=Recipe(32), source_model="x", test_acc=None
    )
    return path


class RunsCode:
    def __reduce__(self) -> tuple:
        return (os.system, ("echo pwned",))


def shipped_with(path: Path, **settings: object) -> Path:
    """The shipped stand-in source model with ``settings`` changed, saved at ``path``."""
    checkpoint = torch.load(SHIPPED_SOURCE, weights_only=True)
    torch.save({**checkpoint, "settings": {**checkpoint["settings"], **settings}}, path)
    return path


SOURCE_CHECKPOINTS = {
    "image-size-10**7": (
        lambda p: shipped_with(p, image_size=10**7),
        "crop size 10000000 (resized to 11428571) is beyond 1024",
    ),
    "plain-state-dict": (plain_state_dict, "holds weights alone (a plain state_dict)"),
    "junk": (lambda p: p.write_bytes(b"not a checkpoint" * 8) and p, "torch.save did not write it"),
    "fine-tuned-model": (fine_tuned, "it lacks classes, settings, history, train_images"),
    "code": (lambda p: torch.save({"x": RunsCode()}, p) or p, "could run code"),
    "missing": (lambda p: p, "no such file"),
}


@pytest.mark.parametrize("case", sorted(SOURCE_CHECKPOINTS))
def test_a_source_checkpoint_that_is_not_one_is_named_in_one_line(
    case: str, tmp_path: Path, capsys
) -> None:
    write, reason = SOURCE_CHECKPOINTS[case]
    path = write(tmp_path / "source.pt")
    text = answer(["--images", str(tmp_path), "--source-checkpoint", str(path)], capsys)
    assert str(path) in text and reason in text, text
    assert "weights_only=False" not in text and "`weights_only` set to `False`" not in text


def test_a_source_checkpoint_needs_its_images(tmp_path: Path, capsys) -> None:
    text = answer(["--source-checkpoint", str(tmp_path / "s.pt")], capsys)
    assert "--source-checkpoint needs --images" in text


# What gloo raises from DDP's all-reduce in loss.backward() when another rank died
GLOO_FAILURE = (
    "[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:545] Read error "
    "[127.0.0.1]:36783: Connection reset by peer. This is typically caused by a remote worker "
    "hanging or bugs in the application."
)


def backward_all_reduce(message: str) -> None:
    raise RuntimeError(message)


@pytest.fixture
def rank_0_of_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "under_torchrun", lambda: True)
    monkeypatch.setattr(cli, "start", lambda **kwargs: Parallel(0, 2, torch.device("cpu")))


def test_a_surviving_rank_says_in_one_line_that_another_process_failed(
    rank_0_of_2, monkeypatch, capsys
) -> None:
    monkeypatch.setattr(cli, "train", lambda args, parallel: backward_all_reduce(GLOO_FAILURE))
    assert cli.main(["--data", "standin", "--timeout", "8"]) == 1
    printed = capsys.readouterr().err
    assert printed.count("\n") == 1, printed
    assert "rank 0 of 2 stops: another process of the job failed" in printed
    assert "--timeout (8 s)" in printed and "Connection reset by peer" in printed
    assert "Traceback" not in printed and "RuntimeError" not in printed


def test_other_failures_of_a_rank_are_not_taken_for_a_lost_process(
    rank_0_of_2, monkeypatch
) -> None:
    monkeypatch.setattr(cli, "train", lambda args, parallel: backward_all_reduce("a bug"))
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["--data", "standin"])


def test_a_batch_the_processes_cannot_share_is_refused_before_decoding(
    rank_0_of_2, monkeypatch, capsys
) -> None:
    class Undecoded:
        kind = "standin"

        def data(self) -> None:
            raise AssertionError("decoded before the batch size was checked")

    monkeypatch.setattr(cli, "load_data", lambda args, progress: Undecoded())
    text = answer(["--data", "standin", "--batch-size", "5"], capsys)
    assert "batch_size 5 must be a multiple of the number of processes (2)" in text
