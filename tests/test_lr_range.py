"""Tests for d2lhelpers.lr_range: the rates, the suggestion (checked by training), the state
put back, early stops, the groups' ratio, bad arguments refused before any step."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from d2lhelpers.lr_range import RangeTest, lr_range_test
from d2lhelpers.run import Run
from d2lhelpers.sweep import TensorBatches

FP32 = Run(device=torch.device("cpu"), precision="fp32")


def separable(n: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Points in 8 dimensions, labelled by the side of a random plane they lie on."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, 8, generator=generator)
    return x, (x @ torch.randn(8, generator=generator) > 0).long()


def mlp() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))


def batches() -> TensorBatches:
    return TensorBatches(*separable(), batch_size=32, shuffle=True)  # 8 batches


def trained_loss(rate: float, steps: int = 40) -> float:
    """The full-data loss of a fresh mlp after ``steps`` SGD steps at ``rate``."""
    net, (x, y) = mlp(), separable()
    optimizer = torch.optim.SGD(net.parameters(), lr=rate, momentum=0.9)
    for _ in range(steps // 8):
        for xb, yb in batches():
            optimizer.zero_grad()
            F.cross_entropy(net(xb), yb).backward()
            optimizer.step()
    with torch.no_grad():
        return F.cross_entropy(net(x), y).item()


def range_test(net: nn.Module | None = None, **kwargs) -> RangeTest:
    net = net or mlp()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    return lr_range_test(net, batches(), F.cross_entropy, optimizer, run=FP32, **kwargs)


def test_rates_rise_exponentially_from_start_to_end_over_the_steps() -> None:
    found = range_test(start=1e-4, end=1e-1, steps=30)  # 30 steps: the 8 batches cycled
    assert found.stopped == "" and len(found.rates) == len(found.losses) == 30
    assert found.rates[0] == pytest.approx(1e-4) and found.rates[-1] == pytest.approx(1e-1)
    ratios = [b / a for a, b in zip(found.rates, found.rates[1:], strict=False)]
    assert ratios == pytest.approx([1000 ** (1 / 29)] * 29)


def test_smoothed_is_the_bias_corrected_moving_average_of_the_losses() -> None:
    found = range_test(start=1e-4, end=1e-2, steps=10)
    average = 0.0
    for step, (loss, smooth) in enumerate(zip(found.losses, found.smoothed, strict=True)):
        average = 0.8 * average + 0.2 * loss
        assert smooth == pytest.approx(average / (1 - 0.8 ** (step + 1)))
    assert found.smoothed[0] == pytest.approx(found.losses[0])


def test_the_suggestion_trains_far_better_than_the_ends_of_the_range() -> None:
    """A check that can fail: the suggestion is a tenth of the rate at the lowest smoothed
    loss, and training at it beats training at either end of the range tested."""
    found = range_test(start=1e-4, end=100.0, steps=100)
    assert found.stopped == "diverged" and not found.at_edge
    assert found.suggestion == pytest.approx(found.rates[found.minimum] / 10)
    assert found.smoothed[found.minimum] == min(found.smoothed)
    at_suggestion = trained_loss(found.suggestion)
    assert at_suggestion < 0.2
    assert at_suggestion < trained_loss(1e-4) / 3
    ends = trained_loss(100.0)
    assert not math.isfinite(ends) or at_suggestion < ends / 3


class BatchNormNet(nn.Module):
    """A tiny CNN with BatchNorm statistics to restore."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.bn(self.conv(x)).relu().mean((2, 3)))


def image_batches() -> TensorBatches:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(24, 3, 8, 8, generator=generator)
    return TensorBatches(x, (x.mean((1, 2, 3)) > 0).long(), batch_size=8, shuffle=True)


def two_groups(net: nn.Module, rate: float = 0.01) -> torch.optim.SGD:
    """The chapter's shape of optimizer: the body at ``rate``, the output layer at 10x."""
    body = [p for name, p in net.named_parameters() if not name.startswith("fc.")]
    groups = [{"params": body}, {"params": net.fc.parameters(), "lr": 10 * rate}]
    return torch.optim.SGD(groups, lr=rate, momentum=0.9, weight_decay=1e-4)


