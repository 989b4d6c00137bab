"""Mixed precision in one place: which autocast dtype a device gets, and the backward step.

* CUDA, by the GPU's compute capability (never by ``torch.cuda.is_bf16_supported()``, which
  answers True on a T4 through slow emulation):

  - 8.0 and later (A100, A10, L4, RTX 30xx/40xx, H100): bfloat16 autocast;
  - 7.0 to 7.5 (V100, T4 -- Colab's free GPU --, RTX 20xx): float16 autocast with a gradient
    scaler, on their float16 tensor cores;
  - below 7.0 (P100, P4, GTX 10xx): float32, as they have no tensor cores.

* CPU: bfloat16 autocast where the processor runs bfloat16 natively (AVX512-BF16 or AMX),
  else float32.
* MPS and anything else: float32.

``request`` (or ``$D2LHELPERS_PRECISION``) forces ``fp32``, ``bf16`` or ``fp16`` instead of
``auto``. A forced choice that the device cannot run natively is a ValueError that says what
to use, never a silent change: ``fp16`` on a CPU, and ``bf16`` on a CUDA GPU below 8.0 (it
would be emulated, and cuDNN has no bfloat16 convolutions there).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch

from .environment import PRECISION_ENV, precision_setting
from .machine import cpu_flags

BF16_CAPABILITY = (8, 0)
"""The first CUDA compute capability with bfloat16 tensor cores (and cuDNN bf16 convolutions)."""
FP16_CAPABILITY = (7, 0)
"""The first CUDA compute capability with float16 tensor cores."""


def cpu_has_native_bf16() -> bool:
    """True when the CPU's flags list AVX512-BF16 or AMX-BF16 (Linux only)."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


@dataclass
class Precision:
    """Autocast settings for one device, with the matching backward/step."""

    device_type: str
    dtype: torch.dtype | None  # None: plain float32
    scaler: torch.amp.GradScaler | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16 autocast", torch.float16: "fp16 autocast"}[
            self.dtype
        ]

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward_and_step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is None:
            loss.backward()
            optimizer.step()
        else:
            self.scaler.scale(loss).backward()
            self.scaler.step(optimizer)
            self.scaler.update()


def choose_precision(device: torch.device, request: str | None = None) -> Precision:
    """The precision for ``device``; ``request`` (or $D2LHELPERS_PRECISION) can force one.

    Raises:
        ValueError: an unknown request, or one the device cannot run natively (see the module
            docstring): ``fp16`` off CUDA, ``bf16`` on a CUDA GPU below compute capability 8.0.
    """
    request, source = _requested(request)
    kind = device.type
    if request == "auto":
        request = _auto_precision(device)
    if request == "fp32":
        return Precision(kind, None)
    if request == "fp16":
        if kind != "cuda":
            raise ValueError(
                f"fp16 autocast (from {source}) needs a CUDA device, not {kind}; use bf16 or fp32."
            )
        return Precision(kind, torch.float16, _cuda_grad_scaler())
    if kind == "cuda" and cuda_capability(device) < BF16_CAPABILITY:
        raise ValueError(_bf16_needs_ampere(device, source))
    return Precision(kind, torch.bfloat16)


def cuda_capability(device: torch.device) -> tuple[int, int]:
    """The compute capability of the CUDA ``device`` (the current one without an index)."""
    major, minor = torch.cuda.get_device_capability(device)
    return major, minor


def _requested(request: str | None) -> tuple[str, str]:
    """The requested precision in lowercase and where it came from; ValueError if unknown."""
    source = "the argument" if request else f"${PRECISION_ENV}"
    value = (request or precision_setting() or "auto").lower()
    choices = ("auto", "fp32", "bf16", "fp16")
    if value not in choices:
        raise ValueError(
            f"Unknown precision {value!r} (from {source}); choose one of {', '.join(choices)}."
        )
    return value, source


def _auto_precision(device: torch.device) -> str:
    """``auto``'s choice for ``device``, as the module docstring lists."""
    if device.type == "cuda":
        capability = cuda_capability(device)
        if capability >= BF16_CAPABILITY:
            return "bf16"
        return "fp16" if capability >= FP16_CAPABILITY else "fp32"
    if device.type == "cpu" and cpu_has_native_bf16():
        return "bf16"
    return "fp32"


def _bf16_needs_ampere(device: torch.device, source: str) -> str:
    """Explain why a forced bf16 is refused on this GPU and what to use instead."""
    major, minor = cuda_capability(device)
    return (
        f"bf16 autocast (from {source}) needs a CUDA GPU of compute capability "
        f"{BF16_CAPABILITY[0]}.{BF16_CAPABILITY[1]} or later; {device} "
        f"({torch.cuda.get_device_name(device)}) is {major}.{minor}, where bfloat16 is emulated "
        f"and slow. Use fp16 (with a gradient scaler) or auto instead, as the argument or "
        f"${PRECISION_ENV}."
    )


def _cuda_grad_scaler() -> torch.amp.GradScaler:
    """A gradient scaler for CUDA: torch.amp's (torch 2.3 and later), else torch.cuda.amp's."""
    if hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler("cuda")
    return torch.cuda.amp.GradScaler()
