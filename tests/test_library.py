"""End to end through the engine with the tiny RGB model: index, search, caption, status."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from engine.errors import ModelError, QueryError, RootError
from engine.library import KEEP_REMOVED_SECONDS, Library
from engine.models.manifest import write_manifest
from tests.conftest import solid


def open_library(tmp_path: Path, bundle: Path) -> Library:
    return Library(tmp_path / "lib.sqlite3", model=str(bundle), device="cpu")


def test_index_then_search_finds_the_right_photo_first(tmp_path, tiny_bundle, rgb_folder):
    with open_library(tmp_path, tiny_bundle) as library:
        library.add_root(rgb_folder)
        report = library.sync()
        assert report.found == 3 and report.new == 3
        assert report.index is not None and report.index.embedded == 3 and report.index.failed == 0
        for word, name in [("red", "red.jpg"), ("green", "green.png"), ("blue", "blue.jpg")]:
            results = library.search(word)
            assert results.hits, results.message
            assert results.hits[0].photo.path.name == name
            assert results.hits[0].photo.path.is_absolute()


def test_second_sync_of_unchanged_folder_does_no_decoding_or_inference(tmp_path, tiny_bundle, rgb_folder):
    with open_library(tmp_path, tiny_bundle) as library:
        library.add_root(rgb_folder)
        library.sync()
        calls = library.model.image.calls
        report = library.sync()
        assert report.new == report.changed == report.removed == 0
        assert report.index is not None and report.index.total == 0
        assert library.model.image.calls == calls


def test_changed_file_is_reindexed_and_deleted_file_forgotten(tmp_path, tiny_bundle, rgb_folder):
    with open_library(tmp_path, tiny_bundle) as library:
        library.add_root(rgb_folder)
        library.sync()
        solid(rgb_folder / "red.jpg", (20, 20, 230))  # now blue
        os.utime(rgb_folder / "red.jpg", ns=(1, 1_000_000_000))
        (rgb_folder / "green.png").unlink()
        report = library.sync()
        assert report.changed == 1 and report.removed == 1
        assert library.photo_count() == 2
        top = library.search("blue").hits
        assert {h.photo.path.name for h in top} == {"red.jpg", "blue.jpg"}
        assert library.search("green", cutoff=-1).hits[0].photo.path.name != "green.png"


def test_moved_file_keeps_its_vector_without_inference(tmp_path, tiny_bundle, rgb_folder):
    with open_library(tmp_path, tiny_bundle) as library:
        library.add_root(rgb_folder)
        library.sync()
        calls = library.model.image.calls
        (rgb_folder / "sub" / "blue.jpg").rename(rgb_folder / "renamed-blue.jpg")
        report = library.sync()
        assert report.index is not None and report.index.reused == 1 and report.index.embedded == 0
        assert library.model.image.calls == calls
        assert library.search("blue").hits[0].photo.path.name == "renamed-blue.jpg"


def test_copies_in_one_run_are_embedded_once(tmp_path, tiny_bundle, rgb_folder):
    red = (rgb_folder / "red.jpg").read_bytes()
    for n in range(4):
        (rgb_folder / f"copy-{n}.jpg").write_bytes(red)
    (rgb_folder / "notes.jpg").write_text("not a photo")
    (rgb_folder / "notes-copy.jpg").write_text("not a photo")
    with open_library(tmp_path, tiny_bundle) as library:
        library.add_root(rgb_folder)
        report = library.sync().index
        assert report is not None
        assert (report.embedded, report.reused, report.failed, report.skipped) == (3, 4, 2, 0)
        assert library.model.image.calls == 1  # one batch, the copies not in it
        photos = {p.path.name: p for p in library.photos(limit=100)}
        copies = [photos[f"copy-{n}.jpg"] for n in range(4)]
        assert {p.content_id for p in copies} == {photos["red.jpg"].content_id}
        assert all(p.state == "indexed" and p.caption == photos["red.jpg"].caption for p in copies)
        failed = photos["notes-copy.jpg"]
        assert failed.state == "failed" and failed.error == photos["notes.jpg"].error


def test_bad_files_are_recorded_and_indexing_goes_on(tmp_path, tiny_bundle, rgb_folder):
    (rgb_folder / "empty.jpg").write_bytes(b"")
    (rgb_folder / "notes.jpg").write_text("this is not a photo\n")
    good = (rgb_folder / "red.jpg").read_bytes()
    (rgb_folder / "truncated.jpg").write_bytes(good[: len(good) // 2])
    with open_library(tmp_path, tiny_bundle) as library:
        library.add_root(rgb_folder)
        report = library.sync()
        assert report.index is not None and report.index.embedded == 3 and report.index.failed == 3
        reasons = {p.path.name: p.error for p in library.problems()}
        assert "empty" in reasons["empty.jpg"]
        assert "text" in reasons["notes.jpg"]
        assert "truncated" in reasons["truncated.jpg"] or "damaged" in reasons["truncated.jpg"]
        status = library.status()
        assert (status["photos"], status["indexed"], status["failed"], status["pending"]) == (6, 3, 3, 0)


def test_hidden_files_skipped_and_photos_found_by_content(tmp_path, tiny_bundle, rgb_folder):
    solid(rgb_folder / ".hidden.jpg", (200, 10, 10))
    solid(rgb_folder / ".cache" / "thumb.jpg", (200, 10, 10))
    solid(rgb_folder / "no-extension", (200, 10, 10), fmt="PNG")
    (rgb_folder / "readme.txt").write_text("hello")
    with open_library(tmp_path, tiny_bundle) as library:
        library.add_root(rgb_folder)
        library.sync()
        names = {p.path.name for p in library.photos()}
        assert names == {"red.jpg", "green.png", "blue.jpg", "no-extension"}


def test_captions_are_stored_and_shown(tmp_path, tiny_bundle, rgb_folder):
    with open_library(tmp_path, tiny_bundle) as library:
        library.add_root(rgb_folder)
        library.sync()
        caption = library.caption(rgb_folder / "red.jpg")
        assert "red thing" in caption
        assert library.search("green").hits[0].photo.caption.lower().startswith("a green thing")
        outside = solid(tmp_path / "elsewhere" / "b.png", (10, 10, 240))
        assert "blue thing" in library.caption(outside)


def test_listing_photos_does_not_load_the_model(tmp_path, tiny_bundle, rgb_folder):
    """The window lists photos at once while the model loads (or is built) in the background."""
    (rgb_folder / "broken.jpg").write_bytes(b"not a photo")
    with open_library(tmp_path, tiny_bundle) as library:
        library.add_root(rgb_folder)
        library.sync()
    with open_library(tmp_path, tiny_bundle) as library:
        listed = {p.path.name: p for p in library.photos()}
        red = library.photo(rgb_folder / "red.jpg")
        problems = library.problems()
        assert not library.model_loaded
        assert red is not None and "red thing" in (red.caption or "")
        assert "green thing" in (listed["green.png"].caption or "")
        assert [p.path.name for p in problems] == ["broken.jpg"]
        assert library.caption(rgb_folder / "red.jpg") == red.caption and library.model_loaded


def test_cutoff_hides_poor_matches_and_says_why(tmp_path, tiny_bundle, rgb_folder):
    with open_library(tmp_path, tiny_bundle) as library:
        library.add_root(rgb_folder)
        library.sync()
        results = library.search("red", cutoff=0.999)
        assert results.hits == [] and results.message == "no photo matches well enough"


def test_query_algebra_like_and_minus(tmp_path, tiny_bundle):
    folder = tmp_path / "p"
    solid(folder / "purple.jpg", (200, 20, 200))
    solid(folder / "red.jpg", (230, 20, 20))
    solid(folder / "blue.jpg", (20, 20, 230))
    solid(folder / "teal.jpg", (20, 200, 200))
    with open_library(tmp_path, tiny_bundle) as library:
        library.add_root(folder)
        library.sync()
        similar = library.search(f"like:{folder / 'purple.jpg'}")
        assert "purple.jpg" not in [h.photo.path.name for h in similar.hits]  # the seed itself is left out
        # image(purple) - "blue" = red: the arithmetic of the seed paper on a linear model
        arithmetic = library.search(f"like:{folder / 'purple.jpg'} -blue")
        assert arithmetic.hits[0].photo.path.name == "red.jpg"
        assert library.search("red -blue", cutoff=-1).hits[0].photo.path.name == "red.jpg"
        with pytest.raises(QueryError):
            library.search("-red")
        with pytest.raises(QueryError):
            library.search("like:nowhere.jpg")


def test_missing_root_is_offline_and_photos_are_kept(tmp_path, tiny_bundle, rgb_folder):
    with open_library(tmp_path, tiny_bundle) as library:
        library.add_root(rgb_folder)
        library.sync()
        moved = rgb_folder.rename(tmp_path / "unplugged")
        report = library.sync()
        assert report.offline == [rgb_folder] and report.removed == 0
        assert library.photo_count() == 3
        assert not library.roots()[0].online
        result = library.search("red")
        assert not result.hits and result.message is not None and "offline" in result.message
        moved.rename(rgb_folder)
        library.sync()
        assert library.roots()[0].online and library.search("red").hits


def test_an_emptied_mount_point_is_offline_an_empty_new_folder_is_not(tmp_path, tiny_bundle, rgb_folder, monkeypatch):
    import engine.library

    empty = tmp_path / "nothing-yet"
    empty.mkdir()
    with open_library(tmp_path, tiny_bundle) as library:
        library.add_root(rgb_folder)
        library.add_root(empty)
        library.sync()
        counted = {r.path: (r.has_photos, r.photos) for r in library.roots(counts=True)}
        assert counted == {rgb_folder: (True, 3), empty: (False, 0)}
        assert {r.photos for r in library.roots()} == {None}  # not counted unless asked
        for entry in list(rgb_folder.iterdir()):  # a drive unplugged from its mount point:
            entry.rename(tmp_path / entry.name)
        real = engine.library.folder_device  # the folder is on the file system that holds it now
        monkeypatch.setattr(engine.library, "folder_device", lambda path: real(path) + (path == rgb_folder))
        report = library.sync()
        assert report.offline == [rgb_folder] and report.removed == 0 and library.photo_count() == 3
        assert {r.path: r.online for r in library.roots()} == {rgb_folder: False, empty: True}


def test_a_folder_emptied_where_it_was_loses_its_photos(tmp_path, tiny_bundle, rgb_folder):
    with open_library(tmp_path, tiny_bundle) as library:
        library.add_root(rgb_folder)
        library.sync()
        for entry in list(rgb_folder.iterdir()):  # every photo deleted (moved away), on the same disk
            entry.rename(tmp_path / entry.name)
        report = library.sync()
        assert report.offline == [] and report.removed == 3 and library.photo_count() == 0
        assert [r.online for r in library.roots()] == [True]


def test_an_empty_folder_of_a_library_from_before_devices_were_recorded_stays_offline(
    tmp_path, tiny_bundle, rgb_folder
):
    with open_library(tmp_path, tiny_bundle) as library:
        library.add_root(rgb_folder)
        library.sync()
        library._conn.execute("UPDATE roots SET device = NULL")  # as the upgrade leaves it
        library._conn.commit()
        for entry in list(rgb_folder.iterdir()):
            entry.rename(tmp_path / entry.name)
        report = library.sync()
        assert report.offline == [rgb_folder] and library.photo_count() == 3


def test_search_reads_past_offline_best_matches_to_fill_the_page(tmp_path, tiny_bundle):
    unplugged, here = tmp_path / "card", tmp_path / "home"
    for n in range(9):
        solid(unplugged / f"red{n}.jpg", (240 - n, 10, 10))  # the nine best matches for "red"
    solid(here / "reddish.jpg", (190, 60, 60))
    with open_library(tmp_path, tiny_bundle) as library:
        for folder in (unplugged, here):
            library.add_root(folder)
        library.sync(read_text=False)
        best = library.search("red", limit=10, cutoff=-1).hits
        assert [h.photo.path.name for h in best][-1] == "reddish.jpg"
        unplugged.rename(tmp_path / "elsewhere")
        library.sync(read_text=False)
        hits = library.search("red", limit=1, cutoff=-1).hits
        assert [h.photo.path.name for h in hits] == ["reddish.jpg"]


def test_add_root_rejects_bad_folders(tmp_path, tiny_bundle, rgb_folder):
    with open_library(tmp_path, tiny_bundle) as library:
        with pytest.raises(RootError):
            library.add_root(tmp_path / "missing")
        with pytest.raises(RootError):
            library.add_root(rgb_folder / "red.jpg")
        library.add_root(rgb_folder)
        with pytest.raises(RootError):
            library.add_root(rgb_folder / "sub")


def test_the_same_folder_added_twice_at_once_is_added_once(tmp_path, tiny_bundle, rgb_folder, monkeypatch):
    import threading

    import engine.library

    real = engine.library.folder_device

    def slow(path):  # the second add looks at the folders while the first is still adding
        time.sleep(0.2)
        return real(path)

    monkeypatch.setattr(engine.library, "folder_device", slow)
    with open_library(tmp_path, tiny_bundle) as library:
        added, failed = [], []

        def add():
            try:
                added.append(library.add_root(rgb_folder).id)
            except Exception as exc:
                failed.append(exc)

        threads = [threading.Thread(target=add) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failed == [] and len(set(added)) == 1 and len(library.roots()) == 1


def test_find_similar_works_again_once_an_emptied_library_has_photos_again(tmp_path, rgb_folder):
    from tests.tiny_model import make_tiny_bundle

    bundle = make_tiny_bundle(tmp_path / "tiny")
    manifest = json.loads((bundle / "model.json").read_text())
    manifest["image"]["similar_output"] = "probs"  # photos compared by vectors of their own
    (bundle / "model.json").write_text(json.dumps(manifest))
    like = f'like:"{rgb_folder / "red.jpg"}"'
    with open_library(tmp_path, bundle) as library:
        library.add_root(rgb_folder)
        library.sync(read_text=False)
        assert len(library.search(like, cutoff=-1).hits) == 2
        library.remove_root(rgb_folder)
        assert library.search(like, cutoff=-1).hits == []  # (the photo is read from disk)
        library.add_root(rgb_folder)  # the window's Undo
        library.sync(read_text=False)
        assert len(library.search(like, cutoff=-1).hits) == 2


def test_a_library_whose_model_was_removed_says_how_to_go_on_and_can_choose_another(tmp_path, rgb_folder):
    import shutil

    from engine import paths
    from engine.errors import ModelNotFoundError
    from tests.tiny_model import make_tiny_bundle

    gone = make_tiny_bundle(paths.models_dir() / "tiny-x", model_id="tiny-x")
    other = make_tiny_bundle(tmp_path / "tiny-y", model_id="tiny-y")
    with Library(tmp_path / "lib.sqlite3", model="tiny-x", device="cpu") as library:
        library.use_model("tiny-x")
        library.add_root(rgb_folder)
        library.sync(read_text=False)
    shutil.rmtree(gone)  # `photoseek models remove tiny-x --force`
    with Library(tmp_path / "lib.sqlite3", device="cpu") as library:
        with pytest.raises(ModelNotFoundError, match=r"the library uses the model 'tiny-x', which is not installed"):
            library.status()
        library.use_model(str(other))  # nothing to search with meanwhile: at once, not after re-embedding
        assert library.pending_model_name is None and library.model.id == "tiny-y@1"
        assert len(library.pending_jobs()) == 3
        assert "photos are not embedded with tiny-y@1 yet (`photoseek index`" in library.search("red").message
        library.sync(read_text=False)
        assert library.search("red", cutoff=-1).hits[0].photo.path.name == "red.jpg"
        library._conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('captioner', 'gone-captioner')")
        library._conn.commit()
    with Library(tmp_path / "lib.sqlite3", device="cpu") as library:  # its captioner removed, the same
        with pytest.raises(ModelNotFoundError, match=r"captions come from the model 'gone-captioner'.*--captioner"):
            library.status()
        library.use_captioner(None)
        assert library.status()["indexed"] == 3


def test_a_switch_to_a_model_that_cannot_be_loaded_stops_once_and_indexing_goes_on(tmp_path, rgb_folder):
    import shutil
    import threading

    from engine import paths
    from engine.errors import ModelError
    from tests.tiny_model import make_tiny_bundle

    make_tiny_bundle(paths.models_dir() / "tiny-x", model_id="tiny-x")
    broken = make_tiny_bundle(paths.models_dir() / "tiny-y", model_id="tiny-y")
    with Library(tmp_path / "lib.sqlite3", model="tiny-x", device="cpu") as library:
        library.use_model("tiny-x")
        library.add_root(rgb_folder)
        library.sync(read_text=False)
        library.use_model("tiny-y", background=False)
        assert library.pending_model_name == "tiny-y"
    graph = broken / "visual.onnx"
    graph.write_bytes(b"\0" * graph.stat().st_size)  # damaged, its size unchanged
    stopped = r"the switch to the model tiny-y stopped: it cannot be loaded"
    with Library(tmp_path / "lib.sqlite3", device="cpu") as library, pytest.raises(ModelError, match=stopped):
        library.sync(read_text=False)
    with Library(tmp_path / "lib.sqlite3", device="cpu") as library:  # said once, not at every run
        assert library.pending_model_name is None
        (rgb_folder / "more.jpg").write_bytes((rgb_folder / "red.jpg").read_bytes())
        assert library.sync(read_text=False).found == 4
        assert library.model.id == "tiny-x@1" and library.search("red", cutoff=-1).hits
        # The same for one whose bundle is gone before it could even be loaded.
        library.use_model(str(make_tiny_bundle(tmp_path / "tiny-z", model_id="tiny-z")), background=False)
    shutil.rmtree(tmp_path / "tiny-z")
    failed: list[BaseException] = []

    def sync() -> None:
        with Library(tmp_path / "lib.sqlite3", device="cpu") as library:
            try:
                library.sync(read_text=False)
            except ModelError as exc:
                failed.append(exc)
            failed.append(library.pending_model_name)  # type: ignore[arg-type]

    thread = threading.Thread(target=sync, daemon=True)  # (a deadlock fails the test, not the suite)
    thread.start()
    thread.join(60)
    assert not thread.is_alive() and len(failed) == 2 and failed[1] is None
    assert str(failed[0]).startswith(f"the switch to the model {tmp_path / 'tiny-z'} stopped")


def test_remove_root_forgets_photos_but_not_files(tmp_path, tiny_bundle, rgb_folder, monkeypatch):
    with open_library(tmp_path, tiny_bundle) as library:
        library.add_root(rgb_folder)
        library.sync()
        assert library.remove_root(rgb_folder) == 3
        assert library.photo_count() == 0 and library.roots() == []
        assert library.search("red").hits == []
        assert (rgb_folder / "red.jpg").exists()
        conn = library._conn
        # Kept a while: adding the folder back (Undo) reads the files but runs no model.
        library.collect_garbage()
        assert conn.execute("SELECT count(*) FROM embeddings").fetchone()[0] == 3
        assert len(library.search_index()) == 0  # kept, but no photo shows them: not searched
        library.add_root(rgb_folder)
        report = library.sync()
        assert report.index is not None and (report.index.embedded, report.index.reused) == (0, 3)
        assert library.search("red").hits[0].photo.path.name == "red.jpg"
        # Removed again and the time is up: the next clean-up deletes what belonged to it.
        library.remove_root(rgb_folder)
        later = time.time() + KEEP_REMOVED_SECONDS + 1
        monkeypatch.setattr(time, "time", lambda: later)
        library.collect_garbage()
        for table in ("contents", "embeddings", "captions", "kept_contents"):
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0, table


def test_large_library_path_quantized_index_with_exact_rerank(tmp_path, tiny_bundle, rgb_folder):
    with open_library(tmp_path, tiny_bundle) as library:
        library.quantize_above = 1  # what a library above 50,000 photos does
        library.add_root(rgb_folder)
        library.sync(read_text=False)
        assert library.search_index().quantized
        hits = library.search("green").hits
        assert hits[0].photo.path.name == "green.png"
        assert abs(hits[0].score - float(library.search("green", cutoff=-1).hits[0].score)) < 1e-6


def test_a_new_library_keeps_the_model_it_was_first_indexed_with(tmp_path, tiny_bundle, rgb_folder):
    # `photoseek index DIR --model BUNDLE`, then `photoseek search` without --model
    with open_library(tmp_path, tiny_bundle) as library:
        library.add_root(rgb_folder)
        library.sync()
    with Library(tmp_path / "lib.sqlite3", device="cpu") as library:
        assert library.model.manifest.id == "tiny-rgb"
        assert library.model_name == str(tiny_bundle.resolve())
        assert library.search("red").hits[0].photo.path.name == "red.jpg"


def test_a_model_given_for_one_run_does_not_replace_the_library_model(tmp_path, tiny_bundle, rgb_folder):
    from tests.tiny_model import make_tiny_bundle

    other = make_tiny_bundle(tmp_path / "other", model_id="tiny-other")
    with open_library(tmp_path, tiny_bundle) as library:
        library.add_root(rgb_folder)
        library.sync()
    with open_library(tmp_path, other):
        pass
    with Library(tmp_path / "lib.sqlite3", device="cpu") as library:
        assert library.model_name == str(tiny_bundle.resolve())


def test_exact_re_ranking_reads_the_same_vectors_the_index_is_loaded_from(tmp_path, tiny_bundle, rgb_folder):
    """A quantized search re-scores its candidates with vectors fetched by content id; they must
    be the vectors the index was built from, text found in the photo mixed in, in the order
    asked, zeros for an id without a vector."""
    import numpy as np

    with open_library(tmp_path, tiny_bundle) as library:
        library.add_root(rgb_folder)
        library.sync()
        library.model.manifest.search["text_in_photo_weight"] = 0.5
        red = library.photo(rgb_folder / "red.jpg")
        sign = np.zeros(library.model.manifest.embedding_size, dtype=np.float32)
        sign[-1] = 1.0  # blue: far from the red photo
        with library._lock, library._conn:
            library._conn.execute(
                "INSERT INTO embeddings (content_id, model_id, kind, region, vector) VALUES (?, ?, 'text', 0, ?)",
                (red.content_id, library.model.id, sign.tobytes()),
            )
        loaded = {int(i): v for ids, vectors in library._vector_chunks() for i, v in zip(ids, vectors, strict=True)}
        assert len(loaded) == 3
        ids = [*sorted(loaded, reverse=True), 10_000]
        fetched = library._fetch_exact(np.asarray(ids))
        assert np.array_equal(fetched[:3], np.stack([loaded[i] for i in ids[:3]]))
        assert not fetched[3].any()
        plain = library._fetch_exact(np.asarray([red.content_id]))[0]
        assert abs(float(plain @ sign) - float(loaded[red.content_id] @ sign)) < 1e-6
        library.model.manifest.search["text_in_photo_weight"] = 0.0
        without = library._fetch_exact(np.asarray([red.content_id]))[0]
        assert float(without @ sign) < float(plain @ sign) - 0.05  # the text moved it


def _with_reference(bundle: Path, folder: Path, reference: list[float], lift: float) -> Path:
    """A copy of ``bundle`` whose manifest names a reference photo's vector."""
    shutil.copytree(bundle, folder)
    np.save(folder / "reference.npy", np.array(reference, dtype=np.float32))
    data = json.loads((folder / "model.json").read_text())
    data["files"]["reference.npy"] = {}
    data["search"].update(reference="reference.npy", relevance_lift=lift)
    write_manifest(folder, data)
    return folder


