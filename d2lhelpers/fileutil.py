"""Files and folders that survive crashes, concurrent runs and odd file systems.

The one place for:

* :func:`atomic_write`: a file appears complete or not at all (temporary file, then rename);
* :func:`move_into_place`: the same for a folder built in a temporary folder;
* :func:`exclusive`: an exclusive lock between processes. It uses ``flock`` and falls back,
  where the file system has none (some network drives: ``ENOLCK``, ``EOPNOTSUPP``) and on
  Windows, to a lock folder created with ``mkdir`` (atomic everywhere) that records its owner;
  a lock folder whose owner process is dead (same host) is broken;
* :func:`remove_leftovers`: temporary files and folders that a killed run left behind. Call it
  only while holding the lock that every writer of those temporaries holds, so that no live
  process owns them;
* :func:`data_dir` and :func:`is_writable`: the folder for downloads and caches.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from .environment import DATA_DIR_ENV, data_dir_setting

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

__all__ = [
    "LockTimeoutError",
    "atomic_write",
    "data_dir",
    "display_path",
    "exclusive",
    "is_writable",
    "move_into_place",
    "remove_leftovers",
    "temporary_pattern",
]

LOCK_TIMEOUT = 3600.0  # seconds to wait for a lock held by another process
_NO_FLOCK_ERRNOS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL, errno.ENOSYS}
_ORPHAN_SECONDS = 60.0  # a lock folder without an owner record this old was abandoned


class LockTimeoutError(TimeoutError):
    """Another process held a lock for longer than the wait allowed."""


def display_path(path: str | os.PathLike) -> str:
    """``path`` printable anywhere: bytes that are not UTF-8 are shown as ``\\xNN`` escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """The folder for downloads, the stand-in and caches (created if missing).

    ``path`` if given, else ``$D2LHELPERS_DATA``, else ``~/.cache/d2lhelpers``. It may be
    read-only (a mounted data set) as long as nothing needs to be written there; what writes
    takes a lock first (:func:`exclusive`), which names ``D2LHELPERS_DATA`` when it cannot.
    Raises PermissionError naming ``D2LHELPERS_DATA`` when the folder cannot be created.
    """
    chosen = path or data_dir_setting() or Path.home() / ".cache" / "d2lhelpers"
    folder = Path(chosen).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise PermissionError(_unwritable_message(folder, err)) from err
    return folder


def _unwritable_message(folder: Path, err: OSError) -> str:
    """Explain that ``folder`` cannot be written and how to choose another one."""
    return (
        f"Cannot write in {display_path(folder)} ({err.strerror or err}; a read-only home or "
        f"mount?). Set the environment variable {DATA_DIR_ENV} to a writable folder, e.g. "
        f"{DATA_DIR_ENV}=/tmp/d2lhelpers."
    )


def is_writable(folder: Path) -> bool:
    """True when ``folder`` exists or can be created, and a file can be created in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def atomic_write(target: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write via ``write(file_object)`` into a temporary file, then rename onto ``target``.

    The temporary file is ``<target name>.<random>.tmp`` beside ``target``; it is removed on
    any error, and :func:`remove_leftovers` with :func:`temporary_pattern` finds it after a kill.
    """
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def temporary_pattern(target: Path) -> str:
    """The glob pattern (in ``target.parent``) of :func:`atomic_write`'s temporaries of it."""
    return f"{glob.escape(target.name)}.*.tmp"


def move_into_place(tmp: Path, target: Path) -> None:
    """Rename the finished folder ``tmp`` to ``target``; a ``target`` already there is kept.

    Another process that built the same folder may have finished first (on Windows
    ``os.replace`` cannot replace a folder); then ``tmp`` is left for the caller to remove.
    """
    try:
        os.rename(tmp, target)
    except OSError:
        if not target.is_dir():
            raise


def remove_leftovers(folder: Path, pattern: str) -> list[Path]:
    """Remove the files and folders in ``folder`` matching the glob ``pattern``; return them.

    Call it only while holding the lock that every process writing such temporaries holds.
    What cannot be removed (a file still open on Windows) is left and not returned.
    """
    removed = []
    for path in sorted(folder.glob(pattern)):
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        except OSError:  # in use (Windows: an open or memory-mapped file); left for later
            continue
        removed.append(path)
    return removed


@contextlib.contextmanager
def exclusive(lock_path: Path, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` between processes (see the module docstring).

    Raises PermissionError naming ``D2LHELPERS_DATA`` when the lock file cannot be created (a
    read-only folder), and LockTimeoutError naming the lock after ``timeout`` seconds of waiting
    on a fallback lock folder that a live process (or one on another host) holds.
    """
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(lock_path, "a")  # noqa: SIM115 (closed below)
    except OSError as err:
        raise PermissionError(_unwritable_message(lock_path.parent, err)) from err
    with handle:
        if _flock(handle):
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
            return
    with _lock_folder(lock_path.with_name(lock_path.name + ".d"), timeout):
        yield


def _flock(handle) -> bool:
    """Lock ``handle`` with ``flock`` (blocking); False where there is no ``flock``."""
    if fcntl is None:
        return False
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
    except OSError as err:
        if err.errno in _NO_FLOCK_ERRNOS:
            return False
        raise
    return True


@contextlib.contextmanager
def _lock_folder(folder: Path, timeout: float) -> Iterator[None]:
    """Hold the lock folder ``folder`` (created with mkdir); remove it afterwards."""
    owner = {"pid": os.getpid(), "host": socket.gethostname(), "token": uuid.uuid4().hex}
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        try:
            folder.mkdir()
            break
        except FileExistsError:
            _break_if_abandoned(folder)
        if time.monotonic() > deadline:
            raise LockTimeoutError(
                f"Waited {timeout:.0f} s for the lock {folder} (held by {_read_owner(folder)}). "
                "If no other run is using this data folder, delete that folder and try again."
            ) from None
        time.sleep(delay)
        delay = min(2 * delay, 0.5)
    try:
        atomic_write(folder / "owner.json", lambda f: f.write(json.dumps(owner).encode()))
        yield
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _read_owner(folder: Path) -> dict | None:
    """The owner record of a lock folder, or None when absent or unreadable."""
    try:
        return json.loads((folder / "owner.json").read_text())
    except (OSError, ValueError):
        return None


def _break_if_abandoned(folder: Path) -> None:
    """Remove the lock folder when its owner is dead on this host, or it never got an owner."""
    owner = _read_owner(folder)
    if owner is None:
        try:
            abandoned = time.time() - folder.stat().st_mtime > _ORPHAN_SECONDS
        except OSError:
            return
    else:
        abandoned = owner.get("host") == socket.gethostname() and not _alive(owner.get("pid"))
    if not abandoned:
        return
    trash = folder.with_name(f"{folder.name}.broken-{uuid.uuid4().hex}")
    try:
        os.rename(folder, trash)
    except OSError:
        return  # another waiter broke it first
    if _read_owner(trash) != owner:  # a live owner took the folder in between: give it back
        with contextlib.suppress(OSError):
            os.rename(trash, folder)
        return
    shutil.rmtree(trash, ignore_errors=True)


def _alive(pid: object) -> bool:
    """True unless ``pid`` is surely not a running process (on Windows: always True)."""
    if not isinstance(pid, int) or os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
