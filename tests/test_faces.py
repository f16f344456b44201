"""Faces: found in the sample portraits and nowhere else, stored by the second pass, shown in
captions, and mixed into the built-in model's vectors so that "a person" finds people."""

from __future__ import annotations

import shutil
import sqlite3

import numpy as np
import pytest
from PIL import Image

from engine import paths
from engine.ingest import faces
from engine.ingest.textread import TextPass
from engine.library import Library, _with_found_in_photo

PEOPLE = [
    "astronaut-eileen-collins-in-spacesuit.jpg",
    "cameraman-with-tripod-camera.jpg",
    "grace-hopper-portrait-in-navy-uniform.jpg",
]
# Sample photos where the detector proposes nothing at all, even at a face probability of 0.5.
NO_PEOPLE = [
    "coffee-cup-on-saucer.jpg",
    "tabby-cat-chelsea.jpg",
    "orange-dahlia-flower.jpg",
    "white-rocket-on-launch-pad-at-dusk.jpg",
    "wine-bottle-and-djembe-drum-in-living-room.jpg",
    "wooden-jetty-by-lake.jpg",
]


def _photo(name: str) -> Image.Image:
    image = Image.open(paths.SAMPLE_PHOTOS_DIR / name).convert("RGB")
    image.thumbnail((640, 640))
    return image


@pytest.fixture(scope="module")
def detector() -> faces.FaceDetector:
    return faces.FaceDetector()


@pytest.mark.parametrize("name", PEOPLE)
def test_one_face_in_each_sample_portrait_where_the_face_is(detector, name):
    found = detector.detect(_photo(name))
    assert len(found) == 1, found
    face = found[0]
    assert face.score > 0.95
    # The faces are in the upper middle of these photos, a tenth to a third of their width.
    assert 0.25 < (face.x1 + face.x2) / 2 < 0.75 and (face.y1 + face.y2) / 2 < 0.5
    assert 0.08 < face.x2 - face.x1 < 0.4


@pytest.mark.parametrize("name", NO_PEOPLE)
def test_no_face_where_there_is_none(detector, name):
    assert detector.detect(_photo(name)) == []


def test_a_face_too_small_for_the_photo_is_not_counted(detector):
    # The same portrait pasted small into a large empty picture: the face is now far below
    # the smallest share of the picture that makes it a photo of a person.
    portrait = _photo(PEOPLE[2])
    portrait.thumbnail((160, 160))
    canvas = Image.new("RGB", (1600, 1200), (128, 128, 128))
    canvas.paste(portrait, (700, 500))
    assert detector.detect(canvas) == []
    assert len(detector.detect(portrait)) == 1  # it is still a face on its own


def test_non_maximum_suppression_keeps_the_best_of_overlapping_boxes():
    boxes = np.array(
        [
            [0, 0, 10, 10, 0.8],
            [1, 1, 11, 11, 0.9],  # overlaps the first: kept, the first goes
            [50, 50, 60, 60, 0.7],  # apart: kept
            [52, 52, 58, 58, 0.95],  # inside the third, IoU 0.36 but all of it covered
        ],
        dtype=np.float32,
    )
    assert faces._nms(boxes, 0.5).tolist() == [3, 1, 2]
    assert faces._nms(boxes, 0.7, by_min=True).tolist() == [3, 1]


def test_found_vectors_are_mixed_with_their_weights_and_normalised():
    vectors = np.eye(3, dtype=np.float32)
    text = {11: np.array([0, 1, 0], dtype=np.float32)}
    people = {11: np.array([0, 0, 1], dtype=np.float32), 12: np.array([0, 1, 0], dtype=np.float32)}
    mixed = _with_found_in_photo([10, 11, 12], vectors, [(text, 0.5), (people, 0.25)])
    assert np.allclose(mixed[0], vectors[0])  # nothing found: unchanged
    expected = np.array([0, 1.5, 0.25]) / np.linalg.norm([0, 1.5, 0.25])
    assert np.allclose(mixed[1], expected, atol=1e-6)
    assert np.allclose(mixed[2], np.array([0, 0.25, 1]) / np.linalg.norm([0, 0.25, 1]))


@pytest.fixture(scope="module")
def people_library(builtin_bundle, tmp_path_factory):
    folder = tmp_path_factory.mktemp("people")
    for name in PEOPLE + NO_PEOPLE:
        shutil.copy(paths.SAMPLE_PHOTOS_DIR / name, folder / name)
    db = tmp_path_factory.mktemp("people-lib") / "lib.sqlite3"
    with Library(db, model=str(builtin_bundle), device="cpu") as library:
        library.add_root(folder)
        report = library.sync()
        assert report.faces_found == len(PEOPLE)
        yield library


