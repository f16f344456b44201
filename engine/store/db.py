"""Opening a library database safely.

A file that is not SQLite, a SQLite file of another program, or a library written by a newer
Photoseek is refused with a clear message and left untouched.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path

from engine.errors import LibraryError, SchemaTooNewError
from engine.store.schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION

log = logging.getLogger(__name__)

_BUSY_TIMEOUT_MS = 10_000


def describe_error(exc: BaseException, path: Path | str) -> str:
    """A sentence a person can act on for a failed library write (disk full, read-only, ...)."""
    text = str(exc) or exc.__class__.__name__
    lower = text.lower()
    if "disk is full" in lower or "no space" in lower:
        return f"the disk holding the library {path} is full; free some space and run again (nothing was lost)"
    if "readonly" in lower or "read-only" in lower:
        return f"the library {path} cannot be written (read-only file, folder or disk)"
    if "unable to open" in lower:
        return f"cannot open the library file {path} (its folder is missing or not writable)"
    if "disk i/o error" in lower:
        return f"the disk holding the library {path} reported an I/O error (full, removed or failing)"
    if "locked" in lower or "busy" in lower:
        return f"the library {path} stayed locked by another process for too long"
    return f"cannot write to the library {path}: {text}"


def describe_damage(exc: sqlite3.DatabaseError, path: Path | str) -> str:
    """What to say when SQLite finds the library file damaged ("database disk image is
    malformed") or, for its other errors, :func:`describe_error`'s sentence."""
    if isinstance(exc, sqlite3.OperationalError):
        return describe_error(exc, path)
    return (
        f"the library file {path} is damaged ({exc}). The photos themselves are not affected. "
        "Move the file away (keep it: `sqlite3 FILE .recover` may rescue what it holds) and index "
        "the folders again into a new library"
    )


def open_raw(path: Path, *, immutable: bool | None = None, shared: bool = False) -> sqlite3.Connection:
    """A read-only connection to whatever the file holds: no identity or version check (to
    examine a damaged or foreign file; the library's own readers check after). ``immutable``
    (no locks, no WAL: the only way to read a WAL library on read-only media) defaults to
    whether the file is on such media; ``shared``: usable from other threads."""
    if immutable is None:
        immutable = read_only_media(path)
    mode = "?mode=ro&immutable=1" if immutable else "?mode=ro"
    return sqlite3.connect(path.resolve().as_uri() + mode, uri=True, check_same_thread=not shared)


def check_library(path: Path | str) -> str:
    """SQLite's quick check of the library file, read only: "ok", or what is wrong with it (not
    a library, written by a newer Photoseek, damaged). An older library is "ok": opening it
    upgrades it."""
    path = Path(path)
    try:
        conn = open_raw(path)
    except sqlite3.Error as exc:
        return f"cannot open the library at {path}: {exc}"
    try:
        _check_identity(conn, path)
        found = [str(row[0]) for row in conn.execute("PRAGMA quick_check(5)")]
    except LibraryError as exc:
        return str(exc)
    except sqlite3.DatabaseError as exc:
        return describe_damage(exc, path)
    finally:
        conn.close()
    if found == ["ok"]:
        return "ok"
    # Its report: a header line, then a line a problem (page numbers, "invalid page number ...").
    problems = [line for row in found for line in row.splitlines() if line.strip() and not line.startswith("***")]
    return describe_damage(sqlite3.DatabaseError("; ".join(problems[:3]) or "damaged"), path)


def set_aside(path: Path | str) -> Path:
    """Rename a damaged library out of the way, keeping it (with its write-ahead log) beside
    where it was, so that a new library can be made at ``path``. Returns the new name."""
    path = Path(path)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
        n += 1
    # The log first: a log left behind at ``path`` would be read into the new library.
    for suffix in ("-wal", "-shm"):
        side = Path(f"{path}{suffix}")
        if side.exists():
            os.replace(side, f"{target}{suffix}")
    os.replace(path, target)
    return target


class FileIdentity:
    """Which file a connection opened, to notice the library being deleted or replaced under it.

    On POSIX an open connection goes on writing into a deleted (or renamed-over) file, so the
    work would silently vanish; checking the path still names the same file before each write
    turns that into a clear error.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        st = os.stat(path)
        self._key = (st.st_dev, st.st_ino)

    def check(self) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError as exc:
            raise LibraryError(f"the library file {self.path} was deleted while in use; stopped writing") from exc
        except OSError as exc:
            raise LibraryError(f"the library file {self.path} cannot be checked ({exc.strerror or exc})") from exc
        if (st.st_dev, st.st_ino) != self._key:
            raise LibraryError(
                f"the library file {self.path} was replaced by another file while in use; stopped writing. "
                "Open it again to use the new file."
            )


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
    except sqlite3.OperationalError as exc:  # e.g. "unable to open database file"
        raise LibraryError(f"cannot open the library at {path}: {exc}") from exc
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


def read_only_media(path: Path) -> bool:
    """Whether the library at ``path`` cannot be written at all: a read-only disk, or a file or
    folder this user cannot write. SQLite cannot make a WAL library's shared-memory file there,
    so such a library opens only as immutable (:func:`_open_immutable`)."""
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return True
    except (OSError, AttributeError):  # AttributeError: no statvfs (Windows)
        pass
    return not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK))


def _open_immutable(path: Path) -> sqlite3.Connection:
    """A library that cannot change while it is open (on read-only media): read without locks,
    WAL or migrations; a library of an older version cannot be upgraded there and is refused."""
    try:
        conn = open_raw(path, immutable=True, shared=True)
    except sqlite3.Error as exc:
        raise LibraryError(f"cannot open the library at {path}: {exc}") from exc
    try:
        version = _check_identity(conn, path)
        if version < SCHEMA_VERSION:
            raise LibraryError(
                f"the library {path} was written by an older Photoseek (library version {version}) and must be "
                f"upgraded to version {SCHEMA_VERSION} once, which needs write access; it is on a read-only disk "
                "or in a folder that cannot be written. Open it once where it can be written; it was not changed."
            )
    except LibraryError:
        conn.close()
        raise
    log.info("library %s is read-only: opened for reading only", path)
    return conn


def connect(path: Path | str, *, create: bool = True) -> sqlite3.Connection:
    """Open (and create or migrate) the library at ``path`` for reading and writing; a library
    on read-only media is opened for reading only (writing to it then fails with a clear
    message)."""
    path = Path(path)
    if not create and not path.exists():
        raise LibraryError(f"no library at {path}")
    if path.is_dir():
        raise LibraryError(f"{path} is a folder; a library is a file (for example {path / 'photoseek.sqlite3'})")
    if path.is_file() and read_only_media(path):
        return _open_immutable(path)
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
        raise LibraryError(describe_error(exc, path)) from exc
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
    if read_only_media(path):
        return _open_immutable(path)
    try:
        conn = open_raw(path, immutable=False, shared=True)
    except sqlite3.Error as exc:
        raise LibraryError(f"cannot open the library at {path}: {exc}") from exc
    version = _check_identity(conn, path)
    if version < SCHEMA_VERSION:
        conn.close()
        raise LibraryError(f"{path} needs an upgrade; open it once for writing first")
    conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
    return conn
