"""Tests for d2lhelpers.precision: choosing the autocast dtype and the backward step."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from d2lhelpers import machine, precision
from d2lhelpers.environment import PRECISION_ENV
from d2lhelpers.precision import choose_precision, cpu_has_native_bf16

CPU = torch.device("cpu")
CUDA = torch.device("cuda")


class FakeScaler:
    """Stands in for a GradScaler, which needs a real GPU."""

    def __init__(self, *args: object) -> None:
        self.args = args


@pytest.fixture
def fake_gpu(monkeypatch):
    """``fake_gpu((7, 5))`` makes torch report one CUDA GPU of that compute capability.

    Its ``is_bf16_supported`` is that of torch before 2.3 (no ``including_emulation``
    argument) and answers True, as emulation makes it answer on a T4. ``calls`` records the
    devices asked about.
    """
    calls: list[torch.device] = []

    def use(capability: tuple[int, int]) -> list[torch.device]:
        def get_device_capability(device=None) -> tuple[int, int]:
            calls.append(device)
            return capability

        def is_bf16_supported() -> bool:
            return True

        monkeypatch.setattr(torch.cuda, "get_device_capability", get_device_capability)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake GPU")
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
        monkeypatch.setattr(torch.amp, "GradScaler", FakeScaler, raising=False)  # torch < 2.3: none
        return calls

    return use


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

    monkeypatch.setattr(machine, "Path", fake_path)
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


# --------------------------------------------------------------------------------------------
# CUDA, with a mocked compute capability
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("capability", "dtype"),
    [
        ((6, 1), None),  # GTX 10xx, P4: no tensor cores
        ((7, 0), torch.float16),  # V100
        ((7, 5), torch.float16),  # T4, Colab's free GPU: bf16 only emulated
        ((8, 0), torch.bfloat16),  # A100
        ((8, 9), torch.bfloat16),  # L4, RTX 40xx
        ((9, 0), torch.bfloat16),  # H100, H200
    ],
)
def test_auto_on_cuda_follows_the_compute_capability(fake_gpu, capability, dtype) -> None:
    fake_gpu(capability)
    p = choose_precision(CUDA)
    assert (p.device_type, p.dtype) == ("cuda", dtype)
    assert isinstance(p.scaler, FakeScaler) is (dtype is torch.float16)


def test_fp16_gets_a_cuda_grad_scaler(fake_gpu) -> None:
    fake_gpu((7, 5))
    assert choose_precision(CUDA).scaler.args == ("cuda",)


def test_grad_scaler_of_torch_before_2_3(fake_gpu, monkeypatch) -> None:
    fake_gpu((7, 5))
    monkeypatch.delattr(torch.amp, "GradScaler", raising=False)
    monkeypatch.setattr(torch.cuda.amp, "GradScaler", FakeScaler)
    assert isinstance(choose_precision(CUDA, "fp16").scaler, FakeScaler)


def test_capability_is_asked_of_the_given_gpu(fake_gpu) -> None:
    calls = fake_gpu((8, 9))
    second = torch.device("cuda", 1)
    assert choose_precision(second).dtype is torch.bfloat16
    assert calls and all(device == second for device in calls)


@pytest.mark.parametrize(
    ("capability", "request_", "dtype"),
    [
        ((7, 5), "fp16", torch.float16),
        ((7, 5), "fp32", None),
        ((6, 1), "fp16", torch.float16),
        ((8, 0), "bf16", torch.bfloat16),
        ((8, 9), "fp16", torch.float16),
        ((8, 9), "fp32", None),
    ],
)
def test_forced_precision_on_cuda(fake_gpu, capability, request_: str, dtype) -> None:
    fake_gpu(capability)
    assert choose_precision(CUDA, request_).dtype is dtype


@pytest.mark.parametrize("capability", [(7, 5), (7, 0), (6, 1)])
def test_forced_bf16_below_8_0_is_an_error_saying_what_to_use(fake_gpu, capability) -> None:
    fake_gpu(capability)
    with pytest.raises(ValueError) as info:
        choose_precision(CUDA, "bf16")
    message = str(info.value)
    parts = ("8.0 or later", f"is {capability[0]}.{capability[1]}", "Fake GPU", "fp16", "argument")
    for part in parts:
        assert part in message


def test_bf16_from_the_environment_on_a_t4_names_the_variable(fake_gpu, monkeypatch) -> None:
    fake_gpu((7, 5))
    monkeypatch.setenv(PRECISION_ENV, "bf16")
    with pytest.raises(ValueError, match=rf"from \${PRECISION_ENV}"):
        choose_precision(CUDA)
    monkeypatch.setenv(PRECISION_ENV, "auto")
    assert choose_precision(CUDA).dtype is torch.float16