def test_a_person_finds_the_photos_of_people_first(people_library):
    names = [hit.photo.path.name for hit in people_library.search("a person", limit=5).hits]
    assert sorted(names[:3]) == sorted(PEOPLE), names


def test_without_the_faces_a_person_does_not_find_them_first(people_library, monkeypatch):
    # The same library and vectors with the people sentence's weight at 0: the portraits are
    # not the first three, which is what the faces are for.
    manifest = people_library.model.manifest
    monkeypatch.setitem(manifest.search, "people_in_photo_weight", 0.0)
    people_library.reload_index()
    try:
        names = [hit.photo.path.name for hit in people_library.search("a person", limit=5).hits]
        assert sorted(names[:3]) != sorted(PEOPLE), names
    finally:
        monkeypatch.undo()
        people_library.reload_index()


def test_captions_say_a_face_was_found_and_nothing_else_does(people_library):
    for name in PEOPLE:
        assert "A face in the photo." in (people_library.photo(name).caption or "")
    for name in NO_PEOPLE:
        assert "face" not in (people_library.photo(name).caption or "")
    rows = people_library._conn.execute("SELECT faces, engine FROM photo_faces").fetchall()
    assert sorted(rows) == sorted([(0, faces.ENGINE_ID)] * len(NO_PEOPLE) + [(1, faces.ENGINE_ID)] * len(PEOPLE))


class _NoReading:
    def read(self, image):
        raise AssertionError("text was read again")


class _OneFace:
    def detect(self, image):
        return [faces.Face(0.4, 0.2, 0.6, 0.5, 0.99)]


def test_a_library_whose_text_was_read_gets_its_faces_without_reading_text_again(tmp_path, tiny_bundle, rgb_folder):
    with Library(tmp_path / "lib.sqlite3", model=str(tiny_bundle), device="cpu") as library:
        library.add_root(rgb_folder)
        library.sync(read_text=False)
        conn = library._conn
        # A library from before faces were looked for: every photo's text read, no face rows.
        for (content_id,) in conn.execute("SELECT id FROM contents").fetchall():
            conn.execute(
                "INSERT INTO photo_text (content_id, engine, text, confidence) VALUES (?, 'rapidocr-3', '', 0)",
                (content_id,),
            )
        conn.commit()
        text_pass = TextPass(library.db_path, library.model, reader_factory=_NoReading, detector_factory=_OneFace)
        jobs = text_pass.pending(conn)
        assert len(jobs) == 3 and not any(job.read_text for job in jobs) and all(job.find_faces for job in jobs)
        found = text_pass.run(jobs)
        assert len(found.with_faces) == 3 and found.with_text == []
        assert conn.execute("SELECT count(*) FROM photo_faces WHERE faces = 1").fetchone()[0] == 3
        assert text_pass.pending(conn) == []
        assert library.photo(rgb_folder / "red.jpg").caption.endswith("A face in the photo.")


def test_without_the_detector_text_is_still_read_and_faces_wait(tmp_path, tiny_bundle, rgb_folder, monkeypatch):
    monkeypatch.setattr(faces, "available", lambda: False)
    with Library(tmp_path / "lib.sqlite3", model=str(tiny_bundle), device="cpu") as library:
        library.add_root(rgb_folder)
        library.sync()
        conn = library._conn
        assert conn.execute("SELECT count(*) FROM photo_text").fetchone()[0] == 3
        assert conn.execute("SELECT count(*) FROM photo_faces").fetchone()[0] == 0
    # Once the detector is there, the next run looks for faces only.
    monkeypatch.undo()
    with Library(tmp_path / "lib.sqlite3", model=str(tiny_bundle), device="cpu") as library:
        jobs = TextPass(library.db_path, library.model, reader_factory=_NoReading).pending(library._conn)
        assert len(jobs) == 3 and all(job.find_faces and not job.read_text for job in jobs)


def test_an_unreadable_photo_is_marked_as_looked_at(tmp_path, tiny_bundle, rgb_folder):
    with Library(tmp_path / "lib.sqlite3", model=str(tiny_bundle), device="cpu") as library:
        library.add_root(rgb_folder)
        library.sync(read_text=False)
        (rgb_folder / "red.jpg").write_bytes(b"")  # gone bad after indexing
        text_pass = TextPass(library.db_path, library.model, detector_factory=_OneFace)
        text_pass.run(text_pass.pending(library._conn))
        conn = sqlite3.connect(library.db_path)
        row = conn.execute(
            "SELECT f.faces, t.text FROM photo_faces f JOIN photo_text t USING (content_id) "
            "JOIN photos p ON p.content_id = f.content_id WHERE p.rel_path = 'red.jpg'"
        ).fetchone()
        assert row == (0, "")
