"""One writing process per library.

SQLite serialises single transactions, but two processes that both scan and index one library
would race each other's work (both embed the same new photo, one deletes what the other just
found). So the process that writes holds an OS lock (``flock``/``LockFileEx`` through
:mod:`filelock`) on ``<library>.lock``; a second writer is refused with
:class:`~engine.errors.LibraryBusyError`. The OS drops the lock when the holder exits, even by
SIGKILL, so a crash never leaves a library locked. Readers (search, status) take no lock.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import filelock

from engine.errors import LibraryBusyError, LibraryError

log = logging.getLogger(__name__)


def lock_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".lock")


class WriterLock:
    """The library's writer lock, reentrant within this process (across threads)."""

    def __init__(self, db_path: Path) -> None:
        self.path = lock_path(db_path)
        self._lock = filelock.FileLock(self.path, thread_local=False, on_acquired=self._write_owner)
        self._guard = threading.Lock()

    @staticmethod
    def _write_owner(fd: int) -> None:
        # Who holds the lock, so that a refused writer can say so. Only informative.
        owner = {"pid": os.getpid(), "program": os.path.basename(sys.argv[0] or "python")}
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(owner).encode())

    def owner(self) -> str:
        """A short description of the process holding the lock (best effort)."""
        try:
            info = json.loads(self.path.read_text(encoding="utf-8"))
            return f"process {int(info['pid'])} ({info.get('program', '?')})"
        except (OSError, ValueError, KeyError, TypeError):
            return "another process"

    @property
    def held(self) -> bool:
        return self._lock.is_locked

    def acquire(self) -> None:
        """Take the lock (or one more level of it) without waiting; refuse if another process has it."""
        with self._guard:
            try:
                self._lock.acquire(timeout=0)
            except filelock.Timeout as exc:
                raise LibraryBusyError(
                    f"the library {self.path.with_suffix('')} is being updated by {self.owner()}; "
                    "wait for it to finish or close it there (searching works meanwhile)"
                ) from exc
            except OSError as exc:
                raise LibraryError(
                    f"cannot lock the library for writing ({self.path}: {exc.strerror or exc}); "
                    "is its folder read-only?"
                ) from exc

    def release(self) -> None:
        with self._guard:
            if self._lock.is_locked:
                self._lock.release()

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()
