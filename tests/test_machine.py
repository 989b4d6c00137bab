"""Tests for d2lhelpers.machine: the line that names the machine a timing was measured on."""

from __future__ import annotations

import os

import torch

from d2lhelpers import machine


def test_cpu_description_names_the_model_cores_threads_and_precision(monkeypatch) -> None:
    monkeypatch.setattr(machine, "cpu_name", lambda: "Test CPU 9000")
    text = machine.describe(torch.device("cpu"), "fp32")
    assert text.startswith("CPU Test CPU 9000, ")
    assert f"{torch.get_num_threads()} threads, fp32" in text
    assert " cores, " in text


def test_cpu_name_reads_the_model_name(tmp_path, monkeypatch) -> None:
    assert machine.cpu_name()  # never empty
    fake = tmp_path / "cpuinfo"
    fake.write_text("processor\t: 0\nmodel name\t: Fake Xeon @ 2GHz\nflags\t: avx2\n")
    original = machine.Path
    monkeypatch.setattr(machine, "Path", lambda p: fake if p == "/proc/cpuinfo" else original(p))
    assert machine.cpu_name() == "Fake Xeon @ 2GHz"


def test_gpu_description_names_the_device(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    assert machine.describe(torch.device("cuda"), "fp16 autocast") == "GPU Tesla T4, fp16 autocast"


def test_usable_cores_is_at_least_one() -> None:
    assert 1 <= machine.usable_cores() <= (os.cpu_count() or 1)
