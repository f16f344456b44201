"""Reading text in photos (signs, labels, screenshots) so that "a sign saying STOP" finds them,
and finding faces in them, so that "a person" finds people (:mod:`engine.ingest.faces`).

Both are slower than embedding (a detector over the whole photo), so they run as a second
pass after the photos are searchable, on one 640-pixel copy of each photo. Text is stored per
content in ``photo_text`` (an empty text means "looked, found none"), embedded with the active
model's text encoder, and mixed into the photo's vector when the index loads. Faces are stored
in ``photo_faces`` (their boxes; none means "looked, found none"); a model that asks for it
(``people_in_photo_weight``) mixes a sentence about the people into the photo's vector.

The reader is RapidOCR with the PP-OCR detection and recognition models that ship inside the
``rapidocr`` package (no download).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from engine.errors import DecodeError
from engine.ingest import faces as face_finding
from engine.ingest.decode import decode_photo, read_photo_file
from engine.ingest.pipeline import IndexProgress
from engine.models.registry import LoadedModel
from engine.store.writer import Writer

log = logging.getLogger(__name__)

ENGINE_ID = "rapidocr-3"
#: Longest side the detector sees; larger finds smaller text but costs quadratically more.
DETECT_SIDE = 640
MIN_CONFIDENCE = 0.75
_WORD = re.compile(r"[\w][\w'&.-]*", re.UNICODE)


@dataclass(frozen=True)
class FoundText:
    text: str  # words found, in reading order; "" when none
    confidence: float  # mean recognition score of what was kept


@dataclass(frozen=True)
class TextJob:
    content_id: int
    path: Path
    size: int
    read_text: bool = True
    find_faces: bool = False


@dataclass(frozen=True)
class Found:
    """What the second pass found in one photo: ``None`` where it did not look."""

    text: FoundText | None
    faces: list[face_finding.Face] | None


@dataclass
class PassResult:
    """Content ids that got a text vector, and those where faces were found."""

    with_text: list[int]
    with_faces: list[int]

    @property
    def changed(self) -> list[int]:
        """Contents whose searched vector changes."""
        return sorted(set(self.with_text) | set(self.with_faces))


class TextReader:
    """Finds words in a photo. One instance per thread (RapidOCR keeps per-call state)."""

    def __init__(self, detect_side: int = DETECT_SIDE, min_confidence: float = MIN_CONFIDENCE) -> None:
        from rapidocr import RapidOCR

        self.detect_side = detect_side
        self.min_confidence = min_confidence
        params: dict[str, Any] = {
            "Global.log_level": "error",
            "Global.use_cls": False,  # photos are rarely upside down; the classifier costs time
            "Det.limit_side_len": detect_side,
            "Det.limit_type": "max",
            "EngineConfig.onnxruntime.intra_op_num_threads": 1,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
        }
        self._ocr = RapidOCR(params=params)

    def read(self, image: Image.Image) -> FoundText:
        result = self._ocr(image)
        texts = getattr(result, "txts", None) or ()
        scores = getattr(result, "scores", None) or ()
        kept: list[str] = []
        confidences: list[float] = []
        for text, score in zip(texts, scores, strict=False):
            words = _WORD.findall(str(text))
            # Single letters and low-confidence reads are mostly texture mistaken for text.
            if float(score) >= self.min_confidence and sum(len(w) for w in words) >= 2:
                kept.append(" ".join(words))
                confidences.append(float(score))
        if not kept:
            return FoundText("", 0.0)
        return FoundText(" ".join(kept)[:500], float(np.mean(confidences)))


def text_phrase(text: str) -> str:
    """How found text is put into words for the text encoder."""
    return f'a sign that says "{text}"'


class TextPass:
    """The second indexing pass: read text in photos and embed what was found."""

    def __init__(
        self,
        db_path: Path,
        model: LoadedModel,
        *,
        workers: int | None = None,
        on_progress: Callable[[IndexProgress], None] | None = None,
        cancel: threading.Event | None = None,
        reader_factory: Callable[[], TextReader] = TextReader,
        detector_factory: Callable[[], face_finding.FaceDetector] | None = None,
    ) -> None:
        self.db_path = db_path
        self.model = model
        self.workers = workers or max(1, min(4, os.cpu_count() or 1))
        self.on_progress = on_progress
        self.cancel = cancel or threading.Event()
        self._reader_factory = reader_factory
        if detector_factory is None and face_finding.available():
            detector_factory = face_finding.FaceDetector
        self._detector_factory = detector_factory
        self._local = threading.local()

    @property
    def finds_faces(self) -> bool:
        return self._detector_factory is not None

    def pending(self, conn: sqlite3.Connection) -> list[TextJob]:
        """Indexed contents whose text has not been read yet, or (where faces can be found)
        whose faces have not been looked for; one readable file each."""
        rows = conn.execute(
            """SELECT c.id, r.path, p.rel_path, p.size, t.content_id IS NULL, f.content_id IS NULL FROM contents c
               JOIN photos p ON p.id = (SELECT min(id) FROM photos q WHERE q.content_id = c.id AND q.state = 'indexed')
               JOIN roots r ON r.id = p.root_id
               LEFT JOIN photo_text t ON t.content_id = c.id
               LEFT JOIN photo_faces f ON f.content_id = c.id
               WHERE r.online = 1 AND (t.content_id IS NULL OR (? AND f.content_id IS NULL))
               ORDER BY c.id""",
            (self.finds_faces,),
        ).fetchall()
        from engine.ingest.scan import from_db_name

        faces = self.finds_faces
        return [
            TextJob(r[0], Path(from_db_name(r[1])) / from_db_name(r[2]), r[3], bool(r[4]), faces and bool(r[5]))
            for r in rows
        ]

    def unembedded(self, conn: sqlite3.Connection) -> list[tuple[int, str]]:
        """Found texts that the active model has not embedded yet (e.g. after a model switch)."""
        return conn.execute(
            """SELECT t.content_id, t.text FROM photo_text t WHERE t.text != '' AND NOT EXISTS (
               SELECT 1 FROM embeddings e WHERE e.content_id = t.content_id AND e.model_id = ?
               AND e.kind = 'text' AND e.region = 0)""",
            (self.model.id,),
        ).fetchall()

    def _reader(self) -> TextReader:
        reader = getattr(self._local, "reader", None)
        if reader is None:
            reader = self._local.reader = self._reader_factory()
        return reader

    def _detector(self) -> face_finding.FaceDetector | None:
        if self._detector_factory is None:
            return None
        detector = getattr(self._local, "detector", None)
        if detector is None:
            detector = self._local.detector = self._detector_factory()
        return detector

    def _read(self, job: TextJob) -> tuple[TextJob, Found]:
        try:
            data = read_photo_file(job.path, job.size)
            decoded = decode_photo(data, min_side=DETECT_SIDE * 3 // 4)
        except DecodeError as exc:
            log.info("cannot read text or find faces in %s: %s", job.path, exc.reason)
            # An unreadable file is marked as looked at (nothing found) so it is not retried forever.
            return job, Found(FoundText("", 0.0) if job.read_text else None, [] if job.find_faces else None)
        image = decoded.image
        image.thumbnail((DETECT_SIDE, DETECT_SIDE), Image.Resampling.BILINEAR)
        text = self._reader().read(image) if job.read_text else None
        detector = self._detector() if job.find_faces else None
        faces = detector.detect(image) if detector is not None else None
        return job, Found(text, faces)

    def _store(self, writer: Writer, found: list[tuple[int, Found]], embedded: dict[int, np.ndarray]) -> None:
        model_id = self.model.id

        def work(conn: sqlite3.Connection) -> None:
            for content_id, item in found:
                if conn.execute("SELECT 1 FROM contents WHERE id = ?", (content_id,)).fetchone() is None:
                    continue  # the photo was removed meanwhile
                if item.text is not None:
                    conn.execute(
                        "INSERT OR REPLACE INTO photo_text (content_id, engine, text, confidence) VALUES (?, ?, ?, ?)",
                        (content_id, ENGINE_ID, item.text.text, item.text.confidence),
                    )
                if item.faces is not None:
                    conn.execute(
                        "INSERT OR REPLACE INTO photo_faces (content_id, engine, faces, boxes) VALUES (?, ?, ?, ?)",
                        (
                            content_id,
                            face_finding.ENGINE_ID,
                            len(item.faces),
                            json.dumps([face.as_list() for face in item.faces]),
                        ),
                    )
            for content_id, vector in embedded.items():
                if conn.execute("SELECT 1 FROM contents WHERE id = ?", (content_id,)).fetchone() is None:
                    continue
                conn.execute(
                    "INSERT OR REPLACE INTO embeddings (content_id, model_id, kind, region, box, vector) "
                    "VALUES (?, ?, 'text', 0, NULL, ?)",
                    (content_id, model_id, vector.astype(np.float32).tobytes()),
                )

        writer.submit(work)

    def _embed(self, texts: dict[int, str]) -> dict[int, np.ndarray]:
        if not texts:
            return {}
        ids = list(texts)
        vectors = self.model.text.encode([text_phrase(texts[i]) for i in ids])
        return dict(zip(ids, vectors, strict=True))

    def run(self, jobs: list[TextJob], backlog: list[tuple[int, str]] | None = None) -> PassResult:
        """Read text in ``jobs`` and embed it (plus ``backlog`` texts read before), and find
        faces where the job asks. Returns the content ids that got a text vector and those where
        faces were found."""
        writer = Writer(self.db_path)
        started = time.perf_counter()
        with_text: list[int] = []
        with_faces: list[int] = []
        try:
            if backlog:
                self._store(writer, [], self._embed(dict(backlog)))
                with_text += [cid for cid, _ in backlog]
            done = 0
            pending = list(reversed(jobs))
            in_flight: set[Future[tuple[TextJob, Found]]] = set()
            batch: list[tuple[int, Found]] = []
            last = 0.0

            def store() -> None:
                nonlocal batch
                texts = {cid: f.text.text for cid, f in batch if f.text is not None and f.text.text}
                with_text.extend(texts)
                with_faces.extend(cid for cid, f in batch if f.faces)
                self._store(writer, batch, self._embed(texts))
                batch = []

            with ThreadPoolExecutor(self.workers, thread_name_prefix="photoseek-text") as pool:
                try:
                    while (pending or in_flight) and not self.cancel.is_set():
                        while pending and len(in_flight) < 2 * self.workers:
                            in_flight.add(pool.submit(self._read, pending.pop()))
                        finished, in_flight = wait(in_flight, timeout=0.2, return_when=FIRST_COMPLETED)
                        for future in finished:
                            job, found = future.result()
                            done += 1
                            batch.append((job.content_id, found))
                        if len(batch) >= 16 or (batch and not in_flight and not pending):
                            store()
                        now = time.perf_counter()
                        if self.on_progress and (now - last > 0.25 or not (pending or in_flight)):
                            last = now
                            elapsed = now - started
                            rate = done / elapsed if elapsed > 0 else 0.0
                            eta = (len(jobs) - done) / rate if rate > 0 else None
                            self.on_progress(IndexProgress(done, len(jobs), done, 0, 0, rate, eta, elapsed))
                finally:
                    for future in in_flight:
                        future.cancel()
                    # Stopped (the window closing, Ctrl+C): what was read already is kept, not
                    # read again by the next pass (up to a batch of photos was lost).
                    if batch:
                        store()
        finally:
            writer.close()
        return PassResult(with_text, with_faces)
