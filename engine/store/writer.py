"""The one writer: a thread that owns a connection and commits work in batches.

Everything an indexing run learns goes through here, one transaction per batch, so a crash or
kill at any moment leaves a library where each photo is either fully indexed or still pending.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from engine.errors import LibraryError
from engine.store.db import FileIdentity, connect, describe_error

log = logging.getLogger(__name__)

Work = Callable[[sqlite3.Connection], None]
AfterCommit = Callable[[], None]


class Writer:
    """Runs submitted work functions on one connection, in order, one transaction each."""

    def __init__(self, db_path: Path, *, max_pending: int = 8) -> None:
        self._db_path = db_path
        self._queue: queue.Queue[tuple[Work, AfterCommit | None] | None] = queue.Queue(maxsize=max_pending)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="photoseek-writer", daemon=True)
        self._ready = threading.Event()
        self._conn: sqlite3.Connection | None = None
        self._identity: FileIdentity | None = None
        self._thread.start()
        self._ready.wait()
        if self._error:
            self.check()

    def _run(self) -> None:
        try:
            self._conn = connect(self._db_path)
            self._identity = FileIdentity(self._db_path)
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        conn = self._conn
        while True:
            item = self._queue.get()
            if item is None:
                break
            if self._error is not None:
                continue  # drain: after a failure nothing more is written
            work, after = item
            try:
                if self._identity is not None:
                    self._identity.check()
                conn.execute("BEGIN IMMEDIATE")
                work(conn)
                conn.execute("COMMIT")
            except BaseException as exc:
                log.error("library write failed: %s", exc)
                self._error = exc
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                continue
            if after is not None:
                try:
                    after()
                except Exception:  # a listener's bug must not stop the writer
                    log.exception("after-commit callback failed")
        conn.close()

    def submit(self, work: Work, after: AfterCommit | None = None) -> None:
        """Queue ``work`` for its own transaction; ``after`` runs (on the writer thread) once it
        is committed."""
        self.check()
        self._queue.put((work, after))

    def check(self) -> None:
        """Raise :class:`LibraryError` if an earlier write failed (disk full, read-only, ...)."""
        if self._error is not None:
            if isinstance(self._error, LibraryError):
                raise LibraryError(str(self._error)) from self._error
            raise LibraryError(describe_error(self._error, self._db_path)) from self._error

    def close(self, timeout: float = 30.0) -> None:
        """Commit what was submitted and stop."""
        self._queue.put(None)
        deadline = time.monotonic() + timeout
        self._thread.join(max(0.0, deadline - time.monotonic()))
        self.check()
