"""What machine a run is on, in a few words: for timing statements that name their machine.

A time printed on a page or in a report means little without the machine it was measured on
(CPUs of the same kind differ by 3-5x in training speed; see the README), so every timing the
package reports carries :func:`describe`'s line with it. This module also reads
/proc/cpuinfo for the rest of the package (the CPU's flags choose its precision).
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch


def cpuinfo_field(name: str) -> str | None:
    """The first processor's ``name`` entry in /proc/cpuinfo (Linux); None where there is
    none."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        return None
    for line in cpuinfo.read_text(errors="replace").splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return None


def cpu_name() -> str:
    """The processor's model name (Linux: /proc/cpuinfo), else what ``platform`` knows."""
    return (
        cpuinfo_field("model name") or platform.processor() or platform.machine() or "unknown CPU"
    )


def cpu_flags() -> set[str]:
    """The first processor's feature flags (Linux: /proc/cpuinfo); empty elsewhere."""
    return set((cpuinfo_field("flags") or "").split())


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