def test_the_net_and_the_optimizer_are_put_back_bitwise() -> None:
    torch.manual_seed(0)
    net = BatchNormNet()
    optimizer = two_groups(net)
    F.cross_entropy(net(torch.randn(8, 3, 8, 8)), torch.zeros(8).long()).backward()
    optimizer.step()  # momentum buffers to restore
    net.eval()
    before = copy.deepcopy((net.state_dict(), optimizer.state_dict()))
    found = lr_range_test(net, image_batches(), F.cross_entropy, optimizer, steps=10, run=FP32)
    assert len(found.rates) == 10
    state, optimizer_state = net.state_dict(), optimizer.state_dict()
    assert state.keys() == before[0].keys()
    for key, value in before[0].items():
        assert torch.equal(state[key], value), key
    assert optimizer_state["param_groups"] == before[1]["param_groups"]
    for index, saved in before[1]["state"].items():
        assert torch.equal(optimizer_state["state"][index]["momentum_buffer"],
                           saved["momentum_buffer"])  # fmt: skip
    assert not net.training


def test_the_net_is_put_back_when_the_test_fails() -> None:
    torch.manual_seed(0)
    net = BatchNormNet()
    optimizer = two_groups(net)
    before = copy.deepcopy(net.state_dict())
    calls = []

    def failing(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        if len(calls) == 5:
            raise RuntimeError("out of memory")
        return F.cross_entropy(logits, labels)

    with pytest.raises(RuntimeError, match="out of memory"):
        lr_range_test(net, image_batches(), failing, optimizer, run=FP32)
    for key, value in before.items():
        assert torch.equal(net.state_dict()[key], value), key
    assert [g["lr"] for g in optimizer.param_groups] == [0.01, 0.1]


def test_every_group_scales_by_the_same_factor_and_the_first_groups_rate_is_reported() -> None:
    torch.manual_seed(0)
    net = BatchNormNet()
    optimizer = two_groups(net, 0.01)
    seen = []

    def recording(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        seen.append([group["lr"] for group in optimizer.param_groups])
        return F.cross_entropy(logits, labels)

    found = lr_range_test(
        net, image_batches(), recording, optimizer, start=1e-3, end=1e-1, steps=5, run=FP32
    )
    assert [body for body, _ in seen] == pytest.approx(found.rates)
    assert [head / body for body, head in seen] == pytest.approx([10.0] * 5)


def test_a_diverging_loss_stops_the_test_early() -> None:
    found = range_test(start=1e-2, end=1e4, steps=100)
    assert found.stopped == "diverged" and len(found.rates) < 100
    assert found.smoothed[-1] > 4 * min(found.smoothed)
    assert found.minimum < len(found.rates) - 1


def test_a_non_finite_loss_stops_the_test_and_is_not_recorded() -> None:
    calls = []

    def nan_at_six(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        loss = F.cross_entropy(logits, labels)
        return loss * math.nan if len(calls) == 6 else loss

    net = mlp()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    found = lr_range_test(net, batches(), nan_at_six, optimizer, steps=20, run=FP32)
    assert found.stopped == "non-finite" and len(found.losses) == 5
    assert all(math.isfinite(loss) for loss in found.losses)


def test_a_minimum_at_the_start_of_the_range_is_flagged() -> None:
    """Rates far too high from the start: the loss only rises, the minimum is the first step
    and its tenth lies below the range."""
    found = range_test(start=10.0, end=1e4, steps=50)
    assert found.minimum == 0 and found.at_edge
    assert found.suggestion < found.rates[0]


BAD = [
    ({"start": 1.0, "end": 1.0}, "start must be below end"),
    ({"start": 1.0, "end": 0.1}, "start must be below end"),
    ({"start": 0.0}, "start"),
    ({"start": math.nan}, "start"),
    ({"end": math.inf}, "end"),
    ({"steps": 1}, "steps"),
    ({"steps": 2.5}, "steps"),
]


@pytest.mark.parametrize(("kwargs", "named"), BAD, ids=str)
def test_bad_arguments_are_refused_before_any_step(kwargs: dict, named: str) -> None:
    def no_step(*args) -> torch.Tensor:
        raise AssertionError("a step ran before the arguments were checked")

    optimizer = torch.optim.SGD(mlp().parameters(), lr=0.1)
    with pytest.raises(ValueError, match=named):
        lr_range_test(mlp(), batches(), no_step, optimizer, run=FP32, **kwargs)


def test_an_empty_loader_is_an_error() -> None:
    net = mlp()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="no batch"):
        lr_range_test(net, [], F.cross_entropy, optimizer, run=FP32)


def test_the_runs_precision_is_checked_before_any_step() -> None:
    def no_step(*args) -> torch.Tensor:
        raise AssertionError("a step ran before the precision was checked")

    net = mlp()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="fp16 autocast"):
        lr_range_test(
            net,
            batches(),
            no_step,
            optimizer,
            run=Run(device=torch.device("cpu"), precision="fp16"),
        )
    optimizer.param_groups[0]["lr"] = 0.0
    with pytest.raises(ValueError, match="first group"):
        lr_range_test(net, batches(), no_step, optimizer, run=FP32)
