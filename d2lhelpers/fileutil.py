"""Files and folders that survive crashes, concurrent runs and odd file systems.

The one place for:

* :func:`atomic_write`: a file appears complete or not at all (temporary file, then rename),
  with the mode the umask gives new files (``mkstemp`` makes them private), or an error naming
  it and the space it needs when the disk is full; :func:`replace_file` does it holding the
  file's lock, after removing the temporaries that killed writers left;
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
import functools
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
    "replace_file",
    "temporary_pattern",
    "umask_mode",
]

LOCK_TIMEOUT = 3600.0  # seconds to wait for a lock held by another process
_NO_FLOCK_ERRNOS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL, errno.ENOSYS}
_ORPHAN_SECONDS = 60.0  # a lock folder without an owner record this old was abandoned
_DISK_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


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
        raise PermissionError(_unwritable_message(folder, err, (DATA_DIR_ENV,))) from err
    return folder


def _unwritable_message(folder: Path, err: OSError, settings: tuple[str, ...]) -> str:
    """Explain that ``folder`` cannot be written and which setting chooses another one."""
    if settings:
        names = f"{settings[0]} (or {', '.join(settings[1:])})" if settings[1:] else settings[0]
        remedy = (
            f"Set the environment variable {names} to a writable folder, e.g. "
            f"{settings[0]}=/tmp/d2lhelpers."
        )
    else:
        remedy = "Choose a writable folder."
    return (
        f"Cannot write in {display_path(folder)} ({err.strerror or err}; a read-only home or "
        f"mount?). {remedy}"
    )


@functools.cache
def _umask() -> int:
    """The process's umask, read once: from ``/proc/self/status`` where it is listed (Linux),
    else by setting it and putting it back at once."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def umask_mode(path: Path) -> None:
    """Give ``path`` the mode the umask gives a new file (0o666) or folder (0o777): ``mkstemp``
    and ``mkdtemp`` create them private (0o600, 0o700), which other users cannot read."""
    os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~_umask())


def is_writable(folder: Path) -> bool:
    """True when ``folder`` exists or can be created, and a file can be created in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def atomic_write(target: Path, write: Callable[[BinaryIO], object], size: int = 0) -> None:
    """Write via ``write(file_object)`` into a temporary file, then rename onto ``target``.

    The temporary file is ``<target name>.<random>.tmp`` beside ``target``; it is removed on
    any error, and :func:`remove_leftovers` with :func:`temporary_pattern` finds it after a kill.
    ``target`` gets the umask's mode. ``size``, about the bytes ``write`` writes, is checked
    against the free space first; a full disk is an OSError (ENOSPC) naming ``target``.
    """
    _check_space(target, size)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask_mode(Path(tmp))
        os.replace(tmp, target)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if _disk_full(err):
            raise _no_space(target, size) from err
        raise


def replace_file(target: Path, write: Callable[[BinaryIO], object], size: int = 0) -> None:
    """:func:`atomic_write` holding ``target``'s lock (``<name>.lock`` beside it), after
    removing the temporaries of ``target`` that killed writers left; an unwritable folder is
    a PermissionError naming it."""
    with exclusive(target.with_name(target.name + ".lock"), settings=()):
        remove_leftovers(target.parent, temporary_pattern(target))
        atomic_write(target, write, size)


def _check_space(target: Path, size: int) -> None:
    """OSError (ENOSPC) naming ``target`` when its folder has less than ``size`` bytes free."""
    if size and shutil.disk_usage(target.parent).free < size:
        raise _no_space(target, size)


def _disk_full(err: BaseException | None) -> bool:
    """Whether ``err``, or an error it was raised from or during, is a full disk (torch.save
    turns one into a RuntimeError raised while handling it)."""
    while err is not None:
        if isinstance(err, OSError) and err.errno in _DISK_FULL_ERRNOS:
            return True
        err = err.__cause__ or err.__context__
    return False


def _no_space(target: Path, size: int) -> OSError:
    free = shutil.disk_usage(target.parent).free
    needed = f"about {size / 2**20:,.1f} MiB" if size else "more than that"
    return OSError(
        errno.ENOSPC,
        f"Not enough free space to write {display_path(target)}: it needs {needed}, and "
        f"{display_path(target.parent)} has {free / 2**20:,.1f} MiB free. Free some space or "
        "write it elsewhere; nothing was written",
    )


def temporary_pattern(target: Path) -> str:
    """The glob pattern (in ``target.parent``) of :func:`atomic_write`'s temporaries of it."""
    return f"{glob.escape(target.name)}.*.tmp"


def move_into_place(tmp: Path, target: Path) -> None:
    """Rename the finished folder ``tmp`` to ``target``; a ``target`` already there is kept.

    Another process that built the same folder may have finished first (on Windows
    ``os.replace`` cannot replace a folder); then ``tmp`` is left for the caller to remove.
    ``target`` gets the umask's mode (``mkdtemp`` makes ``tmp`` private).
    """
    umask_mode(tmp)
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
def exclusive(
    lock_path: Path, timeout: float = LOCK_TIMEOUT, settings: tuple[str, ...] = (DATA_DIR_ENV,)
) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` between processes (see the module docstring).

    Raises PermissionError naming the folder and the environment variables ``settings`` that
    choose another one (none: the caller chose it) when the lock file cannot be created (a
    read-only folder), and LockTimeoutError naming the lock after ``timeout`` seconds of waiting
    on a fallback lock folder that a live process (or one on another host) holds.
    """
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(lock_path, "a")  # noqa: SIM115 (closed below)
    except OSError as err:
        raise PermissionError(_unwritable_message(lock_path.parent, err, settings)) from err
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
