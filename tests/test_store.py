from __future__ import annotations

import sqlite3

import pytest

from engine.errors import LibraryError, SchemaTooNewError
from engine.store import SCHEMA_VERSION, connect
from engine.store.schema import APPLICATION_ID


def test_new_library_has_schema_and_wal(tmp_path):
    conn = connect(tmp_path / "lib.sqlite3")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"roots", "photos", "contents", "embeddings", "captions", "photo_text", "photo_faces", "meta"} <= tables


def test_library_from_a_newer_version_is_refused_and_untouched(tmp_path):
    path = tmp_path / "lib.sqlite3"
    connect(path).close()
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    before = path.read_bytes()
    with pytest.raises(SchemaTooNewError, match="newer Photoseek"):
        connect(path)
    assert path.read_bytes() == before


def test_other_files_are_refused(tmp_path):
    text = tmp_path / "notes.sqlite3"
    text.write_text("not a database at all " * 100)
    with pytest.raises(LibraryError, match="not a Photoseek library"):
        connect(text)
    other = tmp_path / "other.sqlite3"
    raw = sqlite3.connect(other)
    raw.execute("CREATE TABLE t (x)")
    raw.commit()
    raw.close()
    with pytest.raises(LibraryError, match="another program"):
        connect(other)


def test_reopening_keeps_data(tmp_path):
    path = tmp_path / "lib.sqlite3"
    conn = connect(path)
    with conn:
        conn.execute("INSERT INTO meta VALUES ('k', 'v')")
    conn.close()
    assert connect(path).execute("SELECT value FROM meta WHERE key = 'k'").fetchone()[0] == "v"


def test_a_library_of_version_1_is_migrated_with_its_data(tmp_path):
    from engine.store.schema import MIGRATIONS

    path = tmp_path / "lib.sqlite3"
    raw = sqlite3.connect(path)
    MIGRATIONS[0](raw)  # a library as the first version wrote it
    raw.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    raw.execute("PRAGMA user_version = 1")
    raw.execute("INSERT INTO roots (id, path, added_at, online) VALUES (1, '/photos', 0, 1)")
    raw.commit()
    raw.close()
    conn = connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
    assert conn.execute("SELECT path FROM roots").fetchall() == [("/photos",)]
    assert conn.execute("SELECT count(*) FROM kept_contents").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM photo_faces").fetchone()[0] == 0


def _indexed_library(tmp_path, tiny_bundle, rgb_folder, name: str = "lib.sqlite3"):
    from engine.library import Library

    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with Library(path, model=str(tiny_bundle), device="cpu") as library:
        library.add_root(rgb_folder)
        library.sync(read_text=False)
    return path


def test_a_library_on_read_only_media_can_be_searched_not_written(tmp_path, tiny_bundle, rgb_folder, monkeypatch):
    from engine.library import Library
    from engine.store import db

    path = _indexed_library(tmp_path, tiny_bundle, rgb_folder)
    # What a read-only disk looks like to the library (a tmpfs remounted read-only, by hand:
    # docs/reliability.md). SQLite cannot make a WAL library's shared-memory file there.
    monkeypatch.setattr(db, "read_only_media", lambda _path: True)
    before = path.read_bytes()
    with Library(path, device="cpu") as library:
        assert library.search("red").hits[0].photo.path.name == "red.jpg"
        assert library.status()["indexed"] == 3
        with pytest.raises(LibraryError, match="cannot be written"):
            library.remove_root(rgb_folder)
    assert path.read_bytes() == before


def test_an_older_library_on_read_only_media_is_refused_with_the_reason(tmp_path, monkeypatch):
    from engine.store import db
    from engine.store.schema import MIGRATIONS

    path = tmp_path / "lib.sqlite3"
    raw = sqlite3.connect(path)
    MIGRATIONS[0](raw)
    raw.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    raw.execute("PRAGMA user_version = 1")
    raw.commit()
    raw.close()
    monkeypatch.setattr(db, "read_only_media", lambda _path: True)
    with pytest.raises(LibraryError, match=r"older Photoseek \(library version 1\).*needs write access"):
        connect(path)
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 1


def test_a_library_whose_path_has_uri_characters_opens_for_reading(tmp_path, tiny_bundle, rgb_folder):
    from engine.library import Library

    # The index loads through a second, read-only connection opened by URI: '#', '?' and '%'
    # in a folder name must not cut the path short.
    path = _indexed_library(tmp_path, tiny_bundle, rgb_folder, name="photos #1? 100%/lib.sqlite3")
    with Library(path, device="cpu") as library:
        assert len(library.search_index()) == 3
        assert library.search("green").hits[0].photo.path.name == "green.png"
