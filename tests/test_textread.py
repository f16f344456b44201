"""Text in photos: found, stored, embedded, and shown in the caption."""

from __future__ import annotations

import time

from PIL import Image, ImageDraw, ImageFont

from engine.ingest.textread import TextReader
from engine.library import Library


def sign(path, text: str = "STOP"):
    image = Image.new("RGB", (640, 480), (60, 110, 60))
    draw = ImageDraw.Draw(image)
    draw.rectangle([180, 140, 460, 340], fill=(200, 20, 20))
    draw.text((205, 195), text, fill=(255, 255, 255), font=ImageFont.load_default(size=80))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, quality=92)
    return path


def test_reader_finds_big_text_and_nothing_in_plain_photos(tmp_path):
    reader = TextReader()
    found = reader.read(Image.open(sign(tmp_path / "stop.jpg")))
    assert found.text == "STOP" and found.confidence > 0.9
    assert reader.read(Image.new("RGB", (400, 300), (90, 140, 200))).text == ""


def test_text_pass_stores_text_and_a_text_vector(tmp_path, tiny_bundle, rgb_folder):
    sign(rgb_folder / "stop.jpg")
    with Library(tmp_path / "lib.sqlite3", model=str(tiny_bundle), device="cpu") as library:
        library.add_root(rgb_folder)
        report = library.sync()
        assert report.text_found == 1
        conn = library._conn
        rows = dict(
            conn.execute("SELECT c.fingerprint, t.text FROM photo_text t JOIN contents c ON c.id = t.content_id")
        )
        assert sorted(rows.values()) == ["", "", "", "STOP"]  # every photo looked at once
        kinds = conn.execute("SELECT kind, count(*) FROM embeddings GROUP BY kind").fetchall()
        assert dict(kinds) == {"image": 4, "text": 1}
        assert 'Text in the photo: "STOP"' in (library.photo(rgb_folder / "stop.jpg").caption or "")
        # nothing is read twice
        assert library.read_text() == 0


def test_the_watcher_reads_text_in_photos_that_arrive(tmp_path, tiny_bundle, rgb_folder):
    from engine.service import LibraryService

    events = []
    with Library(tmp_path / "lib.sqlite3", model=str(tiny_bundle), device="cpu") as library:
        library.add_root(rgb_folder)
        library.sync()
        options = {"debounce": 0.1, "settle": 0.3, "root_check_interval": 0.2, "text_delay": 0.2, "workers": 1}
        with LibraryService(library, on_event=events.append, **options):
            sign(rgb_folder / "late" / "stop.jpg")
            deadline = time.monotonic() + 60
            while not any(e.kind == "text" for e in events) and time.monotonic() < deadline:
                time.sleep(0.1)
        assert 'Text in the photo: "STOP"' in (library.photo(rgb_folder / "late" / "stop.jpg").caption or "")
        assert [e.message for e in events if e.kind == "text"] == ["text found in 1 new photo"]


def test_a_stopped_text_pass_keeps_what_it_read(tmp_path, tiny_bundle, rgb_folder, monkeypatch):
    import threading

    from engine.ingest import faces as face_finding
    from engine.ingest.textread import FoundText, TextPass
    from tests.conftest import solid

    monkeypatch.setattr(face_finding, "available", lambda: False)
    for i in range(12):
        solid(rgb_folder / f"more{i:02}.jpg", (10 + 15 * i, 90, 40))
    stop = threading.Event()
    read: list[int] = []

    class Reader:  # as the OCR reader, quick; the window is closed (or Ctrl+C) after the third photo
        def read(self, _image):
            read.append(1)
            if len(read) == 3:
                stop.set()
            return FoundText("", 0.0)

    with Library(tmp_path / "lib.sqlite3", model=str(tiny_bundle), device="cpu") as library:
        library.add_root(rgb_folder)
        library.sync(read_text=False)
        text_pass = TextPass(library.db_path, library.model, workers=1, cancel=stop, reader_factory=Reader)
        jobs = text_pass.pending(library._conn)
        assert len(jobs) == 15
        text_pass.run(jobs)
        kept = library._conn.execute("SELECT count(*) FROM photo_text").fetchone()[0]
        # The photos read before the stop are kept (one still being read may not be); they were
        # thrown away, the batch being stored every 16.
        assert 3 <= kept <= len(read)
        assert len(text_pass.pending(library._conn)) == 15 - kept
