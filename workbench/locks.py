"""One writer per folder: an advisory lock (``fcntl.flock``) on ``<folder>/.lock``.

The kernel holds the lock, not the file: a killed writer's lock is released the instant its process dies,
so nothing is ever "taken over" and two processes can never hold one folder together (a pid in a file,
checked and replaced by whoever comes next, let two of three racing processes in). The file also names
the holder (pid, host, since) for the refusal message. Within a process the lock is per thread: the
thread that holds it may enter again (a stage inside a stage); another thread is refused like another
process would be.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

LOCK = ".lock"


class FolderBusy(ConfigError):
    """Another process (or thread) is writing the folder."""

    def __init__(self, folder: Path, holder: dict):
        self.folder, self.holder = folder, holder
        super().__init__(f"{folder} is being written by pid {holder.get('pid', '?')} on {holder.get('host', '?')} "
                         f"since {holder.get('since', '?')}; wait for it to finish or stop it, or write to another "
                         "folder.")


@dataclass
class _Held:
    thread: int
    fd: int
    depth: int = 1


_held: dict[str, _Held] = {}
_registry = threading.Lock()


def holder_of(folder: str | os.PathLike) -> dict:
    """Who holds (or last held) ``folder``'s lock, as its lock file says; {} when nobody wrote one."""
    try:
        return json.loads((Path(folder) / LOCK).read_text() or "{}")
    except (OSError, ValueError):
        return {}


def _try_lock(path: Path) -> int | None:
    """An fd holding the lock on ``path``, or None when someone else holds it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:  # the holder before us may have unlinked the file between our open and our lock: then retry
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


def _is_rank_zero() -> bool:
    """Processes of one ``accelerate launch`` share their folder, so only rank 0 locks."""
    return int(os.environ.get("LOCAL_RANK", os.environ.get("RANK", "0")) or 0) == 0


@contextlib.contextmanager
def folder_lock(directory: str | os.PathLike, wait: float = 0.0):
    """Hold ``directory``'s lock for the block, or raise :class:`FolderBusy` naming the holder. ``wait``:
    seconds to keep trying first (a delete waiting for a cancelled job to let go). Leftovers of a killed
    writer (``.*.tmp``) are removed once the lock is held."""
    root = Path(directory)
    if not _is_rank_zero():
        yield
        return
    root.mkdir(parents=True, exist_ok=True)
    key, me = str(root.resolve()), threading.get_ident()
    with _registry:
        held = _held.get(key)
        if held is not None and held.thread == me:
            held.depth += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _registry:
                _held[key].depth -= 1
        return
    path, deadline, fd = root / LOCK, time.monotonic() + wait, None
    while fd is None:
        with _registry:
            other_thread = key in _held
            if not other_thread:
                fd = _try_lock(path)
                if fd is not None:
                    _held[key] = _Held(thread=me, fd=fd)
        if fd is None:
            if time.monotonic() >= deadline:
                holder = holder_of(root)
                if other_thread:
                    holder = {**holder, "pid": os.getpid(), "host": socket.gethostname()}
                raise FolderBusy(root, holder)
            time.sleep(0.05)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                  "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}).encode(), 0)
        clean_stale_temporaries(root)
        yield
    finally:
        with _registry:
            _held.pop(key, None)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # before unlocking: a process that opened it meanwhile sees another inode and retries
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def clean_stale_temporaries(directory: str | os.PathLike) -> list[Path]:
    """Remove what a killed writer left: ``.<name>.*.tmp`` files of atomic writes and ``.*.tmp`` staging
    folders. Only call it while holding the folder's lock."""
    import shutil

    removed = []
    root = Path(directory)
    if not root.is_dir():
        return removed
    for path in sorted(root.rglob(".*.tmp"), key=lambda p: len(p.parts)):
        if not path.exists() and not path.is_symlink():
            continue  # inside a staging folder removed just before
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed
