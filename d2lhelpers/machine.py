"""What machine a run is on, in a few words: for timing statements that name their machine.

A time printed on a page or in a report means little without the machine it was measured on
(CPUs of the same kind differ by 3-5x in training speed; see the README), so every timing the
package reports carries :func:`describe`'s line with it.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch


def cpu_name() -> str:
    """The processor's model name (Linux: /proc/cpuinfo), else what ``platform`` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def describe(device: torch.device, precision: str) -> str:
    """E.g. ``"CPU AMD EPYC, 2 cores, 2 threads, bf16 autocast"`` or ``"GPU NVIDIA T4, fp16 …"``."""
    if device.type == "cuda":
        return f"GPU {torch.cuda.get_device_name(device)}, {precision}"
    return (
        f"CPU {cpu_name()}, {usable_cores()} cores, {torch.get_num_threads()} threads, {precision}"
    )
