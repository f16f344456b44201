"""Watching photo folders: watchdog events -> coalesced, settled change batches.

One watchdog observer thread watches every library folder (one recursive watch per folder).
Events are coalesced per path and handed out only once they have settled:

* nothing happened to the path for ``debounce`` seconds;
* the file is complete: inotify reported it closed after the last write (``closed`` events,
  Linux), or — the portable fallback — its size and modification time stayed the same for
  ``settle`` seconds. So a photo still being copied is indexed once, complete;
* it is not empty: an empty file, most often a placeholder that a download fills in a moment,
  waits ``open_settle`` seconds (then it is listed as what it is); and
* no process has it open (Linux reports every open and close, ``opened`` / ``closed`` /
  ``closed_no_write``): a copy that stalls for a while mid-file (a slow network share, a phone)
  is not taken for complete after ``settle`` seconds of quiet. A file kept open without a change
  for ``open_settle`` seconds is taken as it is (a program that holds files open, a lost event).

Folders reached through symbolic links (the walk follows them, inotify does not): the watcher
finds them with the walk itself (over folders only: same order, same rules for loops and second
paths) and reports every event under the path the walk gave the folder, the path the library
knows its photos by. A linked folder outside the watched folders gets a watch of its own on its real
folder (one per outermost such folder). Links are looked for when a folder is watched, and
again when a link under it is made, removed or moved or (``check_links``, every few seconds) a
linked folder is deleted, renamed away or made again: then the folder is walked whole. A link
to a folder that contains the watched folder itself is left to the periodic full walk.

A folder is handed out only when nothing under it is still settling, because the change is
applied by walking it. Renames and moves are handed out in order, straight away: they only move
rows and read nothing. Opening and closing without writing only count who has a file open (this
process reading a photo makes no change). A parent folder's "modified" and the events watchdog
synthesises for the contents of a moved folder are dropped: the batch that handles the folder
covers its contents.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch

from engine.ingest.scan import walk

log = logging.getLogger(__name__)


@dataclass
class ChangeBatch:
    """Settled changes, as absolute paths (str, as the OS names them)."""

    moves: list[tuple[str, str]] = field(default_factory=list)  # (from, to), in the order they happened
    paths: list[str] = field(default_factory=list)  # created, changed or deleted files and folders
    roots: set[str] = field(default_factory=set)  # watched folders that were themselves deleted or moved
    # Watched folders whose linked folders changed (a link made, removed, moved or left
    # dangling): walked whole, so that each folder is listed under the path a walk gives it.
    rewalk: set[str] = field(default_factory=set)
    # Destinations of moves that are still open for writing (a download renamed from ".part"
    # before it is closed): their rows move now, their contents are read once they are complete.
    writing: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.moves or self.paths or self.roots or self.rewalk)

    def __len__(self) -> int:
        return len(self.moves) + len(self.paths) + len(self.roots) + len(self.rewalk)


@dataclass
class _Pending:
    last_event: float
    closed: bool = False  # closed after its last write (inotify)
    signature: tuple[int, int] | None = None  # (size, mtime_ns) at the last look
    stable_since: float = 0.0


def _signature(path: str) -> tuple[int, int] | None:
    """(size, mtime) of a regular file; None for a folder or a missing path (nothing to settle)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return st.st_size, st.st_mtime_ns


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: FolderWatcher) -> None:
        self._watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        for src, dest in self._watcher.library_paths(os.fsdecode(event.src_path), os.fsdecode(event.dest_path)):
            self._watcher._on_event(event, src, dest)


def linked_folders(folder: str, dangling: list[str] | None = None) -> list[tuple[str, str]]:
    """(link path, real folder) of every folder under ``folder`` that the library's walk
    reaches through a symbolic link, in the walk's order (the walk itself, over folders only),
    but for links up to a folder that holds ``folder`` (left to the full walk). Links that lead
    nowhere now are added to ``dangling``."""
    report = walk(Path(folder), photos=False)
    if dangling is not None:
        dangling.extend(report.dangling)
    top = os.path.realpath(folder)
    return [(link, real) for link, real in report.links if not _inside(top, real)]


