"""Atomic writes, locks with a fallback where flock is missing, and leftovers of killed runs."""

from __future__ import annotations

import errno
import json
import os
import re
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


@pytest.fixture(params=[0o022, 0o027, 0o002])
def umask(request: pytest.FixtureRequest) -> int:
    """The process's umask set to the parameter (and fileutil's reading of it refreshed)."""
    previous = os.umask(request.param)
    fileutil._umask.cache_clear()
    yield request.param
    os.umask(previous)
    fileutil._umask.cache_clear()


def test_what_is_written_gets_the_umasks_modes_not_private_ones(tmp_path: Path, umask) -> None:
    """mkstemp and mkdtemp create 0600 and 0700: another user could not read a data folder,
    cache or model; written files and moved folders get what the umask gives new ones."""
    assert fileutil._umask() == umask
    atomic_write(tmp_path / "a.bin", lambda f: f.write(b"x"))
    fileutil.replace_file(tmp_path / "b.bin", lambda f: f.write(b"x"))
    built = Path(fileutil.tempfile.mkdtemp(dir=tmp_path))
    move_into_place(built, tmp_path / "folder")
    for name, base in [("a.bin", 0o666), ("b.bin", 0o666), ("folder", 0o777)]:
        assert (tmp_path / name).stat().st_mode & 0o777 == base & ~umask, name


def test_replace_file_removes_what_killed_writers_left_under_the_lock(tmp_path: Path) -> None:
    target = tmp_path / "model.pt"
    killed = [tmp_path / f"model.pt.{tag}.tmp" for tag in ("a1b2", "c3d4")]
    for path in killed:
        path.write_bytes(b"half a model")
    other = tmp_path / "other.pt.e5f6.tmp"  # another file's: its own writer removes it
    other.write_bytes(b"")
    fileutil.replace_file(target, lambda f: f.write(b"whole"))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "model.pt",
        "model.pt.lock",
        other.name,
    ]
    assert target.read_bytes() == b"whole"


def disk_full(f) -> None:
    f.write(b"the first half")
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def disk_full_inside_torch_save(f) -> None:
    try:
        disk_full(f)
    except OSError:
        raise RuntimeError("PytorchStreamWriter failed writing file data/0") from None


@pytest.mark.parametrize("write", [disk_full, disk_full_inside_torch_save])
def test_a_full_disk_names_the_file_and_the_space_and_leaves_nothing(tmp_path: Path, write) -> None:
    target = tmp_path / "model.pt"
    target.write_bytes(b"the previous model")
    with pytest.raises(OSError, match=r"model\.pt: it needs about 3\.0 MiB, and .* MiB free") as e:
        atomic_write(target, write, size=3 << 20)
    assert e.value.errno == errno.ENOSPC
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]
    assert target.read_bytes() == b"the previous model"


def test_too_little_free_space_is_refused_before_writing(tmp_path: Path, monkeypatch) -> None:
    usage = fileutil.shutil.disk_usage(tmp_path)
    monkeypatch.setattr(fileutil.shutil, "disk_usage", lambda p: usage._replace(free=1 << 20))
    with pytest.raises(OSError, match=r"a\.bin: it needs about 2\.0 MiB, and .* 1\.0 MiB free"):
        atomic_write(tmp_path / "a.bin", lambda f: pytest.fail("written"), size=2 << 20)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("settings", "named"),
    [((), "Choose a writable folder"), (("D2LHELPERS_CACHE", "D2LHELPERS_DATA"),
     "D2LHELPERS_CACHE (or D2LHELPERS_DATA) to a writable folder")],
)  # fmt: skip
def test_an_unwritable_lock_folder_names_the_settings_that_move_it(
    tmp_path: Path, settings, named
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    lock = exclusive(blocker / "a.lock", settings=settings)
    with pytest.raises(PermissionError, match=re.escape(named)), lock:
        pass
