"""Opening a library database safely.

A file that is not SQLite, a SQLite file of another program, or a library written by a newer
Photoseek is refused with a clear message and left untouched.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from engine.errors import LibraryError, SchemaTooNewError
from engine.store.schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION

log = logging.getLogger(__name__)

_BUSY_TIMEOUT_MS = 10_000


def _configure(conn: sqlite3.Connection) -> None:
    conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = NORMAL")


def _check_identity(conn: sqlite3.Connection, path: Path) -> int:
    """Return the schema version, refusing files that are not Photoseek libraries."""
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise LibraryError(f"{path} is not a Photoseek library (not an SQLite database: {exc})") from exc
    if tables and app_id != APPLICATION_ID:
        raise LibraryError(f"{path} is an SQLite database of another program, not a Photoseek library")
    if version > SCHEMA_VERSION:
        raise SchemaTooNewError(
            f"{path} was written by a newer Photoseek (library version {version}; this Photoseek "
            f"understands up to {SCHEMA_VERSION}). Update Photoseek to open it; it was not changed."
        )
    return int(version)


def connect(path: Path | str, *, create: bool = True) -> sqlite3.Connection:
    """Open (and create or migrate) the library at ``path`` for reading and writing."""
    path = Path(path)
    if not create and not path.exists():
        raise LibraryError(f"no library at {path}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
    except (OSError, sqlite3.Error) as exc:
        raise LibraryError(f"cannot open the library at {path}: {exc}") from exc
    try:
        version = _check_identity(conn, path)
        _configure(conn)
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            log.warning("library %s is in %s journal mode, not WAL", path, mode)
        if version < SCHEMA_VERSION:
            _migrate(conn, version, path)
    except sqlite3.OperationalError as exc:
        conn.close()
        raise LibraryError(f"cannot use the library at {path}: {exc}") from exc
    except LibraryError:
        conn.close()
        raise
    return conn


def _migrate(conn: sqlite3.Connection, version: int, path: Path) -> None:
    log.info("migrating library %s from version %d to %d", path, version, SCHEMA_VERSION)
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Another process may have migrated while we waited for the lock.
        current = conn.execute("PRAGMA user_version").fetchone()[0]
        for step in MIGRATIONS[current:]:
            step(conn)
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def open_reader(path: Path | str) -> sqlite3.Connection:
    """A connection for reading only (search, status). It never migrates or writes."""
    path = Path(path)
    if not path.exists():
        raise LibraryError(f"no library at {path}")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    except sqlite3.Error as exc:
        raise LibraryError(f"cannot open the library at {path}: {exc}") from exc
    version = _check_identity(conn, path)
    if version < SCHEMA_VERSION:
        conn.close()
        raise LibraryError(f"{path} needs an upgrade; open it once for writing first")
    conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
    return conn
