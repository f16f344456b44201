"""Recording what changed in a photo folder in the library's ``photos`` table.

Both the full scan (:meth:`engine.library.Library.scan`) and the watcher's change batches end
here. Nothing in this module reads file contents: it records new and changed files as pending
(the pipeline fingerprints them and reuses stored vectors for known content), forgets deleted
ones, and moves rows in place when a file or folder was renamed, so a rename needs no reading
at all. Contents that lose their last photo are *not* deleted here: garbage collection runs
later (after a full scan, or after a quiet grace period while watching), so a delete seen before
the matching create never drops vectors that are about to be reused.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass, field

from engine.ingest.scan import FileEntry, WalkReport


@dataclass
class ChangeCounts:
    """What one recording step did, with the photo ids whose rows changed (for listeners)."""

    new: int = 0
    changed: int = 0
    removed: int = 0
    moved: int = 0
    removed_ids: list[int] = field(default_factory=list)
    moved_ids: list[int] = field(default_factory=list)
    pending_ids: list[int] = field(default_factory=list)  # new or changed: to be indexed

    def add(self, other: ChangeCounts) -> None:
        self.new += other.new
        self.changed += other.changed
        self.removed += other.removed
        self.moved += other.moved
        self.removed_ids += other.removed_ids
        self.pending_ids += other.pending_ids
        self.moved_ids += other.moved_ids


def _under(rel: str) -> tuple[str, tuple[str, int, str]]:
    """SQL (and its arguments) for "rel_path is ``rel`` or inside it", without LIKE's wildcards."""
    prefix = rel.rstrip(os.sep) + os.sep
    return "(rel_path = ? OR substr(rel_path, 1, ?) = ?)", (rel, len(prefix), prefix)


def record_walk(
    conn: sqlite3.Connection, root_id: int, walked: WalkReport, now: float, under: str | None = None
) -> ChangeCounts:
    """Make the rows of a root (or of the subtree ``under`` of it) match a walk of it.

    Files under a folder the walk could not read are kept: unreadable is not deleted.
    """
    counts = ChangeCounts()
    sql = "SELECT rel_path, id, size, mtime_ns FROM photos WHERE root_id = ?"
    args: tuple[object, ...] = (root_id,)
    if under is not None:
        cond, extra = _under(under)
        sql += " AND " + cond
        args += extra
    known = {r[0]: (r[1], r[2], r[3]) for r in conn.execute(sql, args)}
    for entry in walked.files:
        row = known.pop(entry.rel_path, None)
        if row is None:
            counts.pending_ids.append(_insert(conn, root_id, entry, now))
            counts.new += 1
        elif (row[1], row[2]) != (entry.size, entry.mtime_ns):
            _mark_changed(conn, row[0], entry)
            counts.pending_ids.append(row[0])
            counts.changed += 1
    unreadable = [rel for rel, _ in walked.problems]
    gone = [
        row[0]
        for rel, row in known.items()
        if not any(d == "." or rel == d or rel.startswith(d.rstrip(os.sep) + os.sep) for d in unreadable)
    ]
    conn.executemany("DELETE FROM photos WHERE id = ?", [(i,) for i in gone])
    counts.removed += len(gone)
    counts.removed_ids += gone
    return counts


def _insert(conn: sqlite3.Connection, root_id: int, entry: FileEntry, now: float) -> int:
    cursor = conn.execute(
        "INSERT INTO photos (root_id, rel_path, size, mtime_ns, state, seen_at) VALUES (?, ?, ?, ?, 'pending', ?)",
        (root_id, entry.rel_path, entry.size, entry.mtime_ns, now),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def _mark_changed(conn: sqlite3.Connection, photo_id: int, entry: FileEntry) -> None:
    conn.execute(
        "UPDATE photos SET size = ?, mtime_ns = ?, state = 'pending', error = NULL, content_id = NULL WHERE id = ?",
        (entry.size, entry.mtime_ns, photo_id),
    )


def record_file(conn: sqlite3.Connection, root_id: int, rel: str, entry: FileEntry | None, now: float) -> ChangeCounts:
    """One path seen by the watcher: ``entry`` is the file as it is now, or None if it is not a
    photo any more (deleted, renamed to another extension) — then it and anything under it
    (it may have been a folder) are forgotten."""
    counts = ChangeCounts()
    if entry is None:
        return forget(conn, root_id, rel)
    row = conn.execute(
        "SELECT id, size, mtime_ns FROM photos WHERE root_id = ? AND rel_path = ?", (root_id, entry.rel_path)
    ).fetchone()
    if row is None:
        counts.pending_ids.append(_insert(conn, root_id, entry, now))
        counts.new += 1
    elif (row[1], row[2]) != (entry.size, entry.mtime_ns):
        _mark_changed(conn, row[0], entry)
        counts.pending_ids.append(row[0])
        counts.changed += 1
    return counts


def forget(conn: sqlite3.Connection, root_id: int, rel: str) -> ChangeCounts:
    """Forget the photo at ``rel`` and every photo under it (a deleted file or folder)."""
    cond, args = _under(rel)
    ids = [r[0] for r in conn.execute(f"SELECT id FROM photos WHERE root_id = ? AND {cond}", (root_id, *args))]
    conn.executemany("DELETE FROM photos WHERE id = ?", [(i,) for i in ids])
    return ChangeCounts(removed=len(ids), removed_ids=ids)


def move(conn: sqlite3.Connection, src_root: int, src_rel: str, dest_root: int, dest_rel: str) -> ChangeCounts:
    """A file or folder renamed or moved inside the library: its rows follow it, keeping their
    ids, state and content (so no model runs again). What the destination held before was
    overwritten by the move, so its rows are forgotten first."""
    counts = ChangeCounts()
    if (src_root, src_rel) == (dest_root, dest_rel):
        return counts
    cond, args = _under(src_rel)
    moving = conn.execute(f"SELECT id, rel_path FROM photos WHERE root_id = ? AND {cond}", (src_root, *args)).fetchall()
    if not moving:
        return counts
    moving_ids = {r[0] for r in moving}
    cond, args = _under(dest_rel)
    replaced = [
        r[0]
        for r in conn.execute(f"SELECT id FROM photos WHERE root_id = ? AND {cond}", (dest_root, *args))
        if r[0] not in moving_ids
    ]
    conn.executemany("DELETE FROM photos WHERE id = ?", [(i,) for i in replaced])
    counts.removed, counts.removed_ids = len(replaced), replaced
    # Two steps so that renames inside one folder (a -> b, b -> a) never collide on the unique path.
    for photo_id, _ in moving:
        conn.execute("UPDATE photos SET rel_path = ? WHERE id = ?", (f"\x00moving\x00{photo_id}", photo_id))
    for photo_id, rel in moving:
        tail = rel[len(src_rel.rstrip(os.sep)) + 1 :]
        new_rel = dest_rel if rel == src_rel else dest_rel.rstrip(os.sep) + os.sep + tail
        conn.execute("UPDATE photos SET root_id = ?, rel_path = ? WHERE id = ?", (dest_root, new_rel, photo_id))
    counts.moved = len(moving)
    counts.moved_ids = [r[0] for r in moving]
    return counts
