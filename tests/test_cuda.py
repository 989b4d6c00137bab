"""The CUDA paths on a real GPU, skipped where torch sees none (``make gpu-check`` runs them):
batched augmentation on the device through pinned memory, the precision chosen for the GPU,
``fit`` with fp16 and a GradScaler and with bf16, and evaluation under inference mode."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torchvision.models import resnet18

from d2lhelpers.data import BatchLoader, Recipe, hotdog_data
from d2lhelpers.precision import BF16_CAPABILITY, FP16_CAPABILITY, Precision, choose_precision
from d2lhelpers.train import History, evaluate, fit

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

CUDA = torch.device("cuda")
SIZE = 32  # as conftest's TINY_SIZE: ResNet-18's last block still sees a 1x1 map


@pytest.fixture
def hotdog_root(tmp_path: Path) -> Path:
    """A hot dog folder of noise photos (so that every crop differs), of several sizes."""
    rng = np.random.default_rng(0)
    for split, count in (("train", 10), ("test", 6)):
        for label in ("hotdog", "not-hotdog"):
            folder = tmp_path / "hotdog" / split / label
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (40 + 3 * i, 56 - 2 * i, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return tmp_path / "hotdog"


def loaders(root: Path, device: str, seed: int = 0) -> tuple[BatchLoader, BatchLoader]:
    return hotdog_data(root, Recipe(SIZE), cache_dir=root / "c").loaders(4, device, seed)


def expected_dtype() -> torch.dtype | None:
    """What ``auto`` should choose on this GPU (see d2lhelpers.precision)."""
    capability = torch.cuda.get_device_capability(CUDA)
    if capability >= BF16_CAPABILITY:
        return torch.bfloat16
    return torch.float16 if capability >= FP16_CAPABILITY else None


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return resnet18(num_classes=2).to(CUDA, memory_format=torch.channels_last)


# --------------------------------------------------------------------------------------------
# Batched augmentation on the GPU
# --------------------------------------------------------------------------------------------


def test_gpu_batches_match_the_cpu_batches_of_the_same_seed(hotdog_root: Path) -> None:
    for cpu, gpu in zip(loaders(hotdog_root, "cpu"), loaders(hotdog_root, "cuda"), strict=True):
        assert len(cpu) == len(gpu)
        for (x_cpu, y_cpu), (x_gpu, y_gpu) in zip(cpu, gpu, strict=True):
            assert x_gpu.device.type == "cuda" and y_gpu.device.type == "cuda"
            assert x_gpu.dtype == torch.float32 and x_gpu.shape == x_cpu.shape
            assert x_gpu.is_contiguous(memory_format=torch.channels_last)
            torch.testing.assert_close(x_gpu.cpu(), x_cpu, atol=1e-3, rtol=1e-3)
            assert torch.equal(y_gpu.cpu(), y_cpu)


def test_gpu_batches_come_through_pinned_memory(
    hotdog_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pinned: list[bool] = []
    original = torch.Tensor.pin_memory

    def spy(self: torch.Tensor, *args: object) -> torch.Tensor:
        out = original(self, *args)
        pinned.append(out.is_pinned())
        return out

    monkeypatch.setattr(torch.Tensor, "pin_memory", spy)
    train, test = loaders(hotdog_root, "cuda")
    batches = sum(1 for _ in train) + sum(1 for _ in test)
    assert len(pinned) == batches == len(train) + len(test)
    assert all(pinned)


# --------------------------------------------------------------------------------------------
# Precision on this GPU
# --------------------------------------------------------------------------------------------


def test_auto_precision_on_this_gpu_follows_its_compute_capability() -> None:
    p = choose_precision(CUDA)
    assert (p.device_type, p.dtype) == ("cuda", expected_dtype())
    assert (p.scaler is not None) is (p.dtype is torch.float16)
    a, b = torch.randn(8, 8, device=CUDA), torch.randn(8, 8, device=CUDA)
    with p.autocast():
        assert (a @ b).dtype == (p.dtype or torch.float32)


def test_forced_bf16_on_this_gpu() -> None:
    if torch.cuda.get_device_capability(CUDA) < BF16_CAPABILITY:
        with pytest.raises(ValueError, match="fp16"):
            choose_precision(CUDA, "bf16")
    else:
        assert choose_precision(CUDA, "bf16").dtype is torch.bfloat16


# --------------------------------------------------------------------------------------------
# fit and evaluate on the GPU
# --------------------------------------------------------------------------------------------


def fit_two_epochs(root: Path, request: str) -> tuple[History, Precision]:
    """Two epochs of a small ResNet-18 under ``request``; check that they trained it."""
    net = small_net()
    before = [p.detach().clone() for p in net.parameters()]
    train, test = loaders(root, "cuda")
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    precision = choose_precision(CUDA, request)
    history = fit(net, train, test, optimizer, 2, device=CUDA, precision=precision, progress=False)
    assert history.status == "ok" and len(history.epochs) == 2
    for stats in history.epochs:
        assert math.isfinite(stats.train_loss) and 0 <= stats.held_out_acc <= 1
    for p in net.parameters():
        assert p.dtype == torch.float32 and torch.isfinite(p).all()
    assert any(not torch.equal(p, b) for p, b in zip(net.parameters(), before, strict=True))
    return history, precision


def test_fit_with_fp16_and_a_grad_scaler(hotdog_root: Path) -> None:
    history, precision = fit_two_epochs(hotdog_root, "fp16")
    assert history.precision == "fp16 autocast"
    scaler = precision.scaler
    assert scaler is not None and scaler.is_enabled()
    assert math.isfinite(scaler.get_scale()) and scaler.get_scale() > 0


def test_fit_with_bf16(hotdog_root: Path) -> None:
    if torch.cuda.get_device_capability(CUDA) < BF16_CAPABILITY:
        pytest.skip("bf16 autocast needs compute capability 8.0")
    history, _ = fit_two_epochs(hotdog_root, "bf16")
    assert history.precision == "bf16 autocast"


def test_evaluate_runs_under_inference_mode(hotdog_root: Path) -> None:
    net = small_net()
    seen: list[tuple[bool, bool]] = []

    def record(module: nn.Module, inputs: object, out: torch.Tensor) -> None:
        seen.append((torch.is_inference_mode_enabled(), out.is_inference()))

    net.register_forward_hook(record)
    _, test = loaders(hotdog_root, "cuda")
    net.train()
    accuracy = evaluate(net, test, choose_precision(CUDA, "fp32"))
    assert not net.training
    assert seen and all(mode and inference for mode, inference in seen)
    with torch.no_grad():
        correct = sum((net(x).argmax(1) == y).sum().item() for x, y in test)
    assert accuracy == correct / len(test.images)
