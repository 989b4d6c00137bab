"""Mixed precision in one place: which autocast dtype a device gets, and the backward step.

* CUDA: bfloat16 autocast where the GPU supports it, else float16 with a gradient scaler.
* CPU: bfloat16 autocast where the processor runs bfloat16 natively (AVX512-BF16 or AMX),
  else float32.
* MPS and anything else: float32.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

PRECISION_ENV = "D2LHELPERS_PRECISION"  # "auto" (default), "fp32", "bf16" or "fp16"


def cpu_has_native_bf16() -> bool:
    """True when /proc/cpuinfo lists AVX512-BF16 or AMX-BF16 (Linux only)."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        return False
    flags = set()
    for line in cpuinfo.read_text().splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
            break
    return bool({"avx512_bf16", "amx_bf16"} & flags)


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
    """The precision for ``device``; ``request`` (or $D2LHELPERS_PRECISION) can force one."""
    request = (request or os.environ.get(PRECISION_ENV) or "auto").lower()
    choices = ("auto", "fp32", "bf16", "fp16")
    if request not in choices:
        raise ValueError(
            f"Unknown precision {request!r} (from argument or ${PRECISION_ENV}); "
            f"choose one of {', '.join(choices)}."
        )
    kind = device.type
    if request == "auto":
        request = _auto_precision(kind)
    if request == "fp32":
        return Precision(kind, None)
    if request == "fp16":
        if kind != "cuda":
            raise ValueError(f"fp16 autocast needs a CUDA device, not {kind}; use bf16 or fp32.")
        return Precision(kind, torch.float16, torch.amp.GradScaler("cuda"))
    return Precision(kind, torch.bfloat16)


def _auto_precision(kind: str) -> str:
    if kind == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if kind == "cpu" and cpu_has_native_bf16():
        return "bf16"
    return "fp32"
