"""Atomic writes, locks with a fallback where flock is missing, and leftovers of killed runs."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from d2lhelpers import fileutil
from d2lhelpers.fileutil import (
    LockTimeoutError,
    atomic_write,
    exclusive,
    move_into_place,
    remove_leftovers,
    temporary_pattern,
)


def no_flock(error: int):
    def flock(handle, operation) -> None:
        raise OSError(error, os.strerror(error))

    return flock


def dead_pid() -> int:
    """The id of a process that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture(params=["ENOLCK", "EOPNOTSUPP", "no fcntl"])
def without_flock(request, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file system without flock (some network drives), or Windows (no fcntl at all)."""
    if request.param == "no fcntl":
        monkeypatch.setattr(fileutil, "fcntl", None)
    else:
        monkeypatch.setattr(fileutil.fcntl, "flock", no_flock(getattr(errno, request.param)))


def test_fallback_lock_excludes_and_is_released(tmp_path: Path, without_flock) -> None:
    lock = tmp_path / "x.lock"
    with exclusive(lock):
        assert (tmp_path / "x.lock.d" / "owner.json").is_file()
        with pytest.raises(LockTimeoutError, match=r"x\.lock\.d"), exclusive(lock, timeout=0.05):
            pytest.fail("two holders")
    assert not (tmp_path / "x.lock.d").exists()
    with exclusive(lock, timeout=0.05):  # free again
        pass


def test_fallback_lock_serialises_threads(tmp_path: Path, without_flock) -> None:
    inside, overlaps = [], []

    def work() -> None:
        with exclusive(tmp_path / "y.lock", timeout=5):
            inside.append(1)
            overlaps.append(len(inside))
            inside.pop()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlaps == [1, 1, 1, 1]


def test_fallback_lock_of_a_dead_process_is_broken(tmp_path: Path, without_flock) -> None:
    folder = tmp_path / "z.lock.d"
    folder.mkdir()
    owner = {"pid": dead_pid(), "host": fileutil.socket.gethostname(), "token": "old"}
    (folder / "owner.json").write_text(json.dumps(owner))
    with exclusive(tmp_path / "z.lock", timeout=2):
        assert json.loads((folder / "owner.json").read_text())["pid"] == os.getpid()


def test_other_flock_errors_are_not_hidden(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(fileutil.fcntl, "flock", no_flock(errno.EBADF))
    with pytest.raises(OSError, match="Bad file descriptor"), exclusive(tmp_path / "w.lock"):
        pass


def test_unwritable_lock_folder_names_the_data_variable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(PermissionError, match="D2LHELPERS_DATA"), exclusive(blocker / "a.lock"):
        pass


def test_move_into_place_keeps_a_folder_another_run_finished(tmp_path: Path, monkeypatch) -> None:
    target, mine = tmp_path / "set", tmp_path / ".set-tmp"
    target.mkdir()
    (target / "theirs").write_text("")
    mine.mkdir()

    def windows_rename(src, dst) -> None:  # os.replace/rename cannot replace a folder there
        raise PermissionError(errno.EACCES, "Access is denied")

    monkeypatch.setattr(fileutil.os, "rename", windows_rename)
    move_into_place(mine, target)
    assert (target / "theirs").exists()
    with pytest.raises(PermissionError):
        move_into_place(mine, tmp_path / "absent")


def test_atomic_write_leaves_nothing_on_error_and_leftovers_are_found(tmp_path: Path) -> None:
    target = tmp_path / "a[1].bin"  # glob characters in the name

    def fail(f) -> None:
        f.write(b"half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(target, fail)
    assert list(tmp_path.iterdir()) == []
    killed = tmp_path / f"{target.name}.k1ll3d.tmp"
    killed.write_bytes(b"half")
    atomic_write(target, lambda f: f.write(b"whole"))
    assert remove_leftovers(tmp_path, temporary_pattern(target)) == [killed]
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]
    assert target.read_bytes() == b"whole"