def test_a_description_must_beat_its_score_with_the_reference_photo(tmp_path, tiny_bundle, rgb_folder):
    # The tiny model's red photo scores about 0.9 for "red", above its cutoff (0.5). A reference
    # photo that is red, with a lift of 0.1, asks more of "red" than any photo scores; a blue
    # one leaves the cutoff as the floor.
    red = _with_reference(tiny_bundle, tmp_path / "red-ref", [1.0, 0.0, 0.0], 0.1)
    blue = _with_reference(tiny_bundle, tmp_path / "blue-ref", [0.0, 0.0, 1.0], 0.1)
    for bundle, shown in [(red, []), (blue, ["red.jpg"])]:
        with Library(tmp_path / f"{bundle.name}.sqlite3", model=str(bundle), device="cpu") as library:
            library.add_root(rgb_folder)
            library.sync()
            results = library.search("red")
            assert [hit.photo.path.name for hit in results.hits] == shown
            assert results.hits or results.message == "no photo matches well enough"
            # A cutoff chosen (the window's preferences, --cutoff) moves the floor by its
            # difference from the model's (0.5): the same at 0.5, lower at 0.3.
            assert [h.photo.path.name for h in library.search("red", cutoff=0.5).hits] == shown
            assert library.search("red", cutoff=0.3).hits[0].photo.path.name == "red.jpg"


