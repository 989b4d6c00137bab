"""Which processes of a data-parallel job run on this machine, and ending one that is stopped.

A process stopped by a signal (SIGSTOP, or SIGTSTP from Ctrl-Z) cannot take part in the job
and cannot end either: it ignores the SIGTERM that ``torchrun`` sends when another process
fails, until ``torchrun`` kills it after a grace period of 30 s. So every process of the job
watches the others on its machine (:class:`StoppedPeerWatch`, on Linux, where ``/proc`` says
whether a process is stopped and when it started) and kills one that has been stopped for
longer than the job's timeout: by then a collective operation waiting for it has failed, or
will when it resumes. ``torchrun`` then ends the job at once.

Every process is named by a :class:`ProcessId`: its machine (host name, boot id and PID
namespace: two containers on one host are two machines here), its pid, and its start time
(so that a pid reused by another process is not mistaken for it).
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class ProcessId:
    """A process: ``machine`` and ``started`` are None where ``/proc`` cannot say them."""

    machine: str | None
    pid: int
    started: str | None


def this_process() -> ProcessId:
    """The :class:`ProcessId` of the calling process."""
    pid = os.getpid()
    return ProcessId(_this_machine(), pid, _stat(pid)[1])


@functools.cache  # read once: the watch asks every second
def _this_machine() -> str | None:
    """Host name, boot id and PID namespace, or None where ``/proc`` has no boot id or
    namespace (not Linux)."""
    try:
        boot_id = (PROC / "sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink(PROC / "self/ns/pid")
    except OSError:
        return None
    return f"{socket.gethostname()} {boot_id} {namespace}"


def _stat(pid: int) -> tuple[str | None, str | None]:
    """The state letter and start time of process ``pid`` from ``/proc/<pid>/stat``, or
    (None, None) when there is no such process or no ``/proc``."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None, None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (name) ", whatever the name
    return fields[0], fields[19]  # the 3rd and the 22nd fields of the line


def on_this_machine(process: ProcessId) -> bool:
    """Whether ``process`` runs on this machine (never where ``/proc`` cannot tell)."""
    return process.machine is not None and process.machine == _this_machine()


def is_stopped(process: ProcessId) -> bool:
    """Whether ``process`` runs on this machine and is stopped by a signal (state ``T``); a
    process held by a debugger (state ``t``) is not counted."""
    if not on_this_machine(process):
        return False
    state, started = _stat(process.pid)
    return state == "T" and started == process.started


class StoppedPeerWatch:
    """A daemon thread that kills (SIGKILL) each of ``peers`` (processes by name, such as their
    ranks) that has been stopped (:func:`is_stopped`) for longer than ``after`` seconds,
    looking every ``interval`` seconds. :meth:`end_stopped` kills those stopped now, however
    long; ``ended`` lists the names of those killed; :meth:`close` (or leaving a ``with``
    block) ends the watch.

    Time during which the watch itself was stopped is not counted: after Ctrl-Z stops the
    whole job, a peer that resumes a moment later than this process is not taken for stopped.
    """

    def __init__(self, peers: dict[int, ProcessId], after: float, interval: float = 1.0) -> None:
        self.peers, self.after, self.interval = peers, after, interval
        self.ended: list[int] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="d2lhelpers-peers", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        stopped_for: dict[int, float] = {}  # seconds seen stopped, counted between looks
        last = time.monotonic()
        while not self._closed.wait(self.interval):
            now = time.monotonic()
            step = min(now - last, 2 * self.interval)  # a longer gap: this process was stopped
            last = now
            for name, peer in self.peers.items():
                if not is_stopped(peer):
                    stopped_for.pop(name, None)
                    continue
                stopped_for[name] = stopped_for.get(name, 0.0) + step
                if stopped_for[name] > self.after:
                    self._kill(name, peer)

    def _kill(self, name: int, peer: ProcessId) -> None:
        with self._lock:
            if name in self.ended:
                return
            try:
                os.kill(peer.pid, signal.SIGKILL)
            except ProcessLookupError:
                return  # it ended meanwhile
            self.ended.append(name)

    def end_stopped(self) -> list[int]:
        """Kill every peer stopped now (as when a collective operation has just timed out
        waiting for it); return the names of all those killed so far."""
        for name, peer in self.peers.items():
            if is_stopped(peer):
                self._kill(name, peer)
        with self._lock:
            return list(self.ended)

    def close(self) -> None:
        """End the watch (it kills nobody afterwards)."""
        self._closed.set()
        self._thread.join()

    def __enter__(self) -> StoppedPeerWatch:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
