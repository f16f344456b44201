"""Work that must not run on the GUI thread: indexing, searching and thumbnails.

Every task runs on a worker thread and reports through Qt signals, which Qt delivers to the
GUI thread as queued calls. Nothing here touches widgets.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from pathlib import Path

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal
from PySide6.QtGui import QImage

from engine import paths
from engine.errors import PhotoseekError
from engine.ingest.decode import decode_photo, read_photo_file
from engine.library import Library

log = logging.getLogger(__name__)

SEARCH_LIMIT = 200  # photos a search in the window shows, best first


class SyncTask(QObject):
    """Brings the library up to date with its folders on a thread of its own; cancellable."""

    progress = Signal(str, int, int, float, object)  # stage, done, total, photos/s, eta seconds
    model_progress = Signal(str, float)  # building the built-in model: message, fraction
    changed = Signal(list)  # content ids of photos committed (indexed or failed)
    finished = Signal(object)  # (SyncReport, status dict or None when cancelled), or an exception

    def __init__(self, library: Library) -> None:
        super().__init__()
        self.library = library
        self.cancel = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self.cancel.clear()
        self._thread = threading.Thread(target=self._run, name="photoseek-sync", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Ask the run to stop and wait for it; True when it has stopped."""
        self.cancel.set()
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def _run(self) -> None:
        try:

            def on_index(p: object) -> None:
                self.progress.emit("Indexing", p.done, p.total, p.rate, p.eta_s)  # type: ignore[attr-defined]

            def on_text(p: object) -> None:
                self.progress.emit("Reading text and faces in", p.done, p.total, p.rate, p.eta_s)  # type: ignore[attr-defined]

            report = self.library.sync(on_progress=on_index, on_text_progress=on_text, cancel=self.cancel)
            status = None if self.cancel.is_set() else self.library.status()
            self.finished.emit((report, status))
        except Exception as exc:  # reported in the window, never lost in a thread
            if isinstance(exc, PhotoseekError):  # a known condition, said in words (a read-only library)
                log.warning("sync stopped: %s", exc)
            else:
                log.exception("sync failed")
            self.finished.emit(exc)


class _SearchSignals(QObject):
    done = Signal(int, object)  # request number, SearchResults or an exception


class SearchTask(QRunnable):
    def __init__(self, library: Library, number: int, text: str, cutoff: float | None, signals: _SearchSignals):
        super().__init__()
        self.library, self.number, self.text, self.cutoff, self.signals = library, number, text, cutoff, signals

    def run(self) -> None:
        try:
            result: object = self.library.search(self.text, limit=SEARCH_LIMIT, cutoff=self.cutoff)
        except Exception as exc:
            result = exc
        self.signals.done.emit(self.number, result)


class Searcher(QObject):
    """Runs searches one at a time off the GUI thread; only the latest request's answer counts."""

    results = Signal(str, object)  # query text, SearchResults
    failed = Signal(str, str)

    def __init__(self, library: Library) -> None:
        super().__init__()
        self.library = library
        self.pool = QThreadPool()
        self.pool.setMaxThreadCount(1)
        self._signals = _SearchSignals()
        self._signals.done.connect(self._done)
        self._number = 0
        self._texts: dict[int, str] = {}

    def search(self, text: str, cutoff: float | None = None) -> None:
        self._number += 1
        self._texts = {self._number: text}
        self.pool.start(SearchTask(self.library, self._number, text, cutoff, self._signals))

    def _done(self, number: int, result: object) -> None:
        text = self._texts.get(number)
        if text is None:  # an older request: the user has typed on since
            return
        if isinstance(result, Exception):
            message = str(result) if isinstance(result, PhotoseekError) else f"search failed: {result}"
            self.failed.emit(text, message)
        else:
            self.results.emit(text, result)


def thumbnail_cache_dir() -> Path:
    return paths.cache_dir() / "thumbnails"


def _cache_file(path: Path, mtime_ns: int, size: int) -> Path:
    key = hashlib.sha1(f"{path}\0{mtime_ns}\0{size}".encode("utf-8", "surrogateescape")).hexdigest()
    return thumbnail_cache_dir() / key[:2] / f"{key}-{size}.jpg"


class _ThumbSignals(QObject):
    ready = Signal(str, int, QImage)  # path, size, image (null when it cannot be shown)


class ThumbnailTask(QRunnable):
    def __init__(self, path: Path, mtime_ns: int, size: int, signals: _ThumbSignals) -> None:
        super().__init__()
        self.path, self.mtime_ns, self.size, self.signals = path, mtime_ns, size, signals

    def run(self) -> None:
        image = QImage()
        cached = _cache_file(self.path, self.mtime_ns, self.size)
        try:
            if cached.is_file():
                image = QImage(str(cached))
            if image.isNull():
                data = read_photo_file(self.path, self.path.stat().st_size)
                decoded = decode_photo(data, min_side=self.size)  # orientation applied, reduced decode
                picture = decoded.image.copy()
                picture.thumbnail((self.size, self.size))
                picture = picture.convert("RGB")
                raw = picture.tobytes()
                image = QImage(
                    raw, picture.width, picture.height, 3 * picture.width, QImage.Format.Format_RGB888
                ).copy()
                cached.parent.mkdir(parents=True, exist_ok=True)
                tmp = cached.with_suffix(f".{threading.get_ident()}.tmp")
                picture.save(tmp, "JPEG", quality=85)
                tmp.replace(cached)
        except (OSError, PhotoseekError, ValueError) as exc:
            log.info("no thumbnail for %s: %s", self.path, exc)
        with contextlib.suppress(RuntimeError):  # the window closed meanwhile
            self.signals.ready.emit(str(self.path), self.size, image)


class Thumbnailer(QObject):
    """Decodes thumbnails on a small thread pool, caches them on disk and in memory."""

    ready = Signal(str, int, QImage)

    def __init__(self, threads: int = 2, memory_items: int = 2000) -> None:
        super().__init__()
        self.pool = QThreadPool()
        self.pool.setMaxThreadCount(threads)
        self._signals = _ThumbSignals()
        self._signals.ready.connect(self._ready)
        self._memory: dict[tuple[str, int], QImage] = {}
        self._asked: set[tuple[str, int]] = set()
        self._memory_items = memory_items
        self.started = time.perf_counter()

    def get(self, path: Path, mtime_ns: int, size: int) -> QImage | None:
        """The thumbnail if it is ready; otherwise it is requested and None returned."""
        key = (str(path), size)
        image = self._memory.get(key)
        if image is not None:
            return image
        if key not in self._asked:
            self._asked.add(key)
            self.pool.start(ThumbnailTask(path, mtime_ns, size, self._signals))
        return None

    def forget_pending(self) -> None:
        """Drop requests not started yet (the user scrolled away or searched)."""
        self.pool.clear()
        self._asked = set(self._memory)

    def _ready(self, path: str, size: int, image: QImage) -> None:
        key = (path, size)
        self._asked.discard(key)
        if len(self._memory) >= self._memory_items:
            self._memory.pop(next(iter(self._memory)))
        self._memory[key] = image
        self.ready.emit(path, size, image)

    def shutdown(self) -> None:
        self.pool.clear()
        self.pool.waitForDone(2000)
