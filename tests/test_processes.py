"""Tests for d2lhelpers.processes: telling a stopped process of this machine, and the watch
that kills one stopped for too long (Linux: /proc)."""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from d2lhelpers import processes
from d2lhelpers.processes import (
    ProcessId,
    StoppedPeerWatch,
    is_stopped,
    on_this_machine,
    this_process,
)

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


@pytest.fixture
def sleeper() -> Iterator[tuple[subprocess.Popen, ProcessId]]:
    """A child process that sleeps, and its ProcessId as it would tell it."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    me = this_process()
    started = Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    yield child, ProcessId(me.machine, child.pid, started)
    child.kill()
    child.wait()


def _wait_for(condition, seconds: float = 5.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_this_process_is_on_this_machine_and_running() -> None:
    me = this_process()
    assert me.machine and me.started
    assert on_this_machine(me) and not is_stopped(me)


def test_a_stopped_process_is_told_and_a_resumed_one_is_not(sleeper) -> None:
    child, peer = sleeper
    child.send_signal(signal.SIGSTOP)
    assert _wait_for(lambda: is_stopped(peer))
    child.send_signal(signal.SIGCONT)
    assert _wait_for(lambda: not is_stopped(peer))


def test_another_process_with_the_same_pid_or_another_machine_is_not_taken(sleeper) -> None:
    child, peer = sleeper
    child.send_signal(signal.SIGSTOP)
    assert _wait_for(lambda: is_stopped(peer))
    assert not is_stopped(dataclasses.replace(peer, started="1"))  # the pid reused
    assert not is_stopped(dataclasses.replace(peer, machine="elsewhere " + str(peer.machine)))
    assert not is_stopped(dataclasses.replace(peer, machine=None))  # where /proc cannot tell


def test_the_watch_kills_a_peer_stopped_for_longer_than_its_time(sleeper) -> None:
    child, peer = sleeper
    with StoppedPeerWatch({1: peer}, after=0.3, interval=0.05) as watch:
        child.send_signal(signal.SIGSTOP)
        assert child.wait(timeout=10) == -signal.SIGKILL
        assert watch.ended == [1]


def test_the_watch_spares_a_running_peer_and_one_stopped_briefly(sleeper) -> None:
    child, peer = sleeper
    with StoppedPeerWatch({1: peer}, after=1.0, interval=0.05) as watch:
        time.sleep(0.3)
        child.send_signal(signal.SIGSTOP)
        time.sleep(0.3)
        child.send_signal(signal.SIGCONT)
        time.sleep(1.5)  # longer than ``after`` in all, never stopped that long at once
        assert child.poll() is None and watch.ended == []


def test_time_the_watch_itself_was_stopped_is_not_counted(sleeper, monkeypatch) -> None:
    """Its clock jumps 1000 s between two looks (as when Ctrl-Z stopped the whole job, the
    watch's process too): that gap counts as two intervals, not as 1000 s of the peer being
    stopped. With looks every 0.2 s and a limit of 1 s, the peer is killed at about 1 s, not
    at the jump (0.4 s)."""
    child, peer = sleeper
    child.send_signal(signal.SIGSTOP)
    assert _wait_for(lambda: is_stopped(peer))
    calls = iter(range(10**6))  # the watch's: its start, then one per look
    clock = types.SimpleNamespace(monotonic=lambda: time.monotonic() + 1000 * (next(calls) >= 2))
    monkeypatch.setattr(processes, "time", clock)
    begun = time.perf_counter()
    with StoppedPeerWatch({1: peer}, after=1.0, interval=0.2) as watch:
        time.sleep(max(0.0, 0.7 - (time.perf_counter() - begun)))
        assert child.poll() is None and watch.ended == []
        assert child.wait(timeout=10) == -signal.SIGKILL
        assert watch.ended == [1]


def test_end_stopped_kills_a_stopped_peer_at_once(sleeper) -> None:
    child, peer = sleeper
    with StoppedPeerWatch({3: peer}, after=3600, interval=3600) as watch:
        assert watch.end_stopped() == []  # running: spared
        child.send_signal(signal.SIGSTOP)
        assert _wait_for(lambda: is_stopped(peer))
        assert watch.end_stopped() == [3]
        assert child.wait(timeout=10) == -signal.SIGKILL
        assert watch.end_stopped() == [3]  # killed once, listed once


def test_a_closed_watch_kills_nobody(sleeper) -> None:
    child, peer = sleeper
    watch = StoppedPeerWatch({1: peer}, after=0.1, interval=0.05)
    watch.close()
    child.send_signal(signal.SIGSTOP)
    time.sleep(0.5)
    assert watch.ended == []
    child.send_signal(signal.SIGCONT)
    assert child.poll() is None
