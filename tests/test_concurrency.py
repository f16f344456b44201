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
