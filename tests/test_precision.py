"""Tests for d2lhelpers.precision: choosing the autocast dtype and the backward step."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from d2lhelpers import precision
from d2lhelpers.precision import PRECISION_ENV, choose_precision, cpu_has_native_bf16

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _no_env(monkeypatch) -> None:
    monkeypatch.delenv(PRECISION_ENV, raising=False)


@pytest.fixture
def fake_cpuinfo(tmp_path: Path, monkeypatch):
    """``fake_cpuinfo(text)`` makes the module read ``text`` instead of /proc/cpuinfo."""
    fake = tmp_path / "cpuinfo"

    def use(text: str | None) -> None:
        if text is None:
            fake.unlink(missing_ok=True)
        else:
            fake.write_text(text)

    def fake_path(name):
        assert str(name) == "/proc/cpuinfo"
        return fake

    monkeypatch.setattr(precision, "Path", fake_path)
    return use


def cpuinfo(flags: str) -> str:
    return (
        "processor\t: 0\nvendor_id\t: GenuineIntel\n"
        f"flags\t\t: fpu vme sse sse2 avx2 {flags}\nbugs\t\t: spectre_v1\n\n"
        "processor\t: 1\nflags\t\t: fpu vme sse sse2 avx512_bf16 amx_bf16\n"
    )


def test_fp32_on_cpu() -> None:
    p = choose_precision(CPU, "fp32")
    assert p.dtype is None
    assert p.scaler is None
    assert p.name == "fp32"
    assert p.device_type == "cpu"


@pytest.mark.parametrize("request_", ["bf16", "BF16"])
def test_bf16_on_cpu(request_: str) -> None:
    p = choose_precision(CPU, request_)
    assert p.dtype is torch.bfloat16
    assert p.scaler is None
    assert p.name == "bf16 autocast"


def test_fp16_on_cpu_suggests_bf16() -> None:
    with pytest.raises(ValueError, match="bf16"):
        choose_precision(CPU, "fp16")


def test_unknown_precision_lists_choices() -> None:
    with pytest.raises(ValueError, match="fp8") as info:
        choose_precision(CPU, "fp8")
    for choice in ("auto", "fp32", "bf16", "fp16"):
        assert choice in str(info.value)


@pytest.mark.parametrize(("env", "dtype"), [("bf16", torch.bfloat16), ("fp32", None)])
def test_environment_variable_is_respected(monkeypatch, env: str, dtype) -> None:
    monkeypatch.setenv(PRECISION_ENV, env)
    assert choose_precision(CPU).dtype is dtype


def test_argument_wins_over_environment(monkeypatch) -> None:
    monkeypatch.setenv(PRECISION_ENV, "bf16")
    assert choose_precision(CPU, "fp32").dtype is None


def test_bad_environment_variable_names_it(monkeypatch) -> None:
    monkeypatch.setenv(PRECISION_ENV, "half")
    with pytest.raises(ValueError, match=PRECISION_ENV):
        choose_precision(CPU)


@pytest.mark.parametrize(("native", "dtype"), [(True, torch.bfloat16), (False, None)])
def test_auto_on_cpu_follows_native_bf16(monkeypatch, native: bool, dtype) -> None:
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    assert choose_precision(CPU).dtype is dtype
    assert choose_precision(CPU, "auto").dtype is dtype


def test_auto_on_mps_is_fp32(monkeypatch) -> None:
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    p = choose_precision(torch.device("mps"))
    assert (p.device_type, p.dtype) == ("mps", None)


def test_cpu_has_native_bf16_on_this_machine_is_a_bool() -> None:
    assert isinstance(cpu_has_native_bf16(), bool)


@pytest.mark.parametrize(
    ("flags", "expected"),
    [("avx512f avx512_bf16", True), ("amx_tile amx_bf16", True), ("avx512f avx512bw", False)],
)
def test_cpu_has_native_bf16_reads_the_flags(fake_cpuinfo, flags: str, expected: bool) -> None:
    fake_cpuinfo(cpuinfo(flags))
    assert cpu_has_native_bf16() is expected


def test_cpu_has_native_bf16_without_cpuinfo(fake_cpuinfo) -> None:
    fake_cpuinfo(None)
    assert cpu_has_native_bf16() is False


def test_autocast_changes_the_matmul_dtype() -> None:
    a, b = torch.randn(4, 4), torch.randn(4, 4)
    with choose_precision(CPU, "fp32").autocast():
        assert (a @ b).dtype == torch.float32
    with choose_precision(CPU, "bf16").autocast():
        assert (a @ b).dtype == torch.bfloat16


@pytest.mark.parametrize("request_", ["fp32", "bf16"])
def test_backward_and_step_updates_weights(request_: str) -> None:
    p = choose_precision(CPU, request_)
    layer = torch.nn.Linear(3, 2)
    before = layer.weight.detach().clone()
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.5)
    with p.autocast():
        loss = layer(torch.randn(5, 3)).square().mean()
    p.backward_and_step(loss, optimizer)
    assert layer.weight.grad is not None
    assert not torch.equal(layer.weight.detach(), before)
