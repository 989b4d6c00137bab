"""Tests for d2lhelpers.train: fit, its History, divergence and interruption handling."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from d2lhelpers.data import BatchLoader, DecodedImages, Recipe
from d2lhelpers.environment import PRECISION_ENV
from d2lhelpers.precision import choose_precision
from d2lhelpers.train import (
    EpochStats,
    History,
    evaluate,
    exploded_loss,
    fit,
    train_one_epoch,
)

CPU = torch.device("cpu")
FP32 = choose_precision(CPU, "fp32")
SUMMARY_LINE = re.compile(r"loss \d\.\d{3}, train acc \d\.\d{3}, held-out acc \d\.\d{3}")


class TinyNet(nn.Module):
    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(8, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU()
        )
        self.fc = nn.Linear(width, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x))


class TinyCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x))


def batches(n: int = 32, batch: int = 8, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """A linearly separable problem: the class is the sign of the first feature."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = (x[:, 0] > 0).long()
    return [(x[i : i + batch], y[i : i + batch]) for i in range(0, n, batch)]


def run(
    num_epochs: int = 3, lr: float = 0.1, precision=FP32, net: nn.Module | None = None, **kw
) -> History:
    torch.manual_seed(0)
    net = net if net is not None else TinyNet()
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    train = kw.pop("train", batches())
    test = kw.pop("test", batches(16, seed=1))
    return fit(
        net,
        train,
        test,
        optimizer,
        num_epochs,
        device=CPU,
        precision=precision,
        progress=False,
        **kw,
    )


def numbers(history: History) -> list[float]:
    return [v for e in history.epochs for v in dataclasses.astuple(e)]


def assert_no_nan(history: History) -> None:
    assert all(math.isfinite(v) for v in numbers(history))


class InterruptingLoader:
    """Yields its batches in epoch 1 and raises KeyboardInterrupt in epoch 2."""

    def __init__(self, data: list) -> None:
        self.data, self.epoch = data, 0

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self):
        self.epoch += 1
        for i, batch in enumerate(self.data):
            if self.epoch == 2 and i == 1:
                raise KeyboardInterrupt
            yield batch


class PoisonedLoader(InterruptingLoader):
    """Its second batch in epoch 2 holds an infinite input."""

    def __iter__(self):
        self.epoch += 1
        for i, (x, y) in enumerate(self.data):
            if self.epoch == 2 and i == 1:
                x = x.clone()
                x[0, 0] = math.inf
            yield x, y


# --------------------------------------------------------------------------------------------
# fit
# --------------------------------------------------------------------------------------------


def test_fit_records_every_epoch() -> None:
    seen = []
    history = run(num_epochs=3, label="tiny", hparams={"lr": 0.1}, on_epoch=seen.append)

    assert history.status == "ok"
    assert history.diverged_at is None
    assert [e.epoch for e in history.epochs] == [1, 2, 3]
    assert all(isinstance(e, EpochStats) for e in history.epochs)
    assert_no_nan(history)
    for e in history.epochs:
        assert 0.0 <= e.train_acc <= 1.0
        assert 0.0 <= e.held_out_acc <= 1.0
        assert e.train_loss > 0
        assert e.examples_per_sec > 0
        assert e.seconds > 0
    assert history.epochs[-1].train_loss < history.epochs[0].train_loss  # it learns
    assert history.final is history.epochs[-1]
    assert (history.label, history.device, history.precision) == ("tiny", "cpu", "fp32")
    assert history.hparams == {"lr": 0.1}
    assert len(seen) == 3 and seen[0] is history


def test_fit_summary_lines() -> None:
    summary = run(num_epochs=2).summary()
    lines = summary.splitlines()
    assert len(lines) == 2
    assert SUMMARY_LINE.fullmatch(lines[0])
    assert re.fullmatch(r"\d+\.\d examples/sec on cpu \(fp32\)", lines[1])


def test_fit_is_deterministic_on_cpu() -> None:
    a, b = run(num_epochs=3), run(num_epochs=3)
    keep = ("epoch", "train_loss", "train_acc", "held_out_acc")
    for ea, eb in zip(a.epochs, b.epochs, strict=True):
        assert [getattr(ea, k) for k in keep] == [getattr(eb, k) for k in keep]
    assert len(a.epochs) == 3


def test_fit_with_batch_loader_is_deterministic() -> None:
    g = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (12, 3, 20, 20), dtype=torch.uint8, generator=g)
    labels = (pixels.float().mean(dim=(1, 2, 3)) > 127).long()
    images = DecodedImages(pixels, labels, ["x"] * 12, ("a", "b"))
    recipe = Recipe(size=16)

    def once() -> History:
        train = BatchLoader(images, 4, recipe, train=True, seed=3)
        test = BatchLoader(images, 4, recipe, train=False)
        return run(num_epochs=2, net=TinyCNN(), lr=0.05, train=train, test=test)

    a, b = once(), once()
    assert a.status == b.status == "ok"
    assert [(e.train_loss, e.train_acc, e.held_out_acc) for e in a.epochs] == [
        (e.train_loss, e.train_acc, e.held_out_acc) for e in b.epochs
    ]


