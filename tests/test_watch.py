"""Live folder sync: the watcher service, reconciling on start, moves without inference, offline
folders, files still being copied, garbage collection after a grace period."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from engine.ingest.decode import fingerprint
from engine.ingest.watch import ChangeBatch
from engine.library import Library
from engine.service import LibraryService
from tests.conftest import solid

FAST = {"debounce": 0.1, "settle": 0.3, "root_check_interval": 0.2, "retry_interval": 0.3, "workers": 1}


def open_library(tmp_path: Path, bundle: Path) -> Library:
    return Library(tmp_path / "lib.sqlite3", model=str(bundle), device="cpu")


def rows(library: Library) -> dict[str, tuple[int, str, int | None]]:
    """name -> (photo id, state, content id), for every photo."""
    return {p.path.name: (p.id, p.state, p.content_id) for p in library.photos(limit=100_000)}


def settled(service: LibraryService) -> None:
    assert service.wait_idle(timeout=30), service.error


def wait_for(condition, timeout: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)
    return bool(condition())


@pytest.fixture
def watching(tmp_path, tiny_bundle, rgb_folder):
    library = open_library(tmp_path, tiny_bundle)
    library.add_root(rgb_folder)
    service = LibraryService(library, gc_grace=3600, **FAST).start()
    settled(service)
    yield library, service, rgb_folder
    service.stop()
    library.close()


def test_new_file_is_indexed_and_search_finds_it(watching):
    library, service, folder = watching
    solid(folder / "new" / "crimson.png", (200, 10, 30))
    settled(service)
    assert rows(library)["crimson.png"][1] == "indexed"
    assert {h.photo.path.name for h in library.search("red").hits} >= {"crimson.png", "red.jpg"}


def test_renames_and_moves_keep_vectors_without_inference(watching, tmp_path):
    library, service, folder = watching
    before = rows(library)
    calls = library.model.image.calls
    (folder / "red.jpg").rename(folder / "scarlet.jpg")  # a file renamed
    (folder / "sub").rename(folder / "renamed-sub")  # a whole folder renamed
    (folder / "deep" / "er").mkdir(parents=True)
    (folder / "green.png").rename(folder / "deep" / "er" / "green.png")  # moved into a new folder
    settled(service)
    after = rows(library)
    assert library.model.image.calls == calls  # no model ran
    assert set(after) == {"scarlet.jpg", "blue.jpg", "green.png"}
    # The rows moved in place: same photo ids, same contents, still indexed.
    assert after["scarlet.jpg"] == before["red.jpg"]
    assert after["blue.jpg"] == before["blue.jpg"]
    # Moved into a folder made a moment before, which inotify may not watch yet: then it is seen
    # as a delete plus a new file, and the content fingerprint links it to its vectors.
    assert after["green.png"][1:] == before["green.png"][1:]
    assert library.photo(folder / "renamed-sub" / "blue.jpg") is not None
    assert library.search("red").hits[0].photo.path == folder / "scarlet.jpg"


def test_move_between_roots_and_delete_before_create_keep_vectors(tmp_path, tiny_bundle, rgb_folder):
    other = tmp_path / "other"
    other.mkdir()
    solid(other / "keep.png", (90, 90, 90))
    with open_library(tmp_path, tiny_bundle) as library:
        library.add_root(rgb_folder)
        library.add_root(other)
        with LibraryService(library, gc_grace=3600, **FAST) as service:
            settled(service)
            calls = library.model.image.calls
            shutil.move(rgb_folder / "red.jpg", other / "red.jpg")
            shutil.move(rgb_folder / "sub", other / "sub")
            settled(service)
            assert library.model.image.calls == calls
            assert {p.path for p in library.photos()} >= {other / "red.jpg", other / "sub" / "blue.jpg"}
            assert all(p.state == "indexed" for p in library.photos())
        # Without the watcher: the delete is applied, the create only later (as when the two events
        # fall into different batches). The vectors survive in between.
        shutil.move(other / "red.jpg", rgb_folder / "red.jpg")
        library.apply_changes(ChangeBatch(paths=[os.fspath(other / "red.jpg")]))
        library.index(library.pending_jobs(), collect_garbage=False)
        library.apply_changes(ChangeBatch(paths=[os.fspath(rgb_folder / "red.jpg")]))
        report = library.index(library.pending_jobs())
        assert (report.reused, report.embedded) == (1, 0)
        assert library.model.image.calls == calls


def test_changes_met_while_the_folder_itself_is_away_lose_nothing(tmp_path, tiny_bundle, rgb_folder):
    # The folder is renamed, a photo in it touched and one added, and the folder renamed back:
    # the watcher names those files by the folder's old path, where nothing is at that moment.
    away = tmp_path / "away"
    with open_library(tmp_path, tiny_bundle) as library:
        library.add_root(rgb_folder)
        library.sync()
        rgb_folder.rename(away)
        solid(away / "red.jpg", (200, 40, 40), size=(80, 60))
        solid(away / "new.jpg", (230, 220, 20))
        counts = library.apply_changes(
            ChangeBatch(paths=[os.fspath(rgb_folder / "red.jpg"), os.fspath(rgb_folder / "new.jpg")])
        )
        assert counts.removed == 0 and library.photo_count() == 3
        assert not library.needs_rewalk
        away.rename(rgb_folder)
        assert library.needs_rewalk  # the folder is back: walked whole, once
        counts = library.apply_changes(ChangeBatch())
        assert (counts.new, counts.changed, counts.removed) == (1, 1, 0) and not library.needs_rewalk
        library.index(library.pending_jobs())
        assert {p.path.name for p in library.photos()} == {"red.jpg", "green.png", "blue.jpg", "new.jpg"}
        assert all(p.state == "indexed" for p in library.photos())


def test_a_photo_moved_while_it_is_indexed_is_indexed_at_its_new_place(tmp_path, tiny_bundle, rgb_folder):
    """The indexer finds the file gone (renamed, with its folder, after the scan listed it): the
    photo is left pending, not failed. A failure would stick, since the move keeps the size and
    time that tell a changed file: found by the SIGKILL test, where the watcher renames folders
    while indexing runs."""
    with open_library(tmp_path, tiny_bundle) as library:
        library.add_root(rgb_folder)
        jobs = library.scan()
        (rgb_folder / "sub").rename(rgb_folder / "moved")
        report = library.index(jobs)
        assert (report.failed, report.skipped) == (0, 1), report.failures
        assert rows(library)["blue.jpg"][1] == "pending"
        library.apply_changes(ChangeBatch(moves=[(os.fspath(rgb_folder / "sub"), os.fspath(rgb_folder / "moved"))]))
        report = library.index(library.pending_jobs())
        assert (report.embedded, report.failed) == (1, 0)
        assert {p.path: p.state for p in library.photos()}[rgb_folder / "moved" / "blue.jpg"] == "indexed"


def test_a_large_photo_gone_before_it_is_read_is_left_for_later(tmp_path, tiny_bundle, rgb_folder, monkeypatch):
    """Large files are fingerprinted from samples of the file, before reading it whole: a file
    gone by then must not stop the run."""
    import engine.ingest.pipeline as pipeline

    monkeypatch.setattr(pipeline, "FULL_HASH_LIMIT", 0)  # every photo counts as large
    with open_library(tmp_path, tiny_bundle) as library:
        library.add_root(rgb_folder)
        jobs = library.scan()
        (rgb_folder / "red.jpg").unlink()
        report = library.index(jobs)
        assert (report.embedded, report.skipped, report.failed) == (2, 1, 0)
        assert library.sync().removed == 1


def test_deleted_files_are_forgotten_and_garbage_collected_after_the_grace_period(tmp_path, tiny_bundle, rgb_folder):
    with open_library(tmp_path, tiny_bundle) as library:
        library.add_root(rgb_folder)
        with LibraryService(library, gc_grace=1.0, **FAST) as service:
            settled(service)
            (rgb_folder / "red.jpg").unlink()
            shutil.rmtree(rgb_folder / "sub")
            settled(service)
            assert set(rows(library)) == {"green.png"}
            contents = library._conn.execute("SELECT count(*) FROM contents").fetchone()[0]
            assert contents == 3  # kept during the grace period
            deadline = time.monotonic() + 10
            while contents != 1 and time.monotonic() < deadline:
                time.sleep(0.1)
                contents = library._conn.execute("SELECT count(*) FROM contents").fetchone()[0]
            assert contents == 1
            assert library._conn.execute("SELECT count(*) FROM embeddings").fetchone()[0] == 1


@pytest.mark.parametrize("closed_events", [True, False], ids=["inotify-closed", "size-stability"])
def test_file_being_copied_is_indexed_once_when_complete(tmp_path, tiny_bundle, rgb_folder, closed_events):
    source = solid(tmp_path / "big.png", (10, 200, 10), size=(400, 300))
    data = source.read_bytes()
    with open_library(tmp_path, tiny_bundle) as library:
        library.add_root(rgb_folder)
        service = LibraryService(library, gc_grace=3600, **FAST)
        if not closed_events:  # the portable path: no "closed" events, only the size settling
            service.watcher._IGNORED = frozenset({"opened", "closed", "closed_no_write"})
        with service:
            settled(service)
            calls = library.model.image.calls
            target = rgb_folder / "copy.png"
            with target.open("wb") as handle:  # a slow copy: a chunk every 0.15 s
                for start in range(0, len(data), len(data) // 8 + 1):
                    handle.write(data[start : start + len(data) // 8 + 1])
                    handle.flush()
                    time.sleep(0.15)
            settled(service)
            photo = library.photo(target)
            assert photo is not None and photo.state == "indexed"
            assert library.model.image.calls == calls + 1  # once, not for each half-written state
            stored = library._conn.execute(
                "SELECT fingerprint FROM contents WHERE id = ?", (photo.content_id,)
            ).fetchone()[0]
            assert stored == fingerprint(data)


def test_a_copy_that_stalls_mid_file_waits_until_it_is_closed(tmp_path, tiny_bundle, rgb_folder):
    source = solid(tmp_path / "big.png", (10, 200, 10), size=(400, 300))
    data = source.read_bytes()
    with open_library(tmp_path, tiny_bundle) as library:
        library.add_root(rgb_folder)
        with LibraryService(library, gc_grace=3600, **FAST) as service:
            settled(service)
            target = rgb_folder / "copy.png"
            with target.open("wb") as handle:  # a copy from a slow share: half, then a long pause
                handle.write(data[: len(data) // 2])
                handle.flush()
                time.sleep(1.5)  # five times `settle`: the size has long stopped changing
                assert library.photo(target) is None  # not indexed half-written, nor listed as failed
                handle.write(data[len(data) // 2 :])
            settled(service)
            photo = library.photo(target)
            assert photo is not None and photo.state == "indexed"
            stored = library._conn.execute(
                "SELECT fingerprint FROM contents WHERE id = ?", (photo.content_id,)
            ).fetchone()[0]
            assert stored == fingerprint(data)


def test_a_download_renamed_before_it_is_closed_waits_until_it_is(tmp_path, tiny_bundle, rgb_folder):
    data = solid(tmp_path / "big.png", (10, 200, 10), size=(400, 300)).read_bytes()
    with open_library(tmp_path, tiny_bundle) as library:
        library.add_root(rgb_folder)
        with LibraryService(library, gc_grace=3600, **FAST) as service:
            settled(service)
            target = rgb_folder / "download.png"
            with (rgb_folder / "download.png.part").open("wb") as handle:
                handle.write(data[: len(data) // 2])
                handle.flush()
                os.rename(rgb_folder / "download.png.part", target)  # renamed while still written
                time.sleep(1.5)
                assert library.photo(target) is None  # not read half-written, not listed as failed
                handle.write(data[len(data) // 2 :])
            settled(service)
            photo = library.photo(target)
            assert photo is not None and photo.state == "indexed"


@pytest.mark.parametrize("how", ["in place", "by rename"])
def test_a_photo_saved_over_is_read_at_once_though_a_viewer_has_it_open(tmp_path, tiny_bundle, rgb_folder, how):
    with open_library(tmp_path, tiny_bundle) as library:
        library.add_root(rgb_folder)
        with LibraryService(library, gc_grace=3600, **FAST) as service:
            settled(service)
            photo = rgb_folder / "red.jpg"
            before = library.photo(photo)
            assert before is not None
            new = solid(tmp_path / "blue.jpg", (20, 20, 230)).read_bytes()
            with photo.open("rb"):  # a viewer shows the old photo while it is replaced
                if how == "in place":
                    photo.write_bytes(new)
                else:  # as editors and rsync save: a temporary file renamed over the photo
                    temp = rgb_folder / ".red.jpg.tmp"
                    temp.write_bytes(new)
                    os.rename(temp, photo)
                replaced = lambda: (p := library.photo(photo)) is not None and p.content_id != before.content_id  # noqa: E731
                assert wait_for(replaced, 10)


def test_a_file_kept_open_without_change_is_indexed_after_a_while(tmp_path, tiny_bundle, rgb_folder):
    with open_library(tmp_path, tiny_bundle) as library:
        library.add_root(rgb_folder)
        with LibraryService(library, gc_grace=3600, open_settle=1.0, **FAST) as service:
            settled(service)
            target = rgb_folder / "held.png"
            with target.open("wb") as handle:  # a program that keeps the file open
                handle.write(solid(tmp_path / "src.png", (200, 10, 10)).read_bytes())
                handle.flush()
                deadline = time.monotonic() + 20
                while library.photo(target) is None and time.monotonic() < deadline:
                    time.sleep(0.1)
                photo = library.photo(target)
                assert photo is not None and photo.state == "indexed"


def test_a_linked_folder_elsewhere_is_watched_under_its_link(tmp_path, tiny_bundle, rgb_folder):
    elsewhere = tmp_path / "drive" / "phone"
    solid(elsewhere / "old.jpg", (200, 200, 20))
    os.symlink(elsewhere, rgb_folder / "phone")
    os.symlink(rgb_folder, rgb_folder / "sub" / "loop")  # a loop: walked once, watched once
    with open_library(tmp_path, tiny_bundle) as library:
        library.add_root(rgb_folder)
        with LibraryService(library, gc_grace=3600, **FAST) as service:
            settled(service)
            assert library.photo(rgb_folder / "phone" / "old.jpg") is not None
            solid(elsewhere / "deeper" / "new.jpg", (20, 20, 200))
            assert wait_for(lambda: library.photo(rgb_folder / "phone" / "deeper" / "new.jpg") is not None)
            (elsewhere / "old.jpg").unlink()
            assert wait_for(lambda: library.photo(rgb_folder / "phone" / "old.jpg") is None)
            # A link made while watching: its folder is walked, then watched too.
            later = tmp_path / "drive" / "camera"
            solid(later / "first.jpg", (20, 200, 200))
            os.symlink(later, rgb_folder / "camera")
            assert wait_for(lambda: library.photo(rgb_folder / "camera" / "first.jpg") is not None)
            settled(service)
            solid(later / "second.jpg", (200, 20, 200))
            assert wait_for(lambda: library.photo(rgb_folder / "camera" / "second.jpg") is not None)
            assert not any("loop" in p.path.parts for p in library.photos(limit=100))


def test_reconcile_on_start_finds_what_changed_while_closed(tmp_path, tiny_bundle, rgb_folder):
    with open_library(tmp_path, tiny_bundle) as library:
        library.add_root(rgb_folder)
        library.sync()
        calls = library.model.image.calls
    # Closed: a folder renamed, a file deleted, one added.
    (rgb_folder / "sub").rename(rgb_folder / "moved")
    (rgb_folder / "green.png").unlink()
    solid(rgb_folder / "added.png", (240, 240, 20))
    with open_library(tmp_path, tiny_bundle) as library, LibraryService(library, **FAST) as service:
        settled(service)
        assert set(rows(library)) == {"red.jpg", "blue.jpg", "added.png"}
        assert all(state == "indexed" for _, state, _ in rows(library).values())
        assert library.model.image.calls == 1  # only the added photo ran through the model
        assert calls == 1  # the first sync embedded the three photos in one batch
        assert library._conn.execute("SELECT count(*) FROM contents").fetchone()[0] == 3


def test_offline_folder_keeps_photos_and_resumes_when_back(tmp_path, tiny_bundle, rgb_folder):
    with open_library(tmp_path, tiny_bundle) as library:
        library.add_root(rgb_folder)
        with LibraryService(library, gc_grace=0.2, **FAST) as service:
            settled(service)
            unplugged = rgb_folder.rename(tmp_path / "unplugged")
            deadline = time.monotonic() + 10
            while library.roots()[0].online and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not library.roots()[0].online
            time.sleep(0.5)  # past the grace period: nothing may be collected for an offline folder
            assert library.photo_count() == 3
            assert library._conn.execute("SELECT count(*) FROM embeddings").fetchone()[0] == 3
            assert library.search("red").hits == []  # offline photos are not offered as results
            unplugged.rename(rgb_folder)
            deadline = time.monotonic() + 10
            while not library.roots()[0].online and time.monotonic() < deadline:
                time.sleep(0.1)
            settled(service)
            solid(rgb_folder / "after.png", (250, 5, 5))  # watched again
            settled(service)
            assert rows(library)["after.png"][1] == "indexed"
            assert library.search("red").hits


def test_folders_added_while_watching_are_picked_up(watching, tmp_path):
    library, service, _ = watching
    extra = tmp_path / "extra"
    solid(extra / "x.png", (5, 5, 250))
    library.add_root(extra)
    service.refresh()
    settled(service)
    assert rows(library)["x.png"][1] == "indexed"
    solid(extra / "y.png", (5, 250, 5))
    settled(service)
    assert rows(library)["y.png"][1] == "indexed"


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int, int]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            data = path.read_bytes() if path.is_file() else b""
            out[os.path.relpath(path, folder)] = (data, st.st_mtime_ns, st.st_mode)
    return out


def test_photo_folders_are_never_written(tmp_path, tiny_bundle, rgb_folder):
    """The promise: indexing and watching leave every byte, name and modification time as it was."""
    (rgb_folder / "empty.jpg").write_bytes(b"")
    (rgb_folder / "notes.txt").write_text("hello")
    (rgb_folder / ".hidden").mkdir()
    solid(rgb_folder / "deep" / "a" / "b" / "c.png", (1, 2, 3))
    os.utime(rgb_folder / "red.jpg", ns=(1_000_000_000, 1_000_000_000))
    before = _snapshot(rgb_folder)
    folder_mtime = rgb_folder.stat().st_mtime_ns
    with open_library(tmp_path, tiny_bundle) as library:
        library.add_root(rgb_folder)
        library.sync()
        with LibraryService(library, **FAST) as service:
            settled(service)
            service.refresh()
            settled(service)
        library.search("red")
        library.caption(rgb_folder / "red.jpg")
    assert _snapshot(rgb_folder) == before
    assert rgb_folder.stat().st_mtime_ns == folder_mtime


def test_a_link_back_up_made_while_watching_lists_nothing_twice(watching):
    library, service, folder = watching
    os.symlink(folder, folder / "sub" / "up")  # a link to the folder itself
    os.symlink(folder / "sub", folder / "again")  # and to a folder inside it
    time.sleep(1.0)
    settled(service)
    names = sorted(p.path.relative_to(folder).as_posix() for p in library.photos(limit=100))
    assert names == ["green.png", "red.jpg", "sub/blue.jpg"]


def test_links_in_every_shape_are_watched_under_the_paths_the_walk_gave(tmp_path, tiny_bundle):
    top = tmp_path / "top"
    lib, drive, other = top / "lib", tmp_path / "drive", tmp_path / "other"
    solid(lib / "albums" / "2024" / "a.jpg", (200, 20, 20))
    solid(drive / "inner" / "b.jpg", (20, 200, 20))
    solid(drive / "c.jpg", (20, 20, 200))
    solid(other / "sub" / "d.jpg", (200, 200, 20))
    solid(top / "beside.jpg", (20, 200, 200))
    os.symlink(lib / "albums" / "2024", lib / "fav")  # a second path to a folder of the root
    os.symlink(drive / "inner", lib / "x")  # two links, one inside the other's folder
    os.symlink(drive, lib / "y")
    os.symlink(top, lib / "up")  # a link up to a folder that holds the root
    os.symlink(other / "sub", lib / "o")  # a folder of another library folder

    def listed() -> list[str]:
        return sorted(str(p.path) for p in library.photos(limit=1000))

    with open_library(tmp_path, tiny_bundle) as library:
        library.add_root(lib)
        library.add_root(other)
        with LibraryService(library, gc_grace=3600, **FAST) as service:
            settled(service)
            before = listed()
            assert all(Path(p).is_file() for p in before)
            # one new photo in each linked folder, one photo removed: listed as a new walk would
            solid(lib / "albums" / "2024" / "a2.jpg", (210, 30, 30))
            solid(drive / "inner" / "b2.jpg", (30, 210, 30))
            solid(drive / "c2.jpg", (30, 30, 210))
            solid(other / "sub" / "d2.jpg", (210, 210, 30))
            solid(lib / "e.jpg", (30, 210, 210))
            time.sleep(1.0)
            settled(service)
            live = listed()
        with open_library(tmp_path, tiny_bundle) as fresh:
            fresh.sync(read_text=False)  # what a full walk lists
            walked = sorted(str(p.path) for p in fresh.photos(limit=1000))
    assert live == walked
    assert len(live) == len(before) + 6  # d2.jpg under its own folder and under the link


def test_links_made_removed_or_left_dangling_are_followed_as_a_walk_would(tmp_path, tiny_bundle, rgb_folder):
    from engine.ingest.scan import from_db_name, walk

    drive = tmp_path / "drive"
    solid(drive / "phone" / "p.jpg", (200, 200, 20))
    os.symlink(drive / "phone", rgb_folder / "phone")

    def walked() -> list[str]:
        return sorted(str(rgb_folder / from_db_name(f.rel_path)) for f in walk(rgb_folder).files)

    with open_library(tmp_path, tiny_bundle) as library:
        library.add_root(rgb_folder)

        def follows() -> bool:
            return sorted(str(p.path) for p in library.photos(limit=100)) == walked()

        with LibraryService(library, gc_grace=3600, **FAST) as service:
            settled(service)
            assert follows()
            os.symlink(drive / "phone", rgb_folder / "again")  # a second link to the same folder
            assert wait_for(follows, 10)
            os.unlink(rgb_folder / "phone")  # one of the two removed
            assert wait_for(follows, 10)
            shutil.rmtree(drive / "phone")  # the linked folder deleted …
            assert wait_for(follows, 10)
            solid(drive / "phone" / "q.jpg", (20, 200, 200))  # … and made again
            assert wait_for(lambda: follows() and len(walked()) == 4, 10)
            solid(drive / "phone" / "r.jpg", (200, 20, 200))  # and watched again
            assert wait_for(lambda: follows() and len(walked()) == 5, 10)
            os.rename(drive / "phone", drive / "gone")  # renamed away: the link leads nowhere
            assert wait_for(lambda: follows() and len(walked()) == 3, 10)


def test_an_empty_placeholder_is_not_listed_as_failed_while_its_download_runs(tmp_path, tiny_bundle, rgb_folder):
    data = solid(tmp_path / "big.png", (10, 200, 10), size=(400, 300)).read_bytes()
    with open_library(tmp_path, tiny_bundle) as library:
        library.add_root(rgb_folder)
        with LibraryService(library, gc_grace=3600, open_settle=3.0, **FAST) as service:
            settled(service)
            target = rgb_folder / "download.png"
            target.touch()  # as a browser does before it writes "download.png.part"
            part = rgb_folder / "download.png.part"
            with part.open("wb") as handle:
                handle.write(data[: len(data) // 2])
                handle.flush()
                time.sleep(1.5)
                assert library.photo(target) is None  # not "empty file", not yet
                handle.write(data[len(data) // 2 :])
            os.replace(part, target)
            settled(service)
            photo = library.photo(target)
            assert photo is not None and photo.state == "indexed"
            (rgb_folder / "empty.jpg").touch()  # an empty file that stays empty: listed, later
            assert wait_for(lambda: (p := library.photo(rgb_folder / "empty.jpg")) is not None and p.state == "failed")
