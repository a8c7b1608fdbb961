"""Guards shared by every writer of the project's stores and output directories.

Three rules, as trusted stores keep them (SQLite's lock-then-write, zarr's atomic renames):

- **One writer per store.** :func:`store_lock` holds an OS-level lock (``fcntl.flock``) on a
  lock file beside the store, ``.<name>.lock``, for the whole write. The kernel releases it when
  the holder exits, however it exits (``kill -9`` included), so a lock is never stale. A second
  writer is refused at once with one line naming the holder's process id, host and command,
  which the holder writes into the lock file. ``--overwrite`` takes the same lock first, so it
  never replaces a store another process is still writing. The holder removes the lock file
  when it is done (a writer that opened the file just before checks, after locking, that it
  still is the file at that path); one left by a killed writer is unlocked and simply reused.
- **Leftovers of killed writers are removed.** Writers build their output in hidden siblings,
  ``.<name>.tmp-<random>`` (and move the old output aside as ``.<name>.old-<random>``). Only
  the lock holder creates them, so once the lock is held any such sibling belongs to a writer
  that died: :func:`remove_leftovers` deletes them.
- **Overwrite only what this package wrote.** :func:`refuse_foreign` is the one message every
  writer gives for an existing path that is not its own output, ``overwrite`` or not.

The lock is re-entrant within one process (a command that creates a store and then fills it
takes it twice); it does not serialize threads of one process.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import logging
import os
import shutil
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from anatomy.errors import StoreExistsError, StoreLockedError

__all__ = ["lock_file", "refuse_foreign", "remove_leftovers", "store_lock", "try_lock"]

logger = logging.getLogger(__name__)

_guard = threading.Lock()
#: lock file -> [file descriptor, depth] of the locks this process holds
_held: dict[str, list[int]] = {}


def lock_file(path: str | os.PathLike[str]) -> Path:
    """The lock file of the store or directory ``path``: ``.<name>.lock`` beside it."""
    p = Path(os.path.abspath(path))
    return p.parent / f".{p.name}.lock"


def _holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        info = json.loads(os.read(fd, 4096).decode() or "{}")
    except (OSError, ValueError):
        info = {}
    if not isinstance(info, dict) or "pid" not in info:
        return "another process"
    what = f"process {info.get('pid')} on host {info.get('host', '?')}"
    if info.get("started"):
        what += f" (since {info['started']}"
        what += f": {info['command']})" if info.get("command") else ")"
    return what


@contextlib.contextmanager
def store_lock(path: str | os.PathLike[str], *, what: str = "store") -> Iterator[Path]:
    """Hold the write lock of ``path`` (a store or output directory) for the ``with`` block.

    Yields the lock file. The folder that holds ``path`` must exist.

    Raises
    ------
    StoreLockedError
        Another process holds the lock; the message names its pid, host and command.
    FileNotFoundError
        The folder that would hold ``path`` does not exist.
    """
    lock = lock_file(path)
    key = str(lock)
    with _guard:
        entry = _held.get(key)
        if entry is not None:
            entry[1] += 1
        else:
            if not lock.parent.is_dir():
                raise FileNotFoundError(
                    f"output folder {lock.parent} does not exist; create it first"
                )
            fd = _acquire(lock, path, what)
            info = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                "command": " ".join(os.path.basename(a) if i == 0 else a
                                    for i, a in enumerate(sys.argv))[:300],
            }
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
            _held[key] = [fd, 1]
    try:
        yield lock
    finally:
        with _guard:
            entry = _held[key]
            entry[1] -= 1
            if entry[1] == 0:
                del _held[key]
                # unlink while still holding: a process that opened the old file meanwhile
                # finds it unlinked after locking it and tries again (see _acquire)
                with contextlib.suppress(OSError):
                    os.unlink(lock)
                os.close(entry[0])  # closing the last descriptor releases the flock


def try_lock(lock: Path, *, create: bool) -> int | None:
    """Open ``lock`` and take its exclusive flock without waiting.

    Returns the descriptor, or None when another open file holds the lock (of this process
    or another) or, without ``create``, when the file does not exist. The lock is taken on the
    file that is at ``lock`` after locking: a holder that removed it meanwhile (holders unlink
    the file while still holding it, then close) makes us retry on the new file.
    """
    import fcntl

    flags = os.O_RDWR | (os.O_CREAT if create else 0)
    while True:
        try:
            fd = os.open(lock, flags, 0o644)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return None
            raise
        try:
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)
        if not create:
            return None


def _acquire(lock: Path, path: str | os.PathLike[str], what: str) -> int:
    """Open and lock ``lock`` without waiting; returns the descriptor."""
    fd = try_lock(lock, create=True)
    if fd is not None:
        return fd
    try:
        reader = os.open(lock, os.O_RDONLY)
    except OSError:
        holder = "another process"
    else:
        holder = _holder(reader)
        os.close(reader)
    raise StoreLockedError(
        f"{what} {Path(path)} is being written by {holder}; wait for it to finish or "
        f"stop it first (--overwrite never takes over a store in use)"
    )


def remove_leftovers(path: str | os.PathLike[str]) -> list[Path]:
    """Delete ``.<name>.tmp-*`` and ``.<name>.old-*`` siblings of ``path``; returns them.

    Call only while holding :func:`store_lock` for ``path``: then no live writer owns them.
    """
    p = Path(path)
    removed: list[Path] = []
    if not p.parent.is_dir():
        return removed
    for pattern in (f".{p.name}.tmp-*", f".{p.name}.old-*"):
        for leftover in p.parent.glob(pattern):
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
            removed.append(leftover)
    if removed:
        logger.info("removed %d leftover(s) of an interrupted write beside %s: %s",
                    len(removed), p, ", ".join(r.name for r in removed))
    return removed


def refuse_foreign(
    path: str | os.PathLike[str], what: str, error: type[Exception] = StoreExistsError
) -> Exception:
    """The error (of class ``error``) for an existing ``path`` that this package did not write
    as ``what``."""
    return error(
        f"{path} exists and is not {what} written by this package; refusing to replace it even "
        f"with --overwrite: remove it yourself or choose another path"
    )
