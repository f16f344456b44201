"""Changing a library's model or captioner: search stays on the old vectors until the new ones
cover every photo; vectors of different models are never mixed."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("torch")

from engine.library import Library
from engine.models.encoder_decoder import EncoderDecoderCaptioner
from engine.models.importers import BundleInfo, import_folder
from engine.models.runtime import SessionFactory
from tests.conftest import solid
from tests.hub_models import make_hf_captioner, make_immich_clip


@pytest.fixture
def clip(tmp_path) -> str:
    return import_folder(make_immich_clip(tmp_path / "src" / "clip"), BundleInfo("clip")).id


def _indexed_with_old_model(tmp_path: Path, tiny_bundle: Path, folder: Path) -> Library:
    library = Library(tmp_path / "lib.sqlite3", model=str(tiny_bundle), device="cpu")
    library.add_root(folder)
    library.sync()
    return library


def _embedding_models(library: Library) -> set[str]:
    with library._lock:
        return {r[0] for r in library._conn.execute("SELECT DISTINCT model_id FROM embeddings")}


def test_search_keeps_the_old_vectors_until_the_new_model_covers_every_photo(tmp_path, tiny_bundle, rgb_folder, clip):
    with _indexed_with_old_model(tmp_path, tiny_bundle, rgb_folder) as library:
        switch = library.use_model(clip, background=False)
        assert switch.model == "clip@1" and library.pending_model_name == clip
        assert library.status()["switching_to"]["embedded"] == 0
        stopped = threading.Event()
        stopped.set()
        report = library.reembed(cancel=stopped)  # interrupted before any photo was embedded
        assert report is not None and report.cancelled
        assert library.pending_model_name == clip
        assert library.model.id == "tiny-rgb@1" and library.search_index().dim == 3
        assert library.search("red").hits[0].photo.path.name == "red.jpg"

        report = library.reembed()
        assert report is not None and report.embedded == 3
        assert library.pending_model_name is None and library.model.id == "clip@1"
        assert library.search_index().dim == 16
        assert library.search("red").hits[0].photo.path.name == "red.jpg"
        assert library.similar(rgb_folder / "red.jpg").hits  # like: uses the new model's vectors too
        assert _embedding_models(library) == {"tiny-rgb@1", "clip@1"}  # kept apart, by model id
    with Library(tmp_path / "lib.sqlite3", device="cpu") as reopened:  # the choice is remembered
        assert reopened.model.id == "clip@1" and reopened.pending_model_name is None


def test_switching_runs_in_the_background_with_progress(tmp_path, tiny_bundle, rgb_folder, clip):
    with _indexed_with_old_model(tmp_path, tiny_bundle, rgb_folder) as library:
        seen = []
        switch = library.use_model(clip, on_progress=seen.append)
        assert switch.wait(120) and switch.error is None
        assert switch.report is not None and switch.report.embedded == 3
        assert seen and seen[-1].done == seen[-1].total == 3
        assert library.model.id == "clip@1"


def test_sync_continues_a_switch_and_new_photos_get_both_models_vectors(tmp_path, tiny_bundle, rgb_folder, clip):
    with _indexed_with_old_model(tmp_path, tiny_bundle, rgb_folder) as library:
        library.use_model(clip, background=False)
        solid(rgb_folder / "more" / "red2.jpg", (230, 10, 10))
        report = library.sync()
        assert report.index is not None and report.index.embedded == 1  # the old model, for search meanwhile
        assert report.reembed is not None and report.reembed.embedded == 4
        assert library.model.id == "clip@1"
        assert {h.photo.path.name for h in library.search("red").hits[:2]} == {"red.jpg", "red2.jpg"}


def test_an_empty_library_switches_at_once(tmp_path, clip):
    with Library(tmp_path / "lib.sqlite3", device="cpu") as library:
        switch = library.use_model(clip)
        assert switch.done and library.pending_model_name is None
        assert library.model.id == "clip@1"


def test_a_captioner_bundle_captions_the_library(tmp_path, tiny_bundle, rgb_folder):
    source, _, _ = make_hf_captioner(tmp_path / "src" / "captioner")
    captioner = import_folder(source, BundleInfo("captioner"))
    with _indexed_with_old_model(tmp_path, tiny_bundle, rgb_folder) as library:
        labels = library.photo(rgb_folder / "red.jpg").caption
        library.use_captioner("captioner")
        report = library.sync()
        assert report.index is not None and report.index.embedded == 3
        with Image.open(rgb_folder / "red.jpg") as photo:
            expected = EncoderDecoderCaptioner(captioner, SessionFactory("cpu")).caption([photo.convert("RGB")])
        assert expected[0] and library.photo(rgb_folder / "red.jpg").caption == expected[0]
        library.use_captioner(None)  # back to the model's own captions: still stored, nothing to redo
        assert library.sync().index.total == 0
        assert library.photo(rgb_folder / "red.jpg").caption == labels


def test_text_found_in_photos_is_embedded_with_the_new_model_before_the_switch(tmp_path, tiny_bundle, rgb_folder, clip):
    from engine.models.manifest import load_manifest, write_manifest
    from engine.paths import models_dir

    bundle = models_dir() / clip
    data = load_manifest(bundle).raw
    data["search"] = {"cutoff": -1.0, "text_in_photo_weight": 0.5}
    write_manifest(bundle, data)
    with _indexed_with_old_model(tmp_path, tiny_bundle, rgb_folder) as library:
        red = library.photo(rgb_folder / "red.jpg")
        with library._lock, library._conn:
            library._conn.execute(
                "INSERT OR REPLACE INTO photo_text (content_id, engine, text, confidence) VALUES (?, 'test', ?, 0.9)",
                (red.content_id, "red sale"),
            )
        library.use_model(clip, background=False)
        library.reembed()
        assert library.model.id == "clip@1"
        with library._lock:
            rows = library._conn.execute(
                "SELECT content_id FROM embeddings WHERE model_id = 'clip@1' AND kind = 'text'"
            ).fetchall()
        assert rows == [(red.content_id,)]


def test_models_use_from_the_command_line(tmp_path, tiny_bundle, rgb_folder, clip, capsys):
    from engine.cli import main

    db = ["--db", str(tmp_path / "lib.sqlite3"), "--device", "cpu"]
    assert main(["models", "use", str(tiny_bundle), *db]) == 0  # an empty library switches at once
    assert main(["index", str(rgb_folder), *db]) == 0
    assert main(["models", "use", clip, *db, "--later"]) == 0
    capsys.readouterr()
    assert main(["status", *db]) == 0
    out = capsys.readouterr().out
    assert "model:    Tiny RGB test model" in out and "switching to: clip (clip@1): 0/3 photos embedded" in out
    assert main(["models", "use", clip, *db]) == 0
    assert "the library now uses clip@1" in capsys.readouterr().out
    assert main(["status", *db]) == 0
    out = capsys.readouterr().out
    assert "model:    clip (clip 1)" in out and "switching to" not in out
    assert main(["search", "red", *db, "--paths-only"]) == 0
    assert capsys.readouterr().out.split()[0].endswith("red.jpg")
