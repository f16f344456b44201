"""Two programs on one library, and a library file that changes under a running program."""

from __future__ import annotations

import os

import pytest

from engine.errors import LibraryBusyError, LibraryError
from engine.library import Library


def test_a_second_writer_is_refused_clearly_while_readers_keep_searching(tmp_path, tiny_bundle, rgb_folder):
    db = tmp_path / "lib.sqlite3"
    with Library(db, model=str(tiny_bundle), device="cpu") as first:
        first.add_root(rgb_folder)
        first.sync(read_text=False)
        service = first.watch()  # holds the writer lock, like an open desktop app
        try:
            with Library(db, model=str(tiny_bundle), device="cpu") as second:
                with pytest.raises(LibraryBusyError, match="being updated by process"):
                    second.sync(read_text=False)
                hits = second.search("red").hits  # reading is never refused
                assert hits and hits[0].photo.path.name == "red.jpg"
        finally:
            service.stop()
        with Library(db, model=str(tiny_bundle), device="cpu") as third:  # free again once stopped
            third.sync(read_text=False)


@pytest.mark.parametrize("what", ["deleted", "replaced"])
def test_a_library_file_deleted_or_replaced_while_open_is_not_written(tmp_path, tiny_bundle, rgb_folder, what):
    db = tmp_path / "lib.sqlite3"
    library = Library(db, model=str(tiny_bundle), device="cpu")
    library.add_root(rgb_folder)
    for suffix in ("", "-wal", "-shm"):
        if what == "deleted" and os.path.exists(f"{db}{suffix}"):
            os.remove(f"{db}{suffix}")
    if what == "replaced":
        os.replace(db, tmp_path / "moved-away.sqlite3")
        db.write_bytes(b"")
    with pytest.raises(LibraryError, match=r"library file .* was (deleted|replaced)"):
        library.sync(read_text=False)
    library.close()
    if what == "replaced":
        assert db.read_bytes() == b""  # the new file was not written into


def refuse_to_open(monkeypatch, name: str, error: type[OSError]) -> None:
    """Permission bits do not stop root, so a refusal is simulated where the file is opened."""
    import engine.ingest.decode as decode

    real_open = os.open

    def guarded_open(file, *args, **kwargs):
        if os.fsdecode(file).endswith(name):
            raise error(13, "simulated", os.fsdecode(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(decode.os, "open", guarded_open)


def test_unreadable_files_fail_with_a_reason_and_indexing_goes_on(tmp_path, tiny_bundle, rgb_folder, monkeypatch):
    refuse_to_open(monkeypatch, "red.jpg", PermissionError)
    with Library(tmp_path / "lib.sqlite3", model=str(tiny_bundle), device="cpu") as library:
        library.add_root(rgb_folder)
        report = library.sync(read_text=False)
        assert report.index is not None and report.index.failed == 1
        problems = library.problems()
        assert [p.path.name for p in problems] == ["red.jpg"] and "permission denied" in (problems[0].error or "")
        assert library.status()["indexed"] == 2


def test_vanishing_files_are_left_pending_and_indexing_goes_on(tmp_path, tiny_bundle, rgb_folder, monkeypatch):
    """A file gone between listing and reading is not a problem of the photo (it was deleted or
    moved): it stays pending, and is indexed when it can be read (tests/test_watch.py has the
    real move)."""
    with Library(tmp_path / "lib.sqlite3", model=str(tiny_bundle), device="cpu") as library:
        library.add_root(rgb_folder)
        with monkeypatch.context() as patch:
            refuse_to_open(patch, "red.jpg", FileNotFoundError)
            report = library.sync(read_text=False)
        assert report.index is not None and (report.index.failed, report.index.skipped) == (0, 1)
        assert library.problems() == []
        assert (library.status()["indexed"], library.status()["pending"]) == (2, 1)
        report = library.sync(read_text=False)
        assert report.index is not None and report.index.embedded == 1
        assert library.status()["indexed"] == 3
