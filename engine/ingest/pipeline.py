"""The indexing pipeline: decode pool -> batcher -> image encoder -> captioner -> writer.

Decoding (and preprocessing) runs on a bounded thread pool (Pillow and ONNX Runtime release the
GIL), inference runs on batches in the calling thread, and one writer thread commits each batch
in a transaction. A photo whose content is already known (moved, renamed, duplicated) reuses the
stored vector and caption: no decoding, no inference; copies met within one run are decoded and
embedded once, and the others reuse that at the end of the run.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from engine.errors import DecodeError, FileVanishedError
from engine.ingest.decode import FULL_HASH_LIMIT, decode_photo, fingerprint, read_photo_file
from engine.models.registry import LoadedModel
from engine.store.writer import Writer

log = logging.getLogger(__name__)

#: How photo-to-photo vectors are stored: half precision, half the disk; rankings by these
#: vectors do not need more.
SIMILAR_STORED = np.float16


@dataclass(frozen=True)
class Job:
    """One photo file to index."""

    photo_id: int
    path: Path
    size: int
    mtime_ns: int


@dataclass
class IndexProgress:
    """Reported while indexing: counts, speed and time left."""

    done: int
    total: int
    embedded: int
    reused: int
    failed: int
    rate: float  # photos per second over the run so far
    eta_s: float | None
    elapsed_s: float

    def line(self) -> str:
        eta = "--" if self.eta_s is None else _duration(self.eta_s)
        noun = "photo" if self.total == 1 else "photos"
        return f"{self.done}/{self.total} {noun} ({self.failed} failed), {self.rate:.1f} photos/s, {eta} left"


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


@dataclass
class IndexReport:
    total: int = 0
    embedded: int = 0
    reused: int = 0
    failed: int = 0
    skipped: int = 0  # still changing on disk, gone since listed, or cancelled
    cancelled: bool = False
    seconds: float = 0.0
    failures: list[tuple[Path, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Committed:
    """A photo whose new state is committed: listeners update views and the search index."""

    photo_id: int
    content_id: int | None
    state: str  # "indexed" or "failed"; the library also reports "removed", "moved" and "pending"
    vector: np.ndarray | None  # a new vector, when one was computed
    similar: np.ndarray | None = None  # its photo-to-photo vector, for a model that has them


@dataclass
class _Prepared:
    job: Job
    fingerprint: str = ""
    size: int = 0
    mtime_ns: int = 0
    reuse: bool = False
    duplicate: bool = False  # the same content as another photo of this run, which embeds it
    tensor: np.ndarray | None = None
    image: Image.Image | None = None
    meta: dict[str, object] | None = None
    error: str | None = None
    unstable: bool = False  # still being written, or gone: left pending for the next pass
    similar: np.ndarray | None = None  # the photo-to-photo vector, for a model that has one


class Indexer:
    """Indexes jobs with one loaded model into the library at ``db_path``."""

    def __init__(
        self,
        db_path: Path,
        model: LoadedModel,
        *,
        workers: int | None = None,
        batch_size: int = 16,
        on_progress: Callable[[IndexProgress], None] | None = None,
        on_committed: Callable[[list[Committed]], None] | None = None,
        cancel: threading.Event | None = None,
        progress_interval: float = 0.25,
    ) -> None:
        self.db_path = db_path
        self.model = model
        self.workers = workers or max(1, min(8, os.cpu_count() or 1))
        self.batch_size = batch_size
        self.on_progress = on_progress
        self.on_committed = on_committed
        self.cancel = cancel or threading.Event()
        self.progress_interval = progress_interval
        self._needs_images = bool(getattr(model.captioner, "needs_images", False))

    # -- stage 1: read, fingerprint, decode, preprocess (pool threads) ------------------------

    def _prepare(self, job: Job, known: frozenset[str], claim: Callable[[str], bool]) -> _Prepared:
        out = _Prepared(job)
        try:
            if job.size > FULL_HASH_LIMIT:
                out.fingerprint = fingerprint(path=job.path, size=job.size)
                data = None
            else:
                data = read_photo_file(job.path, job.size)
                out.fingerprint = fingerprint(data)
            try:
                st = os.stat(job.path)
            except FileNotFoundError as exc:
                raise FileVanishedError() from exc
            out.size, out.mtime_ns = st.st_size, st.st_mtime_ns
            if data is not None and st.st_size != len(data):
                out.unstable = True  # still being written; the next sync picks it up
                return out
            if out.fingerprint in known:
                out.reuse = True
                return out
            if not claim(out.fingerprint):  # a copy of a photo this run is already embedding
                out.duplicate = True
                return out
            if data is None:
                data = read_photo_file(job.path, job.size)
            decoded = decode_photo(data, min_side=self.model.image.preprocess.size, name=job.path.name)
            out.tensor = self.model.image.preprocess_batch([decoded.image])[0]
            if self._needs_images:
                out.image = decoded.image
            out.meta = {
                "format": decoded.format,
                "width": decoded.width,
                "height": decoded.height,
                "orientation": decoded.orientation,
                "taken_at": decoded.taken_at,
            }
        except FileVanishedError:
            # Not a failure of the photo: deleted (the next scan or the watcher forgets it) or
            # moved (its row follows it, still pending, and is indexed there). Recording it as
            # failed would stick: a move keeps the size and time, so nothing would retry it.
            out.unstable = True
        except DecodeError as exc:
            out.error = exc.reason
        except MemoryError:
            out.error = "not enough memory to decode this image"
        return out

    # -- stage 2: inference on batches (this thread) --------------------------------------------

    def _infer(self, batch: list[_Prepared]) -> tuple[np.ndarray, list[str | None]]:
        """The batch's vectors and captions; a model's photo-to-photo vectors go to each photo's
        ``similar``."""
        tensor = np.stack([p.tensor for p in batch if p.tensor is not None])
        encoded = self.model.image.encode_tensor(tensor)
        if encoded.similar is not None:
            for p, vector in zip(batch, encoded.similar, strict=True):
                p.similar = vector
        captions: list[str | None] = [None] * len(batch)
        if self.model.captioner is not None:
            images = [p.image for p in batch] if self._needs_images else []
            captions = list(self.model.captioner.caption(images, encoded))  # type: ignore[arg-type]
        return encoded.embeddings, captions

    # -- stage 3: the writer -------------------------------------------------------------------

    def _write(self, writer: Writer, items: list[tuple[_Prepared, np.ndarray | None, str | None]]) -> None:
        model_id = self.model.id
        captioner_id = self.model.captioner.id if self.model.captioner else None
        now = time.time()
        committed: list[Committed] = []

        def work(conn: sqlite3.Connection) -> None:
            committed.clear()
            for prepared, vector, caption in items:
                job = prepared.job
                exists = conn.execute("SELECT 1 FROM photos WHERE id = ?", (job.photo_id,)).fetchone()
                if exists is None:  # removed while we worked (folder removed, file deleted)
                    continue
                if prepared.error is not None:
                    conn.execute(
                        "UPDATE photos SET state = 'failed', error = ?, content_id = NULL, size = ?, "
                        "mtime_ns = ?, seen_at = ? WHERE id = ?",
                        (
                            prepared.error,
                            prepared.size or job.size,
                            prepared.mtime_ns or job.mtime_ns,
                            now,
                            job.photo_id,
                        ),
                    )
                    committed.append(Committed(job.photo_id, None, "failed", None))
                    continue
                row = conn.execute("SELECT id FROM contents WHERE fingerprint = ?", (prepared.fingerprint,)).fetchone()
                if row is None:
                    meta = prepared.meta or {}
                    cur = conn.execute(
                        "INSERT INTO contents (fingerprint, format, width, height, taken_at, orientation, created_at) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (
                            prepared.fingerprint,
                            meta.get("format"),
                            meta.get("width"),
                            meta.get("height"),
                            meta.get("taken_at"),
                            meta.get("orientation"),
                            now,
                        ),
                    )
                    content_id = cur.lastrowid
                else:
                    content_id = row[0]
                if vector is not None:
                    conn.execute(
                        "INSERT OR REPLACE INTO embeddings (content_id, model_id, kind, region, box, vector) "
                        "VALUES (?, ?, 'image', 0, NULL, ?)",
                        (content_id, model_id, vector.astype(np.float32).tobytes()),
                    )
                    if prepared.similar is not None:
                        conn.execute(
                            "INSERT OR REPLACE INTO embeddings (content_id, model_id, kind, region, box, vector) "
                            "VALUES (?, ?, 'similar', 0, NULL, ?)",
                            (content_id, model_id, prepared.similar.astype(SIMILAR_STORED).tobytes()),
                        )
                if caption is not None and captioner_id is not None:
                    conn.execute(
                        "INSERT OR REPLACE INTO captions (content_id, model_id, text, phrases) VALUES (?, ?, ?, NULL)",
                        (content_id, captioner_id, caption),
                    )
                conn.execute(
                    "UPDATE photos SET state = 'indexed', error = NULL, content_id = ?, size = ?, mtime_ns = ?, "
                    "seen_at = ? WHERE id = ?",
                    (content_id, prepared.size, prepared.mtime_ns, now, job.photo_id),
                )
                committed.append(Committed(job.photo_id, content_id, "indexed", vector, prepared.similar))

        def after() -> None:
            if self.on_committed is not None and committed:
                self.on_committed(list(committed))

        writer.submit(work, after)

    # -- the run --------------------------------------------------------------------------------

    def known_contents(self, conn: sqlite3.Connection) -> frozenset[str]:
        """Fingerprints whose vector (and caption, if there is a captioner) are already stored."""
        sql = (
            "SELECT c.fingerprint FROM contents c JOIN embeddings e ON e.content_id = c.id "
            "AND e.model_id = ? AND e.kind = 'image' AND e.region = 0"
        )
        args: list[str] = [self.model.id]
        if self.model.captioner is not None:
            sql += " JOIN captions k ON k.content_id = c.id AND k.model_id = ?"
            args.append(self.model.captioner.id)
        return frozenset(r[0] for r in conn.execute(sql, args))

    def run(self, jobs: list[Job], known: frozenset[str] = frozenset()) -> IndexReport:
        report = IndexReport(total=len(jobs))
        started = time.perf_counter()
        last_report = 0.0
        writer = Writer(self.db_path)
        pending: deque[Job] = deque(jobs)
        in_flight: set[Future[_Prepared]] = set()
        ready: list[_Prepared] = []
        max_in_flight = max(2 * self.batch_size, 4 * self.workers)
        # Copies of one content in this run: the first is embedded, the others wait for its
        # outcome (None: embedded; else why not) and then reuse it or share its failure.
        claimed: set[str] = set()
        claim_lock = threading.Lock()
        outcome: dict[str, str | None] = {}
        copies: list[_Prepared] = []

        def claim(fingerprint: str) -> bool:
            with claim_lock:
                first = fingerprint not in claimed
                claimed.add(fingerprint)
                return first

        def emit(force: bool = False) -> None:
            nonlocal last_report
            now = time.perf_counter()
            if self.on_progress is None or (not force and now - last_report < self.progress_interval):
                return
            last_report = now
            done = report.embedded + report.reused + report.failed + report.skipped
            elapsed = now - started
            rate = done / elapsed if elapsed > 0 else 0.0
            eta = (report.total - done) / rate if rate > 0 else None
            self.on_progress(
                IndexProgress(done, report.total, report.embedded, report.reused, report.failed, rate, eta, elapsed)
            )

        def flush(batch: list[_Prepared]) -> None:
            copies.extend(p for p in batch if p.duplicate)
            batch = [p for p in batch if not p.duplicate]
            items: list[tuple[_Prepared, np.ndarray | None, str | None]] = []
            to_embed = [p for p in batch if p.tensor is not None]
            if to_embed:
                vectors, captions = self._infer(to_embed)
                items += [(p, v, c) for p, v, c in zip(to_embed, vectors, captions, strict=True)]
                report.embedded += len(to_embed)
                outcome.update((p.fingerprint, None) for p in to_embed)
            for p in batch:
                if p.tensor is not None:
                    continue
                if p.unstable:
                    report.skipped += 1
                    outcome.setdefault(p.fingerprint, "unstable")
                    continue
                if p.error is not None:
                    report.failed += 1
                    report.failures.append((p.job.path, p.error))
                    outcome.setdefault(p.fingerprint, p.error)
                else:
                    report.reused += 1
                items.append((p, None, None))
            if items:
                self._write(writer, items)

        def flush_copies() -> None:
            """The copies, once the photo each copies is written (the writer keeps the order)."""
            for p in copies:
                p.duplicate = False
                result = outcome.get(p.fingerprint, "unstable")
                if result == "unstable":  # gone or changing under us: pending for the next pass
                    p.unstable = True
                elif result is not None:
                    p.error = result  # the same bytes: the same failure
            for start in range(0, len(copies), self.batch_size):
                flush(copies[start : start + self.batch_size])

        try:
            with ThreadPoolExecutor(self.workers, thread_name_prefix="photoseek-decode") as pool:
                while pending or in_flight or ready:
                    if self.cancel.is_set():
                        report.cancelled = True
                        break
                    while pending and len(in_flight) < max_in_flight:
                        in_flight.add(pool.submit(self._prepare, pending.popleft(), known, claim))
                    if in_flight:
                        done, in_flight = wait(in_flight, timeout=0.1, return_when=FIRST_COMPLETED)
                        ready.extend(f.result() for f in done)
                    # Batch when full, or when nothing else is about to arrive.
                    if len(ready) >= self.batch_size or (ready and not in_flight and not pending):
                        flush(ready[: self.batch_size])
                        ready = ready[self.batch_size :]
                    emit()
                    writer.check()
                if not report.cancelled:
                    flush_copies()
                if report.cancelled:
                    for future in in_flight:
                        future.cancel()
                    # Photos already decoded are written only if they need no inference.
                    flush([p for p in ready if p.tensor is None])
                    finished = [f.result() for f in in_flight if f.done() and not f.cancelled()]
                    flush([p for p in finished if p.tensor is None])
                    report.skipped += report.total - (report.embedded + report.reused + report.failed + report.skipped)
        finally:
            writer.close()
        report.seconds = time.perf_counter() - started
        emit(force=True)
        return report