def test_fit_with_default_precision(monkeypatch) -> None:
    monkeypatch.delenv(PRECISION_ENV, raising=False)
    torch.manual_seed(0)
    net = TinyNet()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    history = fit(net, batches(), batches(16, seed=1), optimizer, 2, device=CPU)
    assert history.status == "ok"
    assert history.precision == choose_precision(CPU).name
    assert len(history.epochs) == 2
    assert_no_nan(history)
    assert f"on cpu ({history.precision})" in history.summary()


# --------------------------------------------------------------------------------------------
# Divergence and interruption
# --------------------------------------------------------------------------------------------


def _check_diverged(history: History) -> None:
    assert history.status == "diverged"
    assert history.diverged_at is not None
    assert_no_nan(history)
    epoch, batch = history.diverged_at
    assert f"diverged at epoch {epoch}, batch {batch}" in history.summary()
    assert history.summary().startswith("training diverged at epoch")


@pytest.mark.parametrize("num_epochs", [0, -1, 2.5, True])
def test_fit_refuses_a_number_of_epochs_that_is_not_positive(num_epochs) -> None:
    with pytest.raises(ValueError, match="num_epochs"):
        run(num_epochs=num_epochs)


def test_huge_learning_rate_diverges() -> None:
    history = run(num_epochs=3, lr=1e6)
    _check_diverged(history)
    assert history.diverged_at[0] == 1
    assert history.epochs == []
    assert "no epoch completed" in history.summary()


def test_infinite_weight_diverges_at_first_batch_without_an_update() -> None:
    torch.manual_seed(0)
    net = TinyNet()
    with torch.no_grad():
        net.fc.weight[0, 0] = math.inf
    before = {k: v.clone() for k, v in net.state_dict().items()}
    history = run(net=net)
    _check_diverged(history)
    assert history.diverged_at == (1, 1)
    for key, value in net.state_dict().items():  # the bad batch did not update anything
        assert torch.equal(value, before[key]), key


def test_weights_blown_up_by_the_last_update_count_as_diverged() -> None:
    history = run(num_epochs=2, lr=math.inf, train=batches(8, batch=8))  # one batch per epoch
    _check_diverged(history)
    assert history.diverged_at == (1, 1)


def test_an_exploded_but_finite_loss_counts_as_diverged_before_its_update() -> None:
    torch.manual_seed(0)
    net = TinyNet()
    with torch.no_grad():
        net.fc.weight.mul_(1e4)  # finite logits thousands apart: a loss far above ln 2
    before = {k: v.clone() for k, v in net.state_dict().items()}
    history = run(net=net)
    _check_diverged(history)
    assert history.diverged_at == (1, 1)
    assert math.isfinite(history.diverged_loss) and history.diverged_loss > exploded_loss(2)
    assert f"(loss {history.diverged_loss:.3g})" in history.status_text()
    for key, value in net.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_a_high_but_sane_loss_trains_on() -> None:
    torch.manual_seed(0)
    net = TinyNet()
    with torch.no_grad():
        net.fc.weight.mul_(20)  # confidently wrong at first: a loss of a few units, not 69
    history = run(net=net, lr=0.01)
    assert history.status == "ok"
    assert len(history.epochs) == 3


def test_the_explosion_threshold_scales_with_the_loss_of_guessing() -> None:
    assert exploded_loss(2) == pytest.approx(100 * math.log(2))
    assert exploded_loss(1000) == pytest.approx(100 * math.log(1000))
    assert exploded_loss(1) == exploded_loss(2)  # one class: no loss of guessing to scale


def test_divergence_in_a_later_epoch_keeps_earlier_epochs() -> None:
    history = run(num_epochs=3, train=PoisonedLoader(batches()))
    _check_diverged(history)
    assert history.diverged_at == (2, 2)
    assert [e.epoch for e in history.epochs] == [1]
    assert SUMMARY_LINE.search(history.summary())


def test_keyboard_interrupt_keeps_finished_epochs() -> None:
    try:
        history = run(num_epochs=3, train=InterruptingLoader(batches()))
    except KeyboardInterrupt:  # would otherwise end the whole pytest session
        pytest.fail("fit let KeyboardInterrupt escape")
    assert history.status == "interrupted"
    assert history.diverged_at is None
    assert [e.epoch for e in history.epochs] == [1]
    assert_no_nan(history)
    assert history.summary().splitlines()[0] == "training interrupted"


def test_train_one_epoch_and_evaluate() -> None:
    torch.manual_seed(0)
    net = TinyNet()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    loss, acc, count = train_one_epoch(net, batches(20, batch=8), optimizer, FP32)
    assert count == 20
    assert loss > 0 and math.isfinite(loss)
    assert 0 <= acc <= 1
    assert net.training
    test_acc = evaluate(net, batches(16, seed=1), FP32)
    assert 0 <= test_acc <= 1
    assert not net.training