class FolderWatcher:
    """Watches folders and collects their changes until they settle (see the module docstring)."""

    _IGNORED: frozenset[str] = frozenset()  # event kinds this platform does not report (tests)

    def __init__(
        self,
        *,
        debounce: float = 0.5,
        settle: float = 2.0,
        open_settle: float = 60.0,
        observer: BaseObserver | None = None,
    ) -> None:
        self.debounce = debounce
        self.settle = settle
        self.open_settle = open_settle
        self._observer = observer or Observer()
        self._handler = _Handler(self)
        self._watches: dict[str, ObservedWatch] = {}
        # Folders reached through links, per watched folder: real folder -> the path the walk
        # gives it; and the watches of the real folders outside every watched folder.
        self._linked: dict[str, dict[str, str]] = {}
        self._link_watches: dict[str, ObservedWatch] = {}
        self._relink: set[str] = set()  # watched folders whose links to look for: see watch_links
        self._changed_links: set[str] = set()  # watched folders whose links changed: walked whole
        self._dangling: dict[str, list[str]] = {}  # per watched folder, links that lead nowhere now
        self._link_ids: dict[str, tuple[int, int] | None] = {}  # linked folder -> its (device, inode)
        self._lock = threading.Lock()
        self._pending: dict[str, _Pending] = {}
        self._moves: list[tuple[str, str]] = []
        self._roots: set[str] = set()
        self._open: dict[str, int] = {}  # path -> how many opens of it are not closed yet
        self._arrived = threading.Event()
        self._started = False
        self.closed_events_seen = False  # whether the platform reports "closed after writing"

    # -- watches -------------------------------------------------------------------------------

    def start(self) -> None:
        self._observer.start()
        self._started = True

    def stop(self) -> None:
        if self._started:
            self._observer.stop()
            self._observer.join(timeout=10)
            self._started = False

    def watch(self, folder: Path) -> bool:
        """Start watching ``folder`` (recursively). False if it cannot be watched now."""
        key = os.fspath(folder)
        if key in self._watches:
            return True
        try:
            self._watches[key] = self._observer.schedule(self._handler, key, recursive=True)
        except OSError as exc:  # gone, unreadable, or out of inotify watches
            log.warning("cannot watch %s: %s", folder, exc)
            return False
        log.info("watching %s", folder)
        with self._lock:  # its links are looked for on the sync thread (a walk of every folder)
            self._relink.add(key)
        return True

    def _view(self, folder: str, path: str) -> str | None:
        """The path under which the walk of the watched ``folder`` lists ``path`` (a real path,
        as inotify gives it), or None if it does not reach it."""
        linked = self._linked.get(folder, {})
        best = max((r for r in linked if _inside(path, r)), key=len, default=None)
        if best is not None:
            return linked[best] + path[len(best) :]
        return path if _inside(path, folder) else None

    def library_paths(self, src: str, dest: str = "") -> list[tuple[str, str]]:
        """An event's (src, dest) under every path the library knows them by: a folder linked
        from two watched folders is listed under both (a path outside them stays as it is)."""
        if not self._linked:
            return [(src, dest)]
        out: list[tuple[str, str]] = []
        for folder in list(self._watches):
            s = self._view(folder, src) if src else None
            d = self._view(folder, dest) if dest else None
            if (s or d) and (s or src, d or dest) not in out:
                out.append((s or src, d or dest))
        return out or [(src, dest)]

    def _find_links(self, folder: str) -> None:
        """Look for the linked folders under ``folder`` (see the module docstring); if they
        changed since the last look, the folder is to be walked whole."""
        dangling: list[str] = []
        linked = {real: link for link, real in linked_folders(folder, dangling)}
        self._dangling[folder] = dangling
        if folder in self._linked and linked != self._linked[folder]:
            with self._lock:
                self._changed_links.add(folder)
        self._linked[folder] = linked
        self._watch_linked()

    def check_links(self) -> None:
        """Look again at the folders whose links no longer lead where they led, or lead somewhere
        again (a linked folder deleted, renamed away or re-created: no event says so)."""
        replaced = set()
        for real in list(self._link_watches):
            if _identity(real) != self._link_ids.get(real):  # deleted, or deleted and made again
                self._unschedule(self._link_watches.pop(real))
                replaced.add(real)
        for folder, linked in list(self._linked.items()):
            moved = any(os.path.realpath(link) != real or not os.path.isdir(link) for real, link in linked.items())
            if moved or any(os.path.isdir(link) for link in self._dangling.get(folder, ())):
                with self._lock:
                    self._relink.add(folder)
            if any(_inside(real, r) for real in linked for r in replaced):
                with self._lock:
                    self._relink.add(folder)
                    self._changed_links.add(folder)

    def _watch_linked(self) -> None:
        """Watch the linked folders outside every watched folder, one watch per outermost."""
        wanted = {
            real
            for linked in self._linked.values()
            for real in linked
            if not any(_inside(real, w) for w in self._watches)
        }
        outermost = {r for r in wanted if not any(r != other and _inside(r, other) for other in wanted)}
        for real in set(self._link_watches) - outermost:
            self._unschedule(self._link_watches.pop(real))
        for real in outermost - set(self._link_watches):
            try:
                self._link_ids[real] = _identity(real)
                self._link_watches[real] = self._observer.schedule(self._handler, real, recursive=True)
            except OSError as exc:
                log.warning("cannot watch %s (a linked folder): %s", real, exc)
                continue
            log.info("watching %s (a linked folder)", real)

    def _unschedule(self, watch: ObservedWatch) -> None:
        with contextlib.suppress(KeyError, OSError):  # its emitter already stopped (the folder vanished)
            self._observer.unschedule(watch)

    def unwatch(self, folder: Path) -> None:
        key = os.fspath(folder)
        watch = self._watches.pop(key, None)
        if watch is not None:
            self._unschedule(watch)
            log.info("stopped watching %s", folder)
        self._dangling.pop(key, None)
        if self._linked.pop(key, None):
            self._watch_linked()

    @property
    def watched(self) -> set[Path]:
        return {Path(k) for k in self._watches}

    # -- events --------------------------------------------------------------------------------

    def _on_event(self, event: FileSystemEvent, src: str, dest: str) -> None:
        kind = event.event_type
        if event.is_synthetic or kind in self._IGNORED or (kind == "modified" and event.is_directory):
            return
        now = time.monotonic()
        with self._lock:
            if kind == "opened":
                self._open[src] = self._open.get(src, 0) + 1
                return
            if kind in ("closed", "closed_no_write"):
                self._closed(src)
                if kind == "closed_no_write":
                    if src not in self._pending:
                        return  # a read (this process's among them): no change
                    self._arrived.set()  # a waiting file may be complete now
                    return
            elif kind == "deleted":
                self._open.pop(src, None)
            if kind in ("created", "deleted", "moved") and any(self._is_link(p) for p in (src, dest)):
                # A link to a folder made, removed or moved: its folder looks for links again.
                self._relink.update(w for w in self._watches if _inside(src, w) or _inside(dest, w))
            if src in self._watches and kind in ("deleted", "moved"):
                self._roots.add(src)  # the watched folder itself went away (or its drive)
            elif kind == "moved":
                if src and dest:
                    self._moves.append((src, dest))
                    self._touch(dest, now)
                    # The name now holds the moved file: opens of the file it replaced (a viewer
                    # of the old photo) no longer count; the moved file's own do (a download
                    # renamed from ".part" while still open).
                    self._open.pop(dest, None)
                    if src in self._open:
                        self._open[dest] = self._open.pop(src)
                else:
                    self._touch(src or dest, now)
            elif kind == "closed":
                self.closed_events_seen = True
                self._touch(src, now).closed = True
            else:  # created, modified, deleted, attribute change
                self._touch(src, now).closed = False
        self._arrived.set()

    def _closed(self, path: str) -> None:
        count = self._open.pop(path, 0) - 1
        if count > 0:
            self._open[path] = count

    def _touch(self, path: str, now: float) -> _Pending:
        pending = self._pending.get(path)
        if pending is None:
            pending = self._pending[path] = _Pending(now)
        pending.last_event = now
        return pending

    def _is_link(self, path: str) -> bool:
        """A link to a folder now, or a path the library knew a linked folder by."""
        if not path:
            return False
        if os.path.islink(path) and os.path.isdir(path):
            return True
        return any(path in linked.values() for linked in list(self._linked.values()))

    def watch_links(self) -> None:
        """Look for the linked folders of folders just watched or whose links changed."""
        with self._lock:
            folders, self._relink = self._relink, set()
        for folder in folders:
            if folder in self._watches:
                self._find_links(folder)

    def wake(self) -> None:
        """Make a :meth:`wait` return now."""
        self._arrived.set()

    def wait(self, timeout: float) -> bool:
        """Wait until an event arrives (or ``timeout``); True if one did."""
        arrived = self._arrived.wait(timeout)
        self._arrived.clear()
        return arrived

    @property
    def busy(self) -> bool:
        """Changes are waiting to settle."""
        with self._lock:
            return bool(self._pending or self._moves or self._roots)

    def take(self, now: float | None = None) -> ChangeBatch:
        """The changes that have settled (removed from the waiting list)."""
        now = time.monotonic() if now is None else now
        batch = ChangeBatch()
        self.watch_links()
        with self._lock:
            batch.rewalk, self._changed_links = self._changed_links, set()
            batch.moves, self._moves = self._moves, []
            batch.writing = {d for _, d in batch.moves if self._open.get(d, 0) > 0}
            batch.roots, self._roots = self._roots, set()
            waiting: list[str] = []
            folders: list[str] = []
            for path, pending in self._pending.items():
                if now - pending.last_event < self.debounce:
                    waiting.append(path)
                    continue
                # Open somewhere and not closed after writing since the last change (a reader
                # that keeps it open, a viewer, does not hold up a finished copy).
                writing = self._open.get(path, 0) > 0 and not pending.closed
                signature = _signature(path)
                # An empty file is most often a placeholder that a download or a copy fills
                # in a moment (a browser makes one before it writes "name.part"): it waits as a
                # file being written does, and only then is listed (as an empty file) if it stays so.
                empty = signature is not None and signature[0] == 0
                if pending.closed and not empty:
                    signature = None  # closed after writing: complete
                if signature is None:
                    if pending.closed or not os.path.isdir(path):
                        batch.paths.append(path)
                    else:
                        folders.append(path)
                    continue
                if signature != pending.signature:
                    pending.signature, pending.stable_since = signature, now
                    waiting.append(path)
                elif now - pending.stable_since >= (self.open_settle if writing or empty else self.settle):
                    batch.paths.append(path)
                else:
                    waiting.append(path)
            # A folder is walked when applied, so it waits for every file under it to settle.
            batch.paths += [f for f in folders if not any(_inside(w, f) for w in waiting)]
            for path in batch.paths:
                del self._pending[path]
        return batch