def test_a_reference_that_is_not_one_vector_of_the_models_size_is_refused(tmp_path, tiny_bundle, rgb_folder):
    bundle = _with_reference(tiny_bundle, tmp_path / "bad-ref", [1.0, 0.0], 0.1)
    with Library(tmp_path / "lib.sqlite3", model=str(bundle), device="cpu") as library:
        library.add_root(rgb_folder)
        library.sync()
        with pytest.raises(ModelError, match=r"reference\.npy is not one vector of 3"):
            library.search("red")


def test_search_on_disk_leaves_out_deleted_photos_and_reads_further_for_their_places(tmp_path, tiny_bundle):
    folder = tmp_path / "photos"
    reds = [solid(folder / f"red{i:02}.jpg", (220, 10 + 3 * i, 20)) for i in range(16)]
    solid(folder / "copy" / "red00.jpg", (220, 10, 20))  # the same content as red00.jpg
    blue = solid(folder / "blue.jpg", (20, 30, 220))
    with Library(tmp_path / "lib.sqlite3", model=str(tiny_bundle)) as library:
        library.add_root(folder)
        library.sync(read_text=False)
        for photo in reds:
            photo.unlink()  # deleted since the scan; the copy of red00 stays
        everything = library.search("red", limit=3, cutoff=-1)
        assert len(everything.hits) == 3 and everything.left_out == 0  # (no check asked for)
        results = library.search("red", limit=2, cutoff=-1, on_disk=True)
        # The best 16 files are gone: more than the first candidates read; red00 is still there
        # by its copy, and blue comes next.
        assert [h.photo.path for h in results.hits] == [folder / "copy" / "red00.jpg", blue]
        assert results.left_out == 16  # the 16 red files, the first red00.jpg among them
        (folder / "copy" / "red00.jpg").unlink()
        blue.unlink()
        results = library.search("red", limit=2, cutoff=-1, on_disk=True)
        assert (
            results.hits == [] and results.left_out == 18 and results.message == "no photo that matched is on disk now"
        )


def test_every_copy_of_a_photo_is_a_result(tmp_path, tiny_bundle, rgb_folder):
    (rgb_folder / "copy-of-red.jpg").write_bytes((rgb_folder / "red.jpg").read_bytes())
    with Library(tmp_path / "lib.sqlite3", model=str(tiny_bundle)) as library:
        library.add_root(rgb_folder)
        library.sync(read_text=False)
        hits = library.search("red", limit=10, cutoff=-1).hits
        assert {h.photo.path.name for h in hits[:2]} == {"red.jpg", "copy-of-red.jpg"}  # (one stood for both)
        assert hits[0].score == hits[1].score and len(hits) == 4
        assert len(library.search("red", limit=1, cutoff=-1).hits) == 1
        # Find similar leaves out the photo it starts from, and its copies.
        similar = library.search(f'like:"{rgb_folder / "red.jpg"}"', limit=10).hits
        assert {h.photo.path.name for h in similar} == {"green.png", "blue.jpg"}
