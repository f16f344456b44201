"""Schema and forward migrations.

The version lives in ``PRAGMA user_version``; ``PRAGMA application_id`` marks the file as a
Photoseek library so that another program's database is never altered by mistake.

Embeddings and captions belong to a photo's *content* (its fingerprint), not to its path:
a moved, renamed or duplicated file reuses them without running any model again.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import sqlite_utils

APPLICATION_ID = 0x50534B31  # "PSK1"


def _v1(conn: sqlite3.Connection) -> None:
    db = sqlite_utils.Database(conn)
    db.table("meta").create({"key": str, "value": str}, pk="key")
    db.table("roots").create(
        {"id": int, "path": str, "added_at": float, "online": int, "last_sync": float},
        pk="id",
        not_null={"path", "added_at", "online"},
        defaults={"online": 1},
    )
    db.table("roots").create_index(["path"], unique=True)
    db.table("contents").create(
        {
            "id": int,
            "fingerprint": str,
            "format": str,
            "width": int,
            "height": int,
            "taken_at": str,
            "orientation": int,
            "created_at": float,
        },
        pk="id",
        not_null={"fingerprint", "created_at"},
    )
    db.table("contents").create_index(["fingerprint"], unique=True)
    db.table("photos").create(
        {
            "id": int,
            "root_id": int,
            "rel_path": str,
            "size": int,
            "mtime_ns": int,
            "content_id": int,
            "state": str,
            "error": str,
            "seen_at": float,
        },
        pk="id",
        not_null={"root_id", "rel_path", "size", "mtime_ns", "state"},
        foreign_keys=[("root_id", "roots", "id"), ("content_id", "contents", "id")],
    )
    db.table("photos").create_index(["root_id", "rel_path"], unique=True)
    db.table("photos").create_index(["content_id"])
    db.table("photos").create_index(["state"])
    db.table("embeddings").create(
        {"content_id": int, "model_id": str, "kind": str, "region": int, "box": str, "vector": bytes},
        pk=("content_id", "model_id", "kind", "region"),
        not_null={"content_id", "model_id", "kind", "region", "vector"},
        foreign_keys=[("content_id", "contents", "id")],
    )
    db.table("embeddings").create_index(["model_id", "kind"])
    db.table("captions").create(
        {"content_id": int, "model_id": str, "text": str, "phrases": str},
        pk=("content_id", "model_id"),
        not_null={"content_id", "model_id", "text"},
        foreign_keys=[("content_id", "contents", "id")],
    )
    db.table("photo_text").create(
        {"content_id": int, "engine": str, "text": str, "confidence": float},
        pk="content_id",
        not_null={"content_id", "engine", "text"},
        foreign_keys=[("content_id", "contents", "id")],
    )


def _v2(conn: sqlite3.Connection) -> None:
    """Contents of a removed folder's photos, kept ``until`` a time so that adding the folder
    back (the window's Undo) reuses their vectors, captions and text instead of running the
    models on every photo again."""
    sqlite_utils.Database(conn).table("kept_contents").create(
        {"content_id": int, "until": float},
        pk="content_id",
        not_null={"until"},
        foreign_keys=[("content_id", "contents", "id")],
    )


def _v3(conn: sqlite3.Connection) -> None:
    """Faces found in each content (the second pass): how many, and their boxes as JSON. A
    content without a row has not been looked at yet."""
    sqlite_utils.Database(conn).table("photo_faces").create(
        {"content_id": int, "engine": str, "faces": int, "boxes": str},
        pk="content_id",
        not_null={"content_id", "engine", "faces", "boxes"},
        foreign_keys=[("content_id", "contents", "id")],
    )


def _v4(conn: sqlite3.Connection) -> None:
    """The file system each folder was last seen on (``st_dev``): an empty folder on the same one
    was emptied, on another one it is a mount point whose drive is gone."""
    conn.execute("ALTER TABLE roots ADD COLUMN device INTEGER")


#: MIGRATIONS[i] upgrades a library from version i to version i + 1.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_v1, _v2, _v3, _v4]
SCHEMA_VERSION = len(MIGRATIONS)
