"""Keeping a library in step with its folders while the app runs: the folder watcher service.

A :class:`LibraryService` holds the library's writer lock for as long as it runs (a second
writing process is refused with :class:`~engine.errors.LibraryBusyError`), watches every online
folder, and runs one worker thread that

1. reconciles on start what changed while the app was closed (a full :meth:`Library.sync`:
   new, changed, deleted and moved files — moved ones keep their vectors through the content
   fingerprint, without running a model);
2. applies the watcher's settled change batches (renames and moves move rows in place) and
   indexes what became pending;
3. checks every few seconds which folders are reachable: an unplugged drive goes offline (its
   photos kept, nothing deleted, its watch dropped); when it returns it is watched and
   reconciled again. Folders added or removed through the library are picked up the same way;
4. collects garbage (contents no photo refers to) only after a quiet grace period, so a
   delete that arrives before the matching create never drops vectors about to be reused.

Listeners registered with :meth:`Library.subscribe` hear about every committed change. The GUI
and ``photoseek watch`` use this same class.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import PhotoseekError
from engine.ingest.pipeline import IndexProgress, IndexReport
from engine.ingest.watch import FolderWatcher
from engine.library import Library, Root, SyncReport
from engine.wording import counted

log = logging.getLogger(__name__)


@dataclass
class ServiceEvent:
    """What the service just did, for a status line or a log."""

    kind: str  # "reconciled", "applied", "indexed", "text", "offline", "online", "collected", "error", "stopped"
    message: str
    sync: SyncReport | None = None
    index: IndexReport | None = None
    roots: list[Path] = field(default_factory=list)


ServiceListener = Callable[[ServiceEvent], None]


class LibraryService:
    """Watches a library's folders and keeps its index up to date (see the module docstring)."""

    def __init__(
        self,
        library: Library,
        *,
        debounce: float = 0.5,
        settle: float = 2.0,
        open_settle: float = 60.0,
        gc_grace: float = 30.0,
        root_check_interval: float = 5.0,
        rescan_interval: float | None = 1800.0,
        retry_interval: float = 2.0,
        workers: int | None = None,
        on_event: ServiceListener | None = None,
        on_progress: Callable[[IndexProgress], None] | None = None,
        read_text: bool = True,
        text_delay: float = 3.0,
    ) -> None:
        self.library = library
        self.read_text = read_text
        self.text_delay = text_delay  # quiet seconds before text is read in photos just indexed
        self._text_due = False  # photos were indexed since text was last read
        self.watcher = FolderWatcher(debounce=debounce, settle=settle, open_settle=open_settle)
        self.gc_grace = gc_grace
        self.root_check_interval = root_check_interval
        # Network shares do not report remote changes to inotify: a periodic full reconcile
        # (a walk that only stats files) catches those.
        self.rescan_interval = rescan_interval
        self.retry_interval = retry_interval
        self.workers = workers
        self.on_event = on_event
        self.on_progress = on_progress
        self.error: PhotoseekError | None = None
        self._stop = threading.Event()
        self._cancel = threading.Event()
        self._idle_since: float | None = None
        self._known_online: set[Path] = set()  # folders reconciled since they were last online
        self._thread: threading.Thread | None = None
        self._garbage_since: float | None = None  # when contents may first have lost their last photo
        self._retry_at: float | None = None
        self._next_root_check = 0.0
        self._next_rescan = 0.0

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> LibraryService:
        """Take the writer lock (or raise LibraryBusyError), start watching, reconcile in the background."""
        self.library._writer_lock.acquire()
        try:
            self.watcher.start()
            for root in self.library.roots():
                if root.online:
                    self.watcher.watch(root.path)
        except BaseException:
            self.watcher.stop()
            self.library._writer_lock.release()
            raise
        self._thread = threading.Thread(target=self._run, name="photoseek-sync", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 60.0) -> None:
        """Stop watching; an indexing run in progress stops at its next batch (nothing is lost:
        what was not indexed is still pending for the next start)."""
        self._stop.set()
        self._cancel.set()
        self.watcher.wake()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> LibraryService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def refresh(self) -> None:
        """Look at the folders now (after adding or removing one) instead of at the next check."""
        self._next_root_check = 0.0
        self.watcher.wake()

    def wait_idle(self, timeout: float = 30.0, quiet: float = 0.3) -> bool:
        """Wait until every change seen so far is applied and indexed and nothing new arrived for
        ``quiet`` seconds (for tests and scripts). False on timeout or if the service stopped."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if not self.running:
                return False
            now = time.monotonic()
            since = self._idle_since
            if since is not None and now - since >= quiet and now - started >= quiet:
                return True
            time.sleep(0.05)
        return False

    # -- the worker ----------------------------------------------------------------------------

    def _emit(self, event: ServiceEvent) -> None:
        log.info("%s", event.message)
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:
                log.exception("service listener failed")

    def _run(self) -> None:
        try:
            self._reconcile()
            while not self._stop.is_set():
                self._step()
        except PhotoseekError as exc:  # disk full, library deleted or replaced, model broken
            self.error = exc
            log.error("stopped keeping the library up to date: %s", exc)
            self._emit(ServiceEvent("error", str(exc)))
        finally:
            self.watcher.stop()
            self.library._writer_lock.release()
            self._emit(ServiceEvent("stopped", "stopped watching"))

    def _index(self, jobs: list) -> IndexReport | None:
        if not jobs:
            return None
        report = self.library.index(
            jobs, cancel=self._cancel, workers=self.workers, on_progress=self.on_progress, collect_garbage=False
        )
        self._text_due = self._text_due or bool(report.embedded or report.reused)
        # Files still being written (or gone since listed) are left pending: look again soon.
        self._retry_at = time.monotonic() + self.retry_interval if report.skipped and not report.cancelled else None
        return report

    def _reconcile(self, roots: list[Root] | None = None) -> None:
        self.watcher.watch_links()  # watched before the walk, so that nothing falls between
        report = SyncReport()
        jobs = self.library.scan(roots, report=report)
        report.index = self._index(jobs)
        # A full scan sees every file at once, so what no photo refers to now is really gone
        # (offline folders keep their photos, so their contents stay).
        self._known_online |= {r.path for r in (roots or self.library.roots()) if r.online}
        if roots is None:
            self.library.collect_garbage()
            self._garbage_since = None
            self._next_rescan = time.monotonic() + self.rescan_interval if self.rescan_interval else float("inf")
        elif report.removed or report.changed:
            self._garbage_since = self._garbage_since or time.monotonic()
        index = report.index
        self._emit(
            ServiceEvent(
                "reconciled",
                f"{counted(report.found, 'photo')} found, {report.new} new, "
                f"{report.changed} changed, {report.removed} removed"
                + (f"; {index.embedded} indexed, {index.reused} reused, {index.failed} failed" if index else ""),
                sync=report,
                index=index,
            )
        )

    def _check_roots(self) -> None:
        self._next_root_check = time.monotonic() + self.root_check_interval
        self.watcher.check_links()
        for root in self.library.refresh_roots():
            if root.online:
                self._emit(ServiceEvent("online", f"{root.path} is back online", roots=[root.path]))
            else:
                self.watcher.unwatch(root.path)
                self._emit(ServiceEvent("offline", f"{root.path} is offline; its photos are kept", roots=[root.path]))
        roots = self.library.roots()
        wanted = {r.path for r in roots if r.online}
        self._known_online &= wanted
        for path in self.watcher.watched - wanted:  # removed from the library, or offline
            self.watcher.unwatch(path)
        for path in wanted - self.watcher.watched:
            self.watcher.watch(path)
        # Added, or back online: watched first (above), then reconciled, so nothing falls between.
        fresh = [r for r in roots if r.online and r.path not in self._known_online]
        if fresh:
            self._reconcile(fresh)

    def _step(self) -> None:
        now = time.monotonic()
        if now >= self._next_root_check:
            self._check_roots()
        batch = self.watcher.take()
        if batch or self.library.needs_rewalk:
            self._idle_since = None
            if batch.roots:
                self._check_roots()
            counts = self.library.apply_changes(batch)
            if counts.removed or counts.changed:
                self._garbage_since = now  # the grace runs from the latest removal
            index = self._index(self.library.pending_jobs())
            worked = index is not None and (index.embedded or index.reused or index.failed)
            if counts.new or counts.changed or counts.moved or counts.removed or worked:
                # (Events that changed nothing, a file saved again as it was, are not news.)
                message = f"{counts.new} new, {counts.changed} changed, {counts.moved} moved, {counts.removed} removed"
                if index is not None:
                    message += f"; {index.embedded} indexed, {index.reused} reused, {index.failed} failed"
                self._emit(ServiceEvent("applied", message, index=index))
            return
        if self._retry_at is not None and now >= self._retry_at:
            self._idle_since = None
            self._retry_at = None
            index = self._index(self.library.pending_jobs())
            if index is not None:
                self._emit(ServiceEvent("indexed", f"{index.embedded} indexed after settling", index=index))
            return
        if self._garbage_since is not None and now - self._garbage_since >= self.gc_grace and not self.watcher.busy:
            self.library.collect_garbage()
            self._garbage_since = None
            self._emit(ServiceEvent("collected", "removed vectors of photos that are gone"))
            return
        if now >= self._next_rescan:
            self._idle_since = None
            self._reconcile()
            return
        if (
            self.read_text
            and self._text_due
            and self._idle_since is not None
            and now - self._idle_since >= self.text_delay
            and not self.watcher.busy
        ):
            # Text in the photos that arrived ("a sign saying STOP"), once the folder is quiet:
            # reading is slow (a few photos a second) and new arrivals are indexed first.
            self._text_due = False
            found = self.library.read_text(cancel=self._cancel, workers=self.workers)
            if found:
                self._emit(ServiceEvent("text", f"text found in {counted(found, 'new photo')}"))
            return
        busy = self.watcher.busy or self._retry_at is not None
        if busy:
            self._idle_since = None
        elif self._idle_since is None:
            self._idle_since = now
        if self.watcher.wait(0.25 if busy else 1.0):
            self._idle_since = None