# --------------------------------------------------------------------------------------------
# History.save
# --------------------------------------------------------------------------------------------


def test_history_save_round_trips(tmp_path: Path) -> None:
    history = run(num_epochs=2, label="run", hparams={"lr": 0.1, "batch": 8})
    history.status, history.diverged_at = "diverged", (3, 4)
    path = tmp_path / "history.json"
    history.save(path)

    loaded = json.loads(path.read_text())

    assert loaded["label"] == "run"
    assert loaded["status"] == "diverged"
    assert loaded["diverged_at"] == [3, 4]
    assert loaded["hparams"] == {"lr": 0.1, "batch": 8}
    restored = [EpochStats(**e) for e in loaded["epochs"]]
    assert restored == history.epochs  # floats survive exactly


def test_a_short_last_batch_steps_in_proportion_to_its_size() -> None:
    """As with d2l's summed loss: after batches of 6, a batch of 3 takes half a mean-loss step."""
    torch.manual_seed(0)
    x, y = torch.randn(9, 4), torch.randint(0, 2, (9,))
    torch.manual_seed(1)
    net = nn.Linear(4, 2)
    expected = copy.deepcopy(net)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.5)
    train_one_epoch(net, [(x[:6], y[:6]), (x[6:], y[6:])], optimizer, FP32)

    by_hand = torch.optim.SGD(expected.parameters(), lr=0.5)
    for batch in (slice(0, 6), slice(6, 9)):
        by_hand.zero_grad()
        (nn.functional.cross_entropy(expected(x[batch]), y[batch], reduction="sum") / 6).backward()
        by_hand.step()
    assert torch.allclose(net.weight, expected.weight, atol=1e-6)
    assert torch.allclose(net.bias, expected.bias, atol=1e-6)


def test_a_scheduler_steps_after_every_batch() -> None:
    torch.manual_seed(0)
    net = TinyNet()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 / (1 + step))
    train = batches(32, batch=8)  # 4 batches an epoch
    history = fit(
        net, train, batches(16, seed=1), optimizer, 2, device=CPU, precision=FP32,
        progress=False, scheduler=scheduler,
    )  # fmt: skip
    assert history.status == "ok"
    assert scheduler.last_epoch == 8
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1 / 9)


# --------------------------------------------------------------------------------------------
# fit's hooks: loss, on_batch, should_stop, evaluator
# --------------------------------------------------------------------------------------------


def _results(history: History) -> list[tuple[float, float, float]]:
    return [(e.train_loss, e.train_acc, e.held_out_acc) for e in history.epochs]


def test_fit_default_loss_is_mean_cross_entropy() -> None:
    assert _results(run(num_epochs=2)) == _results(
        run(num_epochs=2, loss=torch.nn.CrossEntropyLoss())
    )


def test_fit_uses_the_loss_it_is_given() -> None:
    plain = run(num_epochs=2)
    smoothed = run(num_epochs=2, loss=torch.nn.CrossEntropyLoss(label_smoothing=0.3))
    assert smoothed.final.train_loss != pytest.approx(plain.final.train_loss, rel=1e-3)


def test_on_batch_counts_every_batch_of_every_epoch() -> None:
    seen: list[int] = []
    run(num_epochs=2, on_batch=seen.append)
    per_epoch = len(batches())
    assert seen == list(range(1, per_epoch + 1)) * 2


def test_should_stop_ends_the_run_between_batches_as_stopped() -> None:
    calls = {"n": 0}
    per_epoch = len(batches())

    def stop_in_epoch_two() -> bool:
        calls["n"] += 1
        return calls["n"] > per_epoch + 1  # after the first batch of epoch 2

    history = run(num_epochs=3, should_stop=stop_in_epoch_two)
    assert history.status == "stopped"
    assert [e.epoch for e in history.epochs] == [1]
    assert history.status_text() == "stopped"
    assert history.summary().startswith("training stopped")


def test_evaluator_replaces_the_held_out_accuracy() -> None:
    history = run(num_epochs=2, evaluator=lambda net, batches, precision: 0.25)
    assert [e.held_out_acc for e in history.epochs] == [0.25, 0.25]


def test_history_saves_atomically_and_reads_back(tmp_path) -> None:
    saved = run(num_epochs=2)
    saved.save(tmp_path / "h.json")
    assert History.from_dict(json.loads((tmp_path / "h.json").read_text())) == saved
    assert [p.name for p in tmp_path.iterdir()] == ["h.json"]  # no temporary file left


def test_history_reads_the_older_name_of_the_held_out_accuracy() -> None:
    """The shipped stand-in source model stores its History with ``test_acc``."""
    old = run(num_epochs=1).to_dict()
    for epoch in old["epochs"]:
        epoch["test_acc"] = epoch.pop("held_out_acc")
    assert History.from_dict(old).final.held_out_acc == old["epochs"][0]["test_acc"]
