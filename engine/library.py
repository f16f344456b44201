"""The library: the one object a GUI or the CLI holds.

It owns the database, the active model and the in-memory search index, and offers what a
person does with a photo library: add or remove folders, bring the index up to date, search,
find similar photos, read captions, see what went wrong.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine import paths
from engine.errors import (
    DecodeError,
    InsideRootError,
    LibraryBusyError,
    LibraryError,
    ModelError,
    ModelMissingError,
    ModelNotFoundError,
    QueryError,
    RootError,
)
from engine.ingest import changes
from engine.ingest.decode import decode_photo, read_photo_file
from engine.ingest.faces import faces_sentence
from engine.ingest.pipeline import SIMILAR_STORED, Committed, Indexer, IndexProgress, IndexReport, Job
from engine.ingest.scan import entry_for, from_db_name, is_hidden, to_db_name, walk
from engine.ingest.watch import ChangeBatch
from engine.models.builtin import BUILTIN_ID
from engine.models.builtin import Progress as BuildProgress
from engine.models.encoders import normalize
from engine.models.manifest import MANIFEST_NAME, load_manifest
from engine.models.registry import (
    LoadedModel,
    canonical,
    installed,
    is_named,
    load_captioner_bundle,
    load_model,
    resolve,
)
from engine.models.runtime import SessionFactory
from engine.search.index import QUANTIZE_ABOVE, FetchExact, VectorIndex
from engine.search.query import Query, parse
from engine.store.db import FileIdentity, connect, describe_error, open_raw, open_reader
from engine.store.db import set_aside as set_aside  # for callers that must not reach into the store
from engine.store.lock import WriterLock

if TYPE_CHECKING:
    from engine.ingest.textread import PassResult
    from engine.service import LibraryService

log = logging.getLogger(__name__)

#: How long the vectors, captions and text of a removed folder's photos are kept: adding the
#: folder back within this time (the window's Undo, or a folder removed by mistake) runs no model.
KEEP_REMOVED_SECONDS = 600.0

#: The meta key (with a folder's id after it) of what the folder's last walk could not read.
UNREADABLE = "unreadable:"

#: How often at most a reader beside another writing process reads the vectors again for that
#: process's photos (a read takes ~1 s at 100,000 photos).
RELOAD_SECONDS = 10.0

#: The vectors of one kind a search index holds: those of contents some photo shows (not those
#: kept a while after their folder was removed, nor a deleted file's that waits for its move).
_SEARCHED = (
    "FROM embeddings e WHERE model_id = ? AND kind = '{kind}' AND region = 0 "
    "AND EXISTS (SELECT 1 FROM photos p WHERE p.content_id = e.content_id)"
)
_SEARCHED_VECTORS = _SEARCHED.format(kind="image")
#: The photo-to-photo vectors of a model that has them.
_SEARCHED_SIMILAR = _SEARCHED.format(kind="similar")


@dataclass(frozen=True)
class Root:
    id: int
    path: Path
    online: bool
    has_photos: bool = False
    #: How many photos the folder holds: counted only when asked (``roots(counts=True)``), since
    #: counting reads every photo's row (~0.16 s at a million photos); None otherwise.
    photos: int | None = None
    #: The file system it was on at the last scan that found it online (:func:`folder_device`);
    #: None in a library upgraded from before schema 4 until such a scan.
    device: int | None = None


@dataclass(frozen=True)
class Photo:
    """A photo file in the library."""

    id: int
    path: Path
    root: Path
    size: int
    state: str  # pending, indexed or failed
    error: str | None = None
    caption: str | None = None
    width: int | None = None
    height: int | None = None
    taken_at: str | None = None
    content_id: int | None = None
    mtime_ns: int = 0


@dataclass(frozen=True)
class SearchHit:
    photo: Photo
    score: float


def _missing(path: Path) -> bool:
    """Whether the file is not there; one that cannot be looked at (a folder without permission,
    a network share not answering) may well be, and counts as there."""
    try:
        path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return True
    except OSError:
        return False
    return False


@dataclass
class SearchResults:
    query: str
    hits: list[SearchHit]
    message: str | None = None  # why the list is empty, or a note about it
    #: Photos left out for being no longer on disk (``search(..., on_disk=True)``).
    left_out: int = 0


@dataclass
class SyncReport:
    roots: int = 0
    offline: list[Path] = field(default_factory=list)
    found: int = 0
    new: int = 0
    changed: int = 0
    removed: int = 0
    unreadable: list[tuple[Path, str]] = field(default_factory=list)
    index: IndexReport | None = None
    text_found: int = 0
    faces_found: int = 0  # photos with faces found by this run's second pass
    #: Re-embedding for a model switch that was under way (see :meth:`Library.use_model`).
    reembed: IndexReport | None = None


@dataclass
class ModelSwitch:
    """A change of the library's model, re-embedding in the background.

    Search keeps using the previous model until the new model's vectors cover every photo of
    the library's online folders; then the library switches over by itself.
    """

    model: str
    cancel: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    report: IndexReport | None = None
    error: BaseException | None = None

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the re-embedding; True when it has finished (or was never needed)."""
        if self.thread is not None:
            self.thread.join(timeout)
            return not self.thread.is_alive()
        return True

    @property
    def done(self) -> bool:
        return self.thread is None or not self.thread.is_alive()


ChangeListener = Callable[[list[Committed]], None]


def _changed(counts: changes.ChangeCounts) -> list[Committed]:
    """What listeners hear of a walk or a watcher's batch: photos removed, moved, or found new
    or changed (pending: not indexed yet)."""
    return (
        [Committed(i, None, "removed", None) for i in counts.removed_ids]
        + [Committed(i, None, "moved", None) for i in counts.moved_ids]
        + [Committed(i, None, "pending", None) for i in counts.pending_ids]
    )


def _in_order(ids: list[int], found: list[int], vectors: np.ndarray, dim: int) -> np.ndarray:
    """``vectors`` (those of the ``found`` ids) in the order of ``ids``, zeros for one not found."""
    if found == ids:
        return vectors
    out = np.zeros((len(ids), dim), dtype=np.float32)
    at = {cid: n for n, cid in enumerate(found)}
    rows = [(n, at[cid]) for n, cid in enumerate(ids) if cid in at]
    if rows:
        out[[n for n, _ in rows]] = vectors[[m for _, m in rows]]
    return out


def _stored_chunks(
    conn: sqlite3.Connection, sql: str, model_id: str, dtype: type, dim: int, chunk: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The ids and float32 vectors of ``SELECT content_id, vector {sql}``, stored as ``dtype``,
    ``chunk`` rows at a time (one array per chunk, not per row)."""
    cursor = conn.execute("SELECT content_id, vector " + sql, (model_id,))
    while rows := cursor.fetchmany(chunk):
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        vectors: np.ndarray = np.frombuffer(b"".join(r[1] for r in rows), dtype=dtype).reshape(len(rows), dim)
        yield ids, vectors.astype(np.float32, copy=False)


def _with_found_in_photo(
    ids: list[int], vectors: np.ndarray, found: list[tuple[dict[int, np.ndarray], float]]
) -> np.ndarray:
    """``vectors`` (one row per id) with what the second pass found in each photo mixed in:
    for each ``(vectors by content id, weight)`` of ``found`` (the text read in the photo, a
    sentence about the people in it), the photo's found vector times the weight added to its
    vector, and the sum made unit length again, as every image vector is searched (the index as
    it loads, and the exact re-ranking)."""
    found = [(extra, weight) for extra, weight in found if weight > 0 and extra]
    rows = sorted({n for extra, _ in found for n, cid in enumerate(ids) if cid in extra})
    if not rows:
        return vectors
    mixed = vectors.copy()
    for extra, weight in found:
        hit = [n for n in rows if ids[n] in extra]
        if hit:
            mixed[hit] += weight * np.stack([extra[ids[n]] for n in hit])
    mixed[rows] = normalize(mixed[rows])
    return mixed


def is_damage(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite finding the library file damaged (not locked, full or read-only:
    those are its OperationalError); :func:`set_aside` and :func:`folders_of` help start anew."""
    return isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError)


def folders_of(db_path: Path | str) -> list[Path]:
    """The folders a library file names, read as far as it can be read (of a damaged library,
    to start a new one with the same folders); none where it cannot."""
    try:
        conn = open_raw(Path(db_path))
        try:
            rows = conn.execute("SELECT path FROM roots ORDER BY path").fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return []
    return [Path(from_db_name(row[0])) for row in rows]


def folder_device(path: Path) -> int:
    """The file system a folder is on (``st_dev``): another one once a drive mounted there is gone."""
    return os.stat(path).st_dev


def photo_folder(folder: Path | str) -> Path:
    """``folder`` as a library keeps it (absolute, links resolved), or :class:`RootError` saying
    why it cannot be one (missing, not a folder, unreadable)."""
    if not str(folder).strip():  # ("" would be the current folder, which nobody means by it)
        raise RootError("no folder given")
    path = Path(folder).expanduser()
    try:
        path = path.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise RootError(f"{folder}: no such folder") from exc
    if not path.is_dir():
        raise RootError(f"{path} is not a folder")
    if not os.access(path, os.R_OK | os.X_OK):
        raise RootError(f"{path}: permission denied")
    return path


class Library:
    """A Photoseek library: one SQLite file plus the model that indexes and searches it.

    The model is loaded (and the built-in one built) lazily, on the first call that needs it.
    Methods may be called from several threads; indexing and searching can run at once.
    """

    def __init__(
        self,
        db_path: Path | str | None = None,
        *,
        model: str | None = None,
        device: str = "auto",
        threads: int | None = None,
        models_root: Path | None = None,
        on_model_progress: BuildProgress | None = None,
    ) -> None:
        self.db_path = Path(db_path) if db_path else paths.default_db_path()
        self._conn = connect(self.db_path)
        self._lock = threading.RLock()
        self._model_name = model if model is not None else self._meta("model")
        self._pending_name = self._meta("model_pending")
        self._captioner_name = self._meta("captioner") or None
        self._pending: LoadedModel | None = None
        self._switch_lock = threading.Lock()  # one re-embedding run at a time
        self._switch: ModelSwitch | None = None  # the background re-embedding, if one runs
        # Roots that were missing when the watcher's changes for them came in (moved away and
        # back, a drive unplugged for a moment): walked whole once they are back.
        self._rewalk: set[int] = set()
        self._device = device
        self._threads = threads
        self._models_root = models_root
        self._on_model_progress = on_model_progress
        self._model: LoadedModel | None = None
        self._model_lock = threading.Lock()
        self._index: VectorIndex | None = None
        #: The photo-to-photo vectors of a model that has them (``like:`` alone), read on the
        #: first such search.
        self._similar_index: VectorIndex | None = None
        #: Libraries larger than this keep 4-bit vectors in memory and re-rank exactly.
        self.quantize_above = QUANTIZE_ABOVE
        self._index_lock = threading.Lock()
        self._people_cache: tuple[str, dict[int, np.ndarray]] | None = None
        # Commits of other processes seen so far (SQLite's data_version), and when the vectors
        # were last read again for them (see reload_if_changed).
        self._seen_version = self.data_version()
        self._version_checked = time.monotonic()
        self._listeners: list[ChangeListener] = []
        # One writing process per library (another one is refused), and one indexing run at a
        # time inside this process (a GUI sync and the folder watcher's worker take turns).
        self._writer_lock = WriterLock(self.db_path)
        self._identity = FileIdentity(self.db_path)
        self._index_mutex = threading.Lock()
        if model is not None and self._meta("model") is None:
            self._adopt(model)

    def _adopt(self, model: str) -> None:
        """A new library (no model recorded, no photos yet) keeps the model it is first opened
        with, so `photoseek index DIR --model M` followed by `photoseek search` uses M."""
        with self._lock:
            if self._conn.execute("SELECT 1 FROM photos LIMIT 1").fetchone() is not None:
                return
        folder = Path(model).expanduser()
        name = str(folder.resolve()) if (folder / MANIFEST_NAME).is_file() else model
        try:
            self._set_meta("model", name)
        except LibraryBusyError:  # another process writes this library: leave the choice to it
            return
        self._model_name = name

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        self._stop_switch()
        with self._lock:
            self._conn.close()
        self._writer_lock.release()

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Hold the library's writer lock (refusing a second writing process with
        :class:`~engine.errors.LibraryBusyError`) and make sure the file is still the one opened."""
        with self._writer_lock.hold():
            self._identity.check()
            try:
                yield
            except sqlite3.OperationalError as exc:  # a full disk, a read-only file: say which
                raise LibraryError(describe_error(exc, self.db_path)) from exc

    def _stop_switch(self) -> None:
        """Stop a background re-embedding (it resumes with the next sync or reembed)."""
        switch = self._switch
        if switch is not None and not switch.done:
            switch.cancel.set()
            switch.wait()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, key: str, value: str) -> None:
        with self._writing(), self._lock, self._conn:
            self._conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    # -- the model ---------------------------------------------------------------------------

    @property
    def model(self) -> LoadedModel:
        """The active model, loaded on first use (the built-in one is built if needed)."""
        if self._model is None:
            with self._model_lock:
                if self._model is None:
                    self._model = self._load(self._model_name)
        return self._model

    def _load(self, name: str | None) -> LoadedModel:
        try:
            return load_model(
                name,
                device=self._device,
                threads=self._threads,
                models_root=self._models_root,
                progress=self._on_model_progress,
                captioner=self._captioner_name,
            )
        except ModelNotFoundError as exc:  # removed since the library chose it: say how to go on
            if exc.name is not None and exc.name == self._captioner_name:
                raise ModelMissingError(
                    f"the library's captions come from the model {exc.name!r}, which is not installed now: "
                    "install it again (`photoseek models pull` or `models import`), or caption with the "
                    "model itself (`photoseek models use --captioner own`)",
                    exc.name,
                ) from exc
            # (Not a model asked for by name here, `--model`, which the message says as it is.)
            if exc.name is not None and exc.name == name == self._model_name == self._meta("model"):
                raise ModelMissingError(
                    f"the library uses the model {exc.name!r}, which is not installed now: install it again "
                    "(`photoseek models pull` or `models import`), or choose another (`photoseek models use "
                    "builtin`: its photos are then embedded again)",
                    exc.name,
                ) from exc
            raise

    @property
    def model_loaded(self) -> bool:
        return self._model is not None

    @property
    def model_name(self) -> str | None:
        """The name the active model was chosen by (None: the built-in model)."""
        return self._model_name

    @property
    def pending_model_name(self) -> str | None:
        """The model being switched to, while its vectors are still being computed."""
        return self._pending_name

    @property
    def captioner_name(self) -> str | None:
        """The captioner bundle chosen for this library (None: the model's own captioner)."""
        return self._captioner_name

    def models_in_use(self) -> set[str]:
        """Names of the bundles this library needs: its model (the built-in one where none was
        chosen), a model it is switching to, its captioner. Not to be removed."""
        names = (self.model_name or BUILTIN_ID, self.pending_model_name, self.captioner_name)
        # "builtin" (as `models use builtin` records it) is the built-in bundle by its id.
        return {canonical(name) for name in names if name}

    def uses_model(self, name: str) -> bool:
        """Whether ``name`` (an id, a label, a folder) names a bundle of :meth:`models_in_use`.
        Only installed bundles are looked at: resolving the name could build the built-in model."""
        in_use = self.models_in_use()
        name = canonical(name)
        bundle = next((m for m in installed(self._models_root) if is_named(m, name)), None)
        return name in in_use or (bundle is not None and any(is_named(bundle, n) for n in in_use))

    def _has_indexed_photos(self) -> bool:
        with self._lock:
            return self._conn.execute("SELECT 1 FROM photos WHERE state = 'indexed' LIMIT 1").fetchone() is not None

    def _activate(self, name: str | None, model: LoadedModel | None = None) -> None:
        with self._model_lock:
            self._model = model
            self._model_name = name
            self._pending = None
            self._pending_name = None
        with self._index_lock:
            self._index = None
            self._similar_index = None
        with self._lock, self._conn:
            self._conn.execute("DELETE FROM meta WHERE key = 'model_pending'")
            if name:
                self._conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('model', ?)", (name,))
            else:
                self._conn.execute("DELETE FROM meta WHERE key = 'model'")
        log.info("the library now searches with model %s", name or "built-in")

    def use_model(
        self,
        name: str | None,
        *,
        background: bool = True,
        on_progress: Callable[[IndexProgress], None] | None = None,
    ) -> ModelSwitch:
        """Make ``name`` the library's model (remembered).

        A library with indexed photos keeps searching with its current model while the new
        model embeds every photo (in a background thread unless ``background`` is False, in which
        case :meth:`reembed` or the next :meth:`sync` does the work); it switches over once the
        new model's vectors cover every photo. An empty library switches at once. Vectors of
        different models are never compared: each is stored under its model's ``id@version``.
        """
        folder = resolve(name, self._models_root, self._on_model_progress)
        manifest = load_manifest(folder)
        if manifest.kind != "joint-embedding":
            raise LibraryError(f"{manifest.id} is a {manifest.kind}; use it with use_captioner()")
        self._stop_switch()
        switch = ModelSwitch(manifest.label)
        if not self._has_indexed_photos():
            current: str | None = manifest.label  # (not loaded: it may be the built-in one, unbuilt)
        else:
            try:
                current = self.model.id
            except ModelNotFoundError:  # removed: nothing to search with meanwhile
                current = None
        if current in (None, manifest.label):
            # Nothing to re-embed first (an empty library, the model in use), or nothing to
            # search with meanwhile: the next sync embeds the photos that lack its vectors.
            self._activate(name)
            return switch
        with self._model_lock:
            self._pending_name = name or "builtin"
            self._pending = None
        self._set_meta("model_pending", name or "builtin")
        log.info("switching to model %s: embedding the library's photos first", manifest.label)
        if background:
            switch.thread = threading.Thread(
                target=self._run_switch, args=(switch, on_progress), name="photoseek-switch", daemon=True
            )
            self._switch = switch
            switch.thread.start()
        return switch

    def _run_switch(self, switch: ModelSwitch, on_progress: Callable[[IndexProgress], None] | None) -> None:
        try:
            switch.report = self.reembed(on_progress=on_progress, cancel=switch.cancel)
        except BaseException as exc:  # reported through the switch; the library stays usable
            switch.error = exc
            log.exception("re-embedding for model %s failed", switch.model)

    def pending_model(self) -> LoadedModel | None:
        """The model being switched to, loaded on first use. One that cannot be loaded (its
        files damaged or removed since it was chosen) ends the switch, said once: left pending,
        it failed every later sync."""
        with self._model_lock:
            name = self._pending_name
            if name is None or self._pending is not None:
                return self._pending
            try:
                self._pending = self._load(name)
                return self._pending
            except ModelError as exc:
                failed = exc
        raise self._end_switch(name, failed) from failed  # (outside the lock, which it takes)

    def _end_switch(self, name: str, exc: ModelError) -> ModelError:
        """Give up the switch to ``name``, which cannot be loaded or run; the error to raise."""
        with self._model_lock:
            if self._pending_name == name:
                self._pending_name, self._pending = None, None
        # (Not on a library that cannot be written: the next process says it again.)
        with contextlib.suppress(LibraryError, sqlite3.Error), self._writing(), self._lock, self._conn:
            self._conn.execute("DELETE FROM meta WHERE key = 'model_pending' AND value = ?", (name,))
        return ModelError(
            f"the switch to the model {name} stopped: it cannot be loaded ({exc}). The library keeps its "
            f"model; install {name} again, then `photoseek models use {name}`"
        )

    def _missing_jobs(self, model: LoadedModel) -> list[Job]:
        """Indexed photos of online folders that lack ``model``'s vector."""
        with self._lock:
            rows = self._conn.execute(
                """SELECT p.id, r.path, p.rel_path, p.size, p.mtime_ns FROM photos p
                   JOIN roots r ON r.id = p.root_id
                   WHERE r.online = 1 AND p.state = 'indexed' AND NOT EXISTS (
                       SELECT 1 FROM embeddings e WHERE e.content_id = p.content_id
                       AND e.model_id = ? AND e.kind = 'image' AND e.region = 0)
                   ORDER BY p.id""",
                (model.id,),
            ).fetchall()
        return [Job(r[0], Path(from_db_name(r[1])) / from_db_name(r[2]), r[3], r[4]) for r in rows]

    def switch_progress(self) -> dict[str, object] | None:
        """How far a model switch has come: the pending model and its coverage, or None."""
        pending = self.pending_model()
        if pending is None:
            return None
        with self._lock:
            total = self._conn.execute(
                "SELECT count(*) FROM photos p JOIN roots r ON r.id = p.root_id "
                "WHERE r.online = 1 AND p.state = 'indexed'"
            ).fetchone()[0]
        missing = len(self._missing_jobs(pending))
        return {"model": pending.id, "name": pending.manifest.name, "embedded": total - missing, "photos": total}

    def reembed(
        self,
        *,
        on_progress: Callable[[IndexProgress], None] | None = None,
        cancel: threading.Event | None = None,
        workers: int | None = None,
    ) -> IndexReport | None:
        """Embed the library's photos with the pending model; switch to it once all are covered.

        Returns None when no switch is under way. Safe to stop (``cancel``) and call again.
        """
        with self._switch_lock:
            name, pending = self._pending_name, self.pending_model()
            if pending is None or name is None:
                return None
            jobs = self._missing_jobs(pending)
            indexer = Indexer(self.db_path, pending, workers=workers, on_progress=on_progress, cancel=cancel)
            with self._lock:
                known = indexer.known_contents(self._conn)
            try:
                report = indexer.run(jobs, known)
            except ModelError as exc:  # its graphs do not load (damaged files of the right size)
                raise self._end_switch(name, exc) from exc
            if not report.cancelled and pending.manifest.search_setting("text_in_photo_weight", 0.0) > 0:
                self._embed_found_text(pending, cancel)
            self._record_device(pending)
            # Switch only if this is still the model asked for (use_model may have chosen another).
            if not report.cancelled and self._pending_name == name and not self._missing_jobs(pending):
                self._activate(name, pending)
            return report

    def _embed_found_text(self, model: LoadedModel, cancel: threading.Event | None) -> None:
        """Embed text already read in the photos with ``model`` (no photo is read again)."""
        from engine.ingest.textread import TextPass

        text_pass = TextPass(self.db_path, model, cancel=cancel)
        with self._lock:
            backlog = text_pass.unembedded(self._conn)
        if backlog:
            text_pass.run([], backlog)

    def use_captioner(self, name: str | None) -> None:
        """Caption photos with the captioner bundle ``name`` (None: the model's own captioner).

        Photos without a caption from it are captioned by the next :meth:`sync`; until then they
        show none.
        """
        if name:
            load_captioner_bundle(name, SessionFactory("cpu"), self._models_root)  # fails early if unusable
        self._stop_switch()  # a switch under way resumes with the new captioner
        with self._model_lock:
            self._captioner_name = name or None
            self._model = None
            self._pending = None
        with self._lock, self._conn:
            if name:
                self._conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('captioner', ?)", (name,))
            else:
                self._conn.execute("DELETE FROM meta WHERE key = 'captioner'")

    def _record_device(self, model: LoadedModel) -> None:
        """Remember where the last run's sessions really ran, for `status` in a later process."""
        report = model.sessions.report
        if report.active:
            info = {
                "model": model.id,
                "requested": report.requested,
                "tried": report.tried,
                "active": report.active,
                "warning": report.warning,
                "at": time.strftime("%Y-%m-%d %H:%M:%S"),
            }
            self._set_meta("device_report", json.dumps(info))

    # -- folders -----------------------------------------------------------------------------

    def roots(self, *, counts: bool = False) -> list[Root]:
        """The library's folders; with ``counts`` each one's number of photos as well."""
        count = "(SELECT count(*) FROM photos p WHERE p.root_id = r.id)" if counts else "NULL"
        with self._lock:
            rows = self._conn.execute(
                "SELECT r.id, r.path, r.online, EXISTS (SELECT 1 FROM photos p WHERE p.root_id = r.id), "
                f"{count}, r.device FROM roots r ORDER BY r.path"
            ).fetchall()
        return [Root(r[0], Path(from_db_name(r[1])), bool(r[2]), bool(r[3]), r[4], r[5]) for r in rows]

    def add_root(self, folder: Path | str) -> Root:
        """Add a photo folder. It is only ever read, never written to."""
        return self.add_roots([folder])[0]

    def add_roots(self, folders: Sequence[Path | str]) -> list[Root]:
        """Add photo folders: each is checked, against the library's folders and one another,
        before any is added, so that a command naming one that cannot be added adds none."""
        wanted = [photo_folder(folder) for folder in folders]
        for i, path in enumerate(wanted):
            for other in wanted[i + 1 :]:
                if other in path.parents or path in other.parents:
                    outer, inner = (path, other) if path in other.parents else (other, path)
                    raise RootError(f"{outer} contains {inner}: name only {outer}, whose photos include {inner}'s")
        # Looked up under the lock that the insert holds: the same folder added twice at once
        # (dropped twice on the window) is added once, not refused by the database.
        added: dict[Path, Root] = {}
        with self._writing(), self._lock, self._conn:
            roots = self.roots()
            for path in wanted:
                for root in roots:
                    if path == root.path:
                        added[path] = root
                    elif root.path in path.parents:
                        raise InsideRootError(path, root.path)
                    elif path in root.path.parents:
                        raise RootError(
                            f"{path} contains {root.path}, which is already in the library; remove that folder first"
                        )
            for path in wanted:
                if path in added:
                    continue
                device = folder_device(path)
                cur = self._conn.execute(
                    "INSERT INTO roots (path, added_at, online, device) VALUES (?, ?, 1, ?)",
                    (to_db_name(str(path)), time.time(), device),
                )
                added[path] = Root(int(cur.lastrowid or 0), path, True, False, 0, device)
                log.info("added folder %s", path)
        return [added[path] for path in wanted]

    def find_root(self, folder: Path | str) -> Root | None:
        """The library's folder named by ``folder`` (as added, or the same folder by another
        path), or None."""
        target = Path(folder).expanduser()
        for root in self.roots():
            if root.path == target or root.path == target.resolve():
                return root
        return None

    def remove_root(self, folder: Path | str) -> int:
        """Forget a folder and its photos (the files are not touched). Returns how many photos
        (files that could not be read as one not counted).

        Their vectors, captions and text stay for :data:`KEEP_REMOVED_SECONDS` (then go at the
        next full check), so that adding the folder back soon reads its files but runs no model."""
        root = self.find_root(folder)
        if root is None:
            raise RootError(f"{folder} is not a folder of this library")
        with self._writing(), self._lock, self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO kept_contents (content_id, until) SELECT DISTINCT content_id, ? "
                "FROM photos WHERE root_id = ? AND content_id IS NOT NULL",
                (time.time() + KEEP_REMOVED_SECONDS, root.id),
            )
            rows = self._conn.execute("SELECT id, state FROM photos WHERE root_id = ?", (root.id,)).fetchall()
            ids = [r[0] for r in rows]
            self._conn.execute("DELETE FROM photos WHERE root_id = ?", (root.id,))
            self._conn.execute("DELETE FROM roots WHERE id = ?", (root.id,))
            self._conn.execute("DELETE FROM meta WHERE key = ?", (f"{UNREADABLE}{root.id}",))
            self._collect_garbage(self._conn)
        self.reload_index()
        self._notify([Committed(i, None, "removed", None) for i in ids])
        return sum(state != "failed" for _, state in rows)

    # -- keeping up to date ------------------------------------------------------------------

    def subscribe(self, listener: ChangeListener) -> None:
        """Call ``listener`` (on a background thread) with photos whose state changed."""
        self._listeners.append(listener)

    def _notify(self, changes: list[Committed]) -> None:
        if not changes:
            return
        for listener in list(self._listeners):
            try:
                listener(changes)
            except Exception:
                log.exception("change listener failed")

    def _root_is_online(self, root: Root) -> bool:
        try:
            if not root.path.is_dir():
                return False
            if root.has_photos:
                with os.scandir(root.path) as entries:  # closed now, not when collected
                    if next(entries, None) is None:
                        # Empty where photos used to be: a mount point whose drive is gone (the
                        # folder is on another file system now) is offline; a folder emptied on
                        # purpose, where it was, is not. Not known where: offline, to be safe.
                        return root.device is not None and folder_device(root.path) == root.device
        except OSError:
            return False
        return True

    def scan(self, roots: list[Root] | None = None, report: SyncReport | None = None) -> list[Job]:
        """Compare the folders with the library: record new, changed and deleted files and
        return the photos that need indexing (new, changed, or missing the active model's vectors)."""
        with self._writing():
            return self._scan(roots, report or SyncReport())

    def _scan(self, roots: list[Root] | None, report: SyncReport) -> list[Job]:
        roots = self.roots() if roots is None else roots
        report.roots += len(roots)
        now = time.time()
        for root in roots:
            online = self._root_is_online(root)
            device = None
            if online:
                with contextlib.suppress(OSError):  # gone this very moment: the next scan sees it
                    device = folder_device(root.path)
            with self._lock, self._conn:
                self._conn.execute(
                    "UPDATE roots SET online = ?, device = coalesce(?, device) WHERE id = ?",
                    (int(online), device, root.id),
                )
            if not online:
                log.warning("folder %s is offline (missing or empty); its photos are kept", root.path)
                report.offline.append(root.path)
                continue
            walked = walk(root.path)
            report.found += len(walked.files)
            report.unreadable += [(root.path / from_db_name(rel), why) for rel, why in walked.problems]
            with self._lock, self._conn:
                # Files under an unreadable subfolder are not "deleted": they are kept.
                counts = changes.record_walk(self._conn, root.id, walked, now)
                self._conn.execute("UPDATE roots SET last_sync = ? WHERE id = ?", (now, root.id))
                # What the walk could not read (a folder without permission), until a walk can:
                # listed with the photos that failed (status, the window's Problems).
                key = f"{UNREADABLE}{root.id}"
                if walked.problems:
                    self._conn.execute(
                        "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(walked.problems))
                    )
                else:
                    self._conn.execute("DELETE FROM meta WHERE key = ?", (key,))
            report.new += counts.new
            report.changed += counts.changed
            report.removed += counts.removed
            # Before the model is loaded (or built): the window shows the photos found meanwhile.
            self._notify(_changed(counts))
        return self._pending_jobs([r.id for r in roots])

    def _pending_jobs(self, root_ids: list[int]) -> list[Job]:
        if not root_ids:
            return []
        model_id = self.model.id
        marks = ",".join("?" * len(root_ids))
        with self._lock:
            captioner_id = self._captioner_id()
            rows = self._conn.execute(
                f"""SELECT p.id, r.path, p.rel_path, p.size, p.mtime_ns FROM photos p
                    JOIN roots r ON r.id = p.root_id
                    WHERE r.online = 1 AND p.root_id IN ({marks}) AND (
                        p.state = 'pending' OR (p.state = 'indexed' AND (NOT EXISTS (
                            SELECT 1 FROM embeddings e WHERE e.content_id = p.content_id
                            AND e.model_id = ? AND e.kind = 'image' AND e.region = 0)
                        OR (? != '' AND NOT EXISTS (
                            SELECT 1 FROM captions k WHERE k.content_id = p.content_id AND k.model_id = ?)))))
                    ORDER BY p.id""",
                [*root_ids, model_id, captioner_id, captioner_id],
            ).fetchall()
        return [Job(r[0], Path(from_db_name(r[1])) / from_db_name(r[2]), r[3], r[4]) for r in rows]

    def index(
        self,
        jobs: list[Job],
        *,
        on_progress: Callable[[IndexProgress], None] | None = None,
        cancel: threading.Event | None = None,
        workers: int | None = None,
        batch_size: int = 16,
        collect_garbage: bool = True,
    ) -> IndexReport:
        """Decode, embed and caption ``jobs`` (see :meth:`scan`).

        ``collect_garbage=False`` keeps contents that lost their last photo (the folder watcher
        collects them after a grace period, so a move seen as delete + create reuses them)."""
        with self._writing(), self._index_mutex:
            return self._index_jobs(jobs, on_progress, cancel, workers, batch_size, collect_garbage)

    def _index_jobs(
        self,
        jobs: list[Job],
        on_progress: Callable[[IndexProgress], None] | None,
        cancel: threading.Event | None,
        workers: int | None,
        batch_size: int,
        collect_garbage: bool,
    ) -> IndexReport:
        model = self.model
        indexer = Indexer(
            self.db_path,
            model,
            workers=workers,
            batch_size=batch_size,
            on_progress=on_progress,
            on_committed=self._on_committed,
            cancel=cancel,
        )
        with self._lock:
            known = indexer.known_contents(self._conn)
        report = indexer.run(jobs, known)
        if collect_garbage:
            with self._lock, self._conn:
                self._collect_garbage(self._conn)
        self._record_device(model)
        return report

    def sync(
        self,
        *,
        on_progress: Callable[[IndexProgress], None] | None = None,
        on_text_progress: Callable[[IndexProgress], None] | None = None,
        cancel: threading.Event | None = None,
        workers: int | None = None,
        read_text: bool = True,
    ) -> SyncReport:
        """Bring the whole library up to date with its folders: find changes, index the photos
        that need it, then (``read_text``) read text in the photos that were not read yet."""
        report = SyncReport()
        with self._writing():
            jobs = self.scan(report=report)
            report.index = self.index(jobs, on_progress=on_progress, cancel=cancel, workers=workers)
            stopped = report.index.cancelled or bool(cancel and cancel.is_set())
            if read_text and not stopped:
                found = self._second_pass(on_progress=on_text_progress, cancel=cancel, workers=workers)
                report.text_found, report.faces_found = len(found.with_text), len(found.with_faces)
            if self._pending_name is not None and not stopped:
                report.reembed = self.reembed(on_progress=on_progress, cancel=cancel, workers=workers)
        return report

    def read_text(
        self,
        *,
        on_progress: Callable[[IndexProgress], None] | None = None,
        cancel: threading.Event | None = None,
        workers: int | None = None,
    ) -> int:
        """The second pass: read text in indexed photos not read yet, embed found text with the
        active model, and find faces in photos not looked at yet. Returns how many photos got
        text."""
        return len(self._second_pass(on_progress=on_progress, cancel=cancel, workers=workers).with_text)

    def _second_pass(
        self,
        *,
        on_progress: Callable[[IndexProgress], None] | None = None,
        cancel: threading.Event | None = None,
        workers: int | None = None,
    ) -> PassResult:
        from engine.ingest.textread import PassResult, TextPass

        text_pass = TextPass(self.db_path, self.model, workers=workers, on_progress=on_progress, cancel=cancel)
        with self._lock:
            jobs = text_pass.pending(self._conn)
            backlog = text_pass.unembedded(self._conn)
        if not jobs and not backlog:
            return PassResult([], [])
        found = text_pass.run(jobs, backlog)
        with self._index_lock:
            index = self._index
        if index is not None and found.changed:
            self._add_to_index(index, found.changed)
        return found

    # -- live sync: the folder watcher's side (see engine/service.py) ----------------------------

    def watch(self, **options: Any) -> LibraryService:
        """Start keeping this library in step with its folders in the background (a started
        :class:`engine.service.LibraryService`; call ``stop()`` on it). Raises
        :class:`~engine.errors.LibraryBusyError` if another process is writing to the library."""
        from engine.service import LibraryService

        return LibraryService(self, **options).start()

    def collect_garbage(self) -> None:
        """Delete contents (vectors, captions) that no photo refers to any more."""
        with self._writing(), self._lock, self._conn:
            self._collect_garbage(self._conn)

    def pending_jobs(self, roots: list[Root] | None = None) -> list[Job]:
        """Photos of online folders that still need indexing (new, changed, unstable last time)."""
        roots = self.roots() if roots is None else roots
        return self._pending_jobs([r.id for r in roots if r.online])

    def refresh_roots(self) -> list[Root]:
        """Check which folders are reachable; record it and return the folders whose state changed
        (an unplugged drive goes offline, its photos kept; a returning one comes back online)."""
        changed: list[Root] = []
        for root in self.roots():
            online = self._root_is_online(root)
            if online != root.online:
                with self._writing(), self._lock, self._conn:
                    self._conn.execute("UPDATE roots SET online = ? WHERE id = ?", (int(online), root.id))
                log.warning("folder %s is %s", root.path, "back online" if online else "offline; its photos are kept")
                changed.append(dataclasses.replace(root, online=online))
        return changed

    def _locate(self, path: str, roots: list[Root]) -> tuple[Root, str] | None:
        """The online library folder holding ``path`` and the stored relative path, or None
        (outside the library, hidden, or in an offline folder)."""
        for root in roots:
            base = os.fspath(root.path)
            if path.startswith(base.rstrip(os.sep) + os.sep):
                rel = os.path.relpath(path, base)
                if not root.online or is_hidden(rel):
                    return None
                return root, to_db_name(rel)
        return None

    @property
    def needs_rewalk(self) -> bool:
        """Whether a folder whose changes were put off while it was missing is back."""
        if not self._rewalk:
            return False
        # Asked on every turn of the watcher's loop while a folder stays away: the paths only,
        # not roots(), which counts every folder's photos.
        marks = ",".join("?" * len(self._rewalk))
        with self._lock:
            rows = self._conn.execute(f"SELECT path FROM roots WHERE id IN ({marks})", tuple(self._rewalk)).fetchall()
        return any(Path(from_db_name(r[0])).is_dir() for r in rows)

    def apply_changes(self, batch: ChangeBatch) -> changes.ChangeCounts:
        """Record a settled batch of folder changes (from :class:`engine.ingest.watch.FolderWatcher`).

        Renames and moves inside the library move the rows (ids, state, vectors and captions
        kept, nothing read); new and changed files become pending; deleted ones are forgotten.
        Contents that lose their last photo are left for :meth:`collect_garbage`.
        """
        counts = changes.ChangeCounts()
        now = time.time()
        with self._writing():
            if batch.roots:
                self.refresh_roots()
            roots = self.roots()
            present = {r.id for r in roots if r.path.is_dir()}
            self._rewalk |= {r.id for r in roots if str(r.path) in batch.rewalk}
            for root in roots:
                if root.id in self._rewalk and root.id in present:
                    self._rewalk.discard(root.id)
                    walked = walk(root.path)
                    with self._lock, self._conn:
                        counts.add(changes.record_walk(self._conn, root.id, walked, now))
            touched: list[str] = []
            with self._lock, self._conn:
                for src, dest in batch.moves:
                    where_from, where_to = self._locate(src, roots), self._locate(dest, roots)
                    missing = {w[0].id for w in (where_from, where_to) if w and w[0].id not in present}
                    if missing:  # as below: walked once the folder is back
                        self._rewalk |= missing
                        continue
                    if where_from and where_to:
                        step = changes.move(self._conn, where_from[0].id, where_from[1], where_to[0].id, where_to[1])
                        counts.add(step)
                    ends = ((src, where_from), (dest, where_to))
                    touched += [p for p, where in ends if where and p not in batch.writing]
            for path in dict.fromkeys(touched + batch.paths):
                where = self._locate(path, roots)
                if where is None:
                    continue
                root, rel = where
                if root.id not in present:
                    # The folder itself is not there now, so its files are not either: nothing
                    # is forgotten. (Its events may name it by the path it had before a move.)
                    self._rewalk.add(root.id)
                    continue
                if os.path.isdir(path):
                    walked = walk(root.path, Path(path))
                    with self._lock, self._conn:
                        counts.add(changes.record_walk(self._conn, root.id, walked, now, under=rel))
                else:
                    entry = entry_for(root.path, Path(path))
                    with self._lock, self._conn:
                        counts.add(changes.record_file(self._conn, root.id, rel, entry, now))
        self._notify(_changed(counts))
        return counts

    def _on_committed(self, changes: list[Committed]) -> None:
        with self._index_lock:
            index = self._index
            alike = self._similar_index
        if index is not None:
            self._join(index, changes, lambda c: c.vector, self._vectors_of)
        if alike is not None:
            # As stored, so that a search scores them as it will after a reload.
            def similar(c: Committed) -> np.ndarray | None:
                return None if c.similar is None else c.similar.astype(SIMILAR_STORED).astype(np.float32)

            self._join(alike, changes, similar, self._similar_vectors)
        self._notify(changes)

    def _join(
        self,
        index: VectorIndex,
        changes: list[Committed],
        computed: Callable[[Committed], np.ndarray | None],
        stored: Callable[[list[int]], tuple[list[int], np.ndarray]],
    ) -> None:
        """Committed photos join ``index``: by the vector just computed, or (content met before)
        by the one ``stored`` reads."""
        fresh: list[tuple[int, np.ndarray]] = []
        known: list[int] = []
        for c in changes:
            if c.content_id is not None:
                vector = computed(c)
                if vector is None:
                    known.append(c.content_id)
                else:
                    fresh.append((c.content_id, vector))
        if fresh:
            index.add(np.asarray([i for i, _ in fresh], dtype=np.int64), np.stack([v for _, v in fresh]))
        if known:
            self._add_to_index(index, known, stored)

    @staticmethod
    def _collect_garbage(conn: sqlite3.Connection) -> None:
        """Delete contents no photo refers to any more (and their vectors and captions), except
        those of a recently removed folder."""
        conn.execute("DELETE FROM kept_contents WHERE until <= ?", (time.time(),))
        orphans = (
            "SELECT id FROM contents WHERE id NOT IN (SELECT content_id FROM photos WHERE content_id IS NOT NULL) "
            "AND id NOT IN (SELECT content_id FROM kept_contents)"
        )
        for table in ("embeddings", "captions", "photo_text", "photo_faces"):
            conn.execute(f"DELETE FROM {table} WHERE content_id IN ({orphans})")
        conn.execute(f"DELETE FROM contents WHERE id IN ({orphans})")

    # -- reading -----------------------------------------------------------------------------

    _PHOTO_SELECT = """
        SELECT p.id, r.path, p.rel_path, p.size, p.state, p.error, k.text, c.width, c.height,
               c.taken_at, p.content_id, p.mtime_ns, t.text, f.faces
        FROM photos p JOIN roots r ON r.id = p.root_id
        LEFT JOIN contents c ON c.id = p.content_id
        LEFT JOIN captions k ON k.content_id = p.content_id AND k.model_id = ?
        LEFT JOIN photo_text t ON t.content_id = p.content_id
        LEFT JOIN photo_faces f ON f.content_id = p.content_id
    """

    def _captioner_id(self) -> str:
        """The captioner whose captions photos are listed with. Listing never loads the model:
        the window lists photos while the model is loaded, or on a first start built (about
        twenty seconds), in the background. Until then, the captioner of the caption written
        last. Call with ``_lock`` held."""
        model = self._model
        if model is not None:
            return model.captioner.id if model.captioner else ""
        row = self._conn.execute("SELECT model_id FROM captions ORDER BY rowid DESC LIMIT 1").fetchone()
        return str(row[0]) if row else ""

    @staticmethod
    def _photo(row: tuple) -> Photo:
        root = Path(from_db_name(row[1]))
        caption = row[6]
        if caption and row[13]:
            caption = f"{caption} {faces_sentence(row[13])}"
        if caption and row[12]:
            caption = f'{caption} Text in the photo: "{row[12]}".'
        return Photo(
            id=row[0],
            path=root / from_db_name(row[2]),
            root=root,
            size=row[3],
            state=row[4],
            error=row[5],
            caption=caption,
            width=row[7],
            height=row[8],
            taken_at=row[9],
            content_id=row[10],
            mtime_ns=row[11],
        )

    def photos(self, offset: int = 0, limit: int = 1000, *, order: str = "taken") -> list[Photo]:
        """Photos in a stable order (date taken, then path) for browsing."""
        order_by = {
            "taken": "coalesce(c.taken_at, '9999'), r.path, p.rel_path",
            "path": "r.path, p.rel_path",
            "id": "p.id",
        }[order]
        with self._lock:
            rows = self._conn.execute(
                self._PHOTO_SELECT + f" ORDER BY {order_by} LIMIT ? OFFSET ?",
                (self._captioner_id(), limit, offset),
            ).fetchall()
        return [self._photo(r) for r in rows]

    def photo_count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM photos").fetchone()[0])

    def photo(self, path_or_id: Path | str | int) -> Photo | None:
        """One photo by id or by path (absolute, or relative to a library folder)."""
        with self._lock:
            if isinstance(path_or_id, int):
                row = self._conn.execute(
                    self._PHOTO_SELECT + " WHERE p.id = ?", (self._captioner_id(), path_or_id)
                ).fetchone()
                return self._photo(row) if row else None
            path = Path(path_or_id).expanduser()
            local = path if path.is_absolute() else Path.cwd() / path
            candidates = [local]
            with contextlib.suppress(OSError, RuntimeError):  # RuntimeError: a symlink loop
                candidates.append(local.resolve())
            for root in self.roots():
                for candidate in candidates:
                    if root.path == candidate or root.path in candidate.parents:
                        rel = to_db_name(str(candidate.relative_to(root.path)))
                        row = self._conn.execute(
                            self._PHOTO_SELECT + " WHERE p.root_id = ? AND p.rel_path = ?",
                            (self._captioner_id(), root.id, rel),
                        ).fetchone()
                        if row:
                            return self._photo(row)
            if not path.is_absolute() and not os.path.lexists(local):
                # Not a file here: a path relative to a library folder.
                rel = to_db_name(str(path))
                row = self._conn.execute(
                    self._PHOTO_SELECT + " WHERE p.rel_path = ? ORDER BY p.id LIMIT 1", (self._captioner_id(), rel)
                ).fetchone()
                if row:
                    return self._photo(row)
        return None

    def unreadable(self) -> list[tuple[Path, str]]:
        """What the last full walk of each folder could not read (a subfolder without permission, a
        file that cannot be looked at), with the reason: its photos are not in the library (those
        already in it are kept) until it can be read."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT r.path, m.value FROM roots r JOIN meta m ON m.key = ? || r.id ORDER BY r.path", (UNREADABLE,)
            ).fetchall()
        found = [(Path(from_db_name(root)), json.loads(value)) for root, value in rows]
        return [(folder / from_db_name(rel), why) for folder, problems in found for rel, why in problems]

    def problems(self) -> list[Photo]:
        """Photos that could not be indexed, with the reason."""
        with self._lock:
            rows = self._conn.execute(
                self._PHOTO_SELECT + " WHERE p.state = 'failed' ORDER BY r.path, p.rel_path", (self._captioner_id(),)
            ).fetchall()
        return [self._photo(r) for r in rows]

    def status(self) -> dict[str, object]:
        """Counts, the model and where it runs (loads the model)."""
        model = self.model
        with self._lock:
            total = self._conn.execute("SELECT count(*) FROM photos").fetchone()[0]
            failed = self._conn.execute("SELECT count(*) FROM photos WHERE state = 'failed'").fetchone()[0]
            indexed = self._conn.execute(
                """SELECT count(*) FROM photos p WHERE p.state = 'indexed' AND EXISTS (
                   SELECT 1 FROM embeddings e WHERE e.content_id = p.content_id AND e.model_id = ?
                   AND e.kind = 'image' AND e.region = 0)""",
                (model.id,),
            ).fetchone()[0]
            # The second pass (text and faces) has not looked at these yet: stopped, or skipped.
            unread = self._conn.execute(
                """SELECT count(DISTINCT p.content_id) FROM photos p WHERE p.state = 'indexed'
                   AND NOT EXISTS (SELECT 1 FROM photo_text t WHERE t.content_id = p.content_id)"""
            ).fetchone()[0]
        return {
            "library": str(self.db_path.absolute()),
            "photos": total,
            "indexed": indexed,
            "failed": failed,
            "pending": total - indexed - failed,
            "text_pending": unread,
            "roots": [{"path": str(r.path), "online": r.online, "photos": r.photos} for r in self.roots(counts=True)],
            "switching_to": self.switch_progress(),
            **self.model_status(),
            "failures": [{"path": str(p.path), "reason": p.error} for p in self.problems()],
            "unreadable": [{"path": str(path), "reason": why} for path, why in self.unreadable()],
        }

    def model_status(self) -> dict[str, object]:
        """The model, its captioner and where they run, without the counts of :meth:`status`
        (loads the model)."""
        model = self.model
        report = model.sessions.report
        last_run = self._meta("device_report")
        return {
            "model": {"id": model.manifest.id, "version": model.manifest.version, "name": model.manifest.name},
            "captioner": model.captioner.id if model.captioner else None,
            "device": {
                "requested": report.requested,
                "providers": report.active or report.tried,
                "started": bool(report.active),
                "on_gpu": report.on_gpu,
                "warning": report.warning,
                "last_run": json.loads(last_run) if last_run else None,
            },
        }

    # -- search ------------------------------------------------------------------------------

    def _fetch_exact(self, content_ids: np.ndarray) -> np.ndarray:
        """Float32 vectors of ``content_ids``, in order, zeros for one that has none: the exact
        re-ranking of every quantized search."""
        ids = [int(i) for i in content_ids]
        return _in_order(ids, *self._vectors_of(ids), self.model.manifest.embedding_size)

    def _fetch_similar(self, content_ids: np.ndarray, dim: int) -> np.ndarray:
        """The same for the photo-to-photo vectors (``dim`` numbers each)."""
        ids = [int(i) for i in content_ids]
        return _in_order(ids, *self._similar_vectors(ids), dim)

    def _vectors_of(self, content_ids: list[int]) -> tuple[list[int], np.ndarray]:
        """Those of ``content_ids`` that have an image vector of the active model, and their
        vectors with what was found in the photo mixed in; one query for the vectors, the rows
        joined into one array (a NumPy array a row took 0.6 of the 1.9 ms for a search's 112
        candidates), and one for the faces where the model mixes people in."""
        model = self.model
        dim = model.manifest.embedding_size
        marks = ",".join("?" * len(content_ids))
        with self._lock:
            rows = self._conn.execute(
                "SELECT content_id, kind, vector FROM embeddings "
                f"WHERE model_id = ? AND region = 0 AND kind IN ('image', 'text') AND content_id IN ({marks})",
                [model.id, *content_ids],
            ).fetchall()

        def faces() -> list[tuple[int, int]]:
            with self._lock:
                return self._conn.execute(
                    f"SELECT content_id, faces FROM photo_faces WHERE faces > 0 AND content_id IN ({marks})",
                    content_ids,
                ).fetchall()

        image = [(cid, blob) for cid, kind, blob in rows if kind == "image"]
        found = [cid for cid, _ in image]
        vectors = np.frombuffer(b"".join(blob for _, blob in image), dtype=np.float32).reshape(len(image), dim)
        text = {cid: np.frombuffer(blob, dtype=np.float32) for cid, kind, blob in rows if kind == "text"}
        return found, _with_found_in_photo(found, vectors, self._found_in_photo(model, text, faces))

    def _found_in_photo(
        self, model: LoadedModel, text: dict[int, np.ndarray], faces: Callable[[], Iterable[tuple[int, int]]]
    ) -> list[tuple[dict[int, np.ndarray], float]]:
        """The text and people vectors to mix into photos' vectors, with the model's weights.
        ``faces`` reads (content id, faces found) rows; it is called only for a model that mixes
        people in, so that other models' searches do not read them."""
        people_weight = model.manifest.search_setting("people_in_photo_weight", 0.0)
        people: dict[int, np.ndarray] = {}
        if people_weight > 0:
            phrases = self._people_vectors(model)
            people = {cid: phrases[min(count, 3)] for cid, count in faces()}
        return [(text, model.manifest.search_setting("text_in_photo_weight", 0.0)), (people, people_weight)]

    def _people_vectors(self, model: LoadedModel) -> dict[int, np.ndarray]:
        """The sentence vectors of one person, two people and a group, for ``model``."""
        from engine.ingest.faces import people_phrase

        cached = self._people_cache
        if cached is None or cached[0] != model.id:
            vectors = model.text.encode([people_phrase(n) for n in (1, 2, 3)])
            cached = self._people_cache = (model.id, {n: vectors[n - 1] for n in (1, 2, 3)})
        return cached[1]

    def _add_to_index(
        self,
        index: VectorIndex,
        content_ids: list[int],
        stored: Callable[[list[int]], tuple[list[int], np.ndarray]] | None = None,
    ) -> None:
        found, vectors = (stored or self._vectors_of)(content_ids)
        if found:
            index.add(np.asarray(found, dtype=np.int64), vectors)

    def _vector_chunks(self, chunk: int = 8192) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every image vector of the active model, what was found in the photo mixed in, in chunks."""
        model = self.model
        dim = model.manifest.embedding_size
        conn = open_reader(self.db_path)  # a cursor of its own: indexing may write meanwhile
        try:
            text = {
                cid: np.frombuffer(blob, dtype=np.float32)
                for cid, blob in conn.execute(
                    "SELECT content_id, vector FROM embeddings WHERE model_id = ? AND kind = 'text' AND region = 0",
                    (model.id,),
                )
            }
            faces = "SELECT content_id, faces FROM photo_faces WHERE faces > 0"
            found = self._found_in_photo(model, text, lambda: conn.execute(faces).fetchall())
            for ids, vectors in _stored_chunks(conn, _SEARCHED_VECTORS, model.id, np.float32, dim, chunk):
                yield ids, _with_found_in_photo(ids.tolist(), vectors, found)
        finally:
            conn.close()

    def _similar_chunks(self, dim: int, chunk: int = 8192) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every photo-to-photo vector of the active model, in chunks."""
        conn = open_reader(self.db_path)  # a cursor of its own: indexing may write meanwhile
        try:
            yield from _stored_chunks(conn, _SEARCHED_SIMILAR, self.model.id, SIMILAR_STORED, dim, chunk)
        finally:
            conn.close()

    def _load_index(
        self, sql: str, dim: int, chunks: Iterable[tuple[np.ndarray, np.ndarray]], fetch_exact: FetchExact
    ) -> VectorIndex:
        """An index of the ``count(*) sql`` vectors that ``chunks`` yields."""
        started = time.perf_counter()
        with self._lock:
            count = self._conn.execute("SELECT count(*) " + sql, (self.model.id,)).fetchone()[0]
        index = VectorIndex(dim, quantize_above=self.quantize_above, fetch_exact=fetch_exact)
        index.set_chunks(count, chunks)
        index.prepare()
        log.info(
            "loaded %d vectors (%s, %.0f MB) in %.2f s",
            len(index),
            "4-bit" if index.quantized else "float32",
            index.nbytes / 1e6,
            time.perf_counter() - started,
        )
        return index

    def search_index(self) -> VectorIndex:
        """The in-memory index of the active model's vectors, loaded once."""
        with self._index_lock:
            if self._index is None:
                dim = self.model.manifest.embedding_size
                self._index = self._load_index(_SEARCHED_VECTORS, dim, self._vector_chunks(), self._fetch_exact)
            return self._index

    def reload_index(self) -> None:
        """Read the vectors again at the next search: after a removal here, or when another
        process wrote to the library (its commits reach this process's index only through a new
        read)."""
        with self._index_lock:
            self._index = None
            self._similar_index = None

    def _similar_vectors(self, content_ids: list[int]) -> tuple[list[int], np.ndarray]:
        """Those of ``content_ids`` that have a photo-to-photo vector of the active model, and
        their vectors (as :meth:`_vectors_of` for the embeddings)."""
        marks = ",".join("?" * len(content_ids))
        with self._lock:
            rows = self._conn.execute(
                "SELECT content_id, vector FROM embeddings WHERE model_id = ? AND kind = 'similar' AND region = 0 "
                f"AND content_id IN ({marks})",
                [self.model.id, *content_ids],
            ).fetchall()
        vectors = np.frombuffer(b"".join(blob for _, blob in rows), dtype=SIMILAR_STORED)
        return [cid for cid, _ in rows], vectors.reshape(len(rows), -1 if rows else 0).astype(np.float32)

    def similar_index(self) -> VectorIndex | None:
        """The in-memory index of the active model's photo-to-photo vectors (None for a model
        without them), read on first use; photos indexed meanwhile join it as the main index's do."""
        if self.model.image.graph.similar_output is None:
            return None
        with self._index_lock:
            if self._similar_index is None:
                with self._lock:
                    first = self._conn.execute(
                        "SELECT length(vector) " + _SEARCHED_SIMILAR + " LIMIT 1", (self.model.id,)
                    ).fetchone()
                if first is None:
                    # No vector yet to tell their size (an empty library, its only folder just
                    # removed): nothing to search, and nothing kept, so that the first vectors
                    # committed are read with their size at the next search, not joined to an
                    # index of a made-up one.
                    return VectorIndex(1, quantize_above=self.quantize_above)
                dim = first[0] // np.dtype(SIMILAR_STORED).itemsize
                fetch = functools.partial(self._fetch_similar, dim=dim)
                self._similar_index = self._load_index(_SEARCHED_SIMILAR, dim, self._similar_chunks(dim), fetch)
            return self._similar_index

    def reload_if_changed(self, every: float | None = None) -> bool:
        """Read the vectors again at the next search if another process committed to the
        library since the last look, looking at most every ``every`` seconds (a read takes ~1 s
        at 100,000 photos). For a reader that runs beside a `photoseek watch` or `index`
        elsewhere: their photos reach this process only through a new read. True when it will."""
        now = time.monotonic()
        if now - self._version_checked < (RELOAD_SECONDS if every is None else every):
            return False
        version = self.data_version()
        if version == self._seen_version:
            return False
        self.reload_index()
        self._seen_version, self._version_checked = version, now
        return True

    def writer_free(self) -> bool:
        """Whether no other process is writing to the library now (checked by taking the writer
        lock for a moment; a watcher or index run of this process counts as free)."""
        try:
            with self._writer_lock.hold():
                return True
        except LibraryBusyError:
            return False

    def data_version(self) -> int:
        """SQLite's count of commits by *other* connections to this library (this process's
        writer thread included): a reader that sees it change knows the file changed."""
        with self._lock:
            return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def _stored(self, path: Path | str) -> Photo | None:
        """The library's photo at ``path`` if what the library holds of it is still true: the
        file is as it was indexed (same size and modification time), or its folder is offline
        (an unplugged drive: what was stored is all there is). None for a file changed or
        removed since it was indexed, and for one the library does not hold."""
        return self._still_true(self.photo(path))

    def _still_true(self, photo: Photo | None) -> Photo | None:
        """``photo`` if what the library holds of it is still true (see :meth:`_stored`)."""
        if photo is None:
            return None
        try:
            st = photo.path.stat()
        except OSError:
            return photo if not photo.root.exists() else None
        return photo if (st.st_size, st.st_mtime_ns) == (photo.size, photo.mtime_ns) else None

    def _like_vector(self, target: str, similar: bool = False) -> np.ndarray:
        """The vector of the photo ``target`` (in the library or on disk): its embedding, or
        with ``similar`` its photo-to-photo vector."""
        try:
            held = self.photo(target)
            photo = self._still_true(held)
            # A library photo not indexed (yet, or ever: its reason comes from decoding it again)
            # is read where the library found it; any other path is read as given.
            path = photo.path if photo is not None else Path(target).expanduser()
            is_file, is_dir = path.is_file(), path.is_dir()
        except OSError as exc:  # a name too long for the file system, a looping link, ...
            raise QueryError(f"like:{target}: {exc.strerror or exc}") from exc
        if photo is not None and photo.content_id is not None:
            found, vectors = (self._similar_vectors if similar else self._vectors_of)([photo.content_id])
            if found:
                return vectors[0]
        if is_file:  # a photo outside the library, or not indexed: embed it now
            try:
                data = read_photo_file(path, path.stat().st_size)
                decoded = decode_photo(data, min_side=self.model.image.preprocess.size, name=path.name)
            except DecodeError as exc:
                raise QueryError(f"like:{target}: {exc.reason}") from exc
            except OSError as exc:
                raise QueryError(f"like:{target}: {exc.strerror or exc}") from exc
            encoded = self.model.image.encode([decoded.image])
            return encoded.similar[0] if similar and encoded.similar is not None else encoded.embeddings[0]
        if is_dir:
            raise QueryError(f"like:{target}: a folder, not a photo")
        if held is not None:  # deleted since the last scan, which will forget it
            raise QueryError(f"like:{target}: no longer on disk")
        raise QueryError(f"like:{target}: no such photo in the library or on disk")

    def query_vector(self, query: Query) -> np.ndarray:
        """The query's vector: descriptions and ``like:`` photos added, ``-`` concepts pushed away."""
        model = self.model
        parts: list[np.ndarray] = []
        if query.text:
            parts.append(model.text.encode_query(query.text))
        parts += [self._like_vector(t) for t in query.like]
        parts += [model.text.encode_query(t) for t in query.plus]
        vector = np.sum(parts, axis=0)
        if query.minus:
            weight = model.manifest.search_setting("negative_weight", 0.7)
            base = normalize(vector)
            for term in query.minus:
                away = model.text.encode_query(term)
                if query.like and not query.text:
                    vector = vector - away  # arithmetic on a photo: image(blue car) - "blue" + "red"
                else:
                    # Remove only what the concept adds beyond the description itself.
                    vector = vector - weight * (away - float(away @ base) * base)
        return normalize(vector)

    def search(
        self, text: str, limit: int = 50, *, cutoff: float | None = None, on_disk: bool = False
    ) -> SearchResults:
        """Photos that match ``text`` (see :mod:`engine.search.query`), best first. With
        ``on_disk``, photos no longer on disk are left out (and counted), the next best taking
        their place: the library is what the last scan saw, and a search from a terminal may come
        long after it (the window's watcher keeps its library current, and pays no file check)."""
        query = parse(text)
        # Photos alone (`like:`, Find similar) are compared by the model's photo-to-photo vectors
        # where it has them; descriptions and arithmetic stay in the joint space.
        alike = self.similar_index() if query.is_similar else None
        if alike is not None:
            vector = normalize(np.sum([self._like_vector(t, similar=True) for t in query.like], axis=0))
            index = alike
        else:
            vector = self.query_vector(query)
            index = self.search_index()
        if len(index) == 0:
            with self._lock:
                folders = self._conn.execute("SELECT 1 FROM roots LIMIT 1").fetchone() is not None
            return SearchResults(text, [], self._why_empty(folders))
        # The model's floors: a query in the joint space (a description, with arithmetic or
        # not, `like:` with words) must beat its score with the reference photo; Find similar
        # has one of its own where the model has photo-to-photo vectors. A cutoff the caller
        # chose moves them (registry.LoadedModel._moved).
        if alike is not None:
            floor = self.model.similar_floor(cutoff)
        elif query.is_similar:  # on the embeddings: no floor set
            floor = -1.0 if cutoff is None else cutoff
        else:
            floor = self.model.relevance_floor(vector, chosen=cutoff)
        wanted = limit * 2 + 8
        while True:
            ids, scores = index.search(vector, wanted)
            hits, gone = self._hits(ids, scores, floor, limit, exclude_like=query.like, on_disk=on_disk)
            # Candidates left out for being gone make room for more, read further down the list.
            if len(hits) >= limit or not gone or len(ids) < wanted:
                break
            wanted *= 2
        message = None
        if not hits:
            message = "no similar photo found" if query.like else "no photo matches well enough"
            if gone:
                message = "no photo that matched is on disk now"
            with self._lock:
                online = self._conn.execute("SELECT 1 FROM roots WHERE online = 1 LIMIT 1").fetchone()
            if online is None:
                # (The window's watcher looks every few seconds; a search on_disk looks at once.)
                message = (
                    "the library's folders are offline (a drive not connected?): no photo to show until one is back"
                )
        return SearchResults(text, hits, message, gone)

    def _why_empty(self, folders: bool) -> str:
        """Why a search has no vectors to look at: no folders, nothing indexed yet, or photos
        embedded by another model than the one asked for (``--model``)."""
        if not folders:
            return "the library has no folders yet"
        with self._lock:
            other = self._conn.execute(
                "SELECT model_id FROM embeddings WHERE kind = 'image' AND model_id != ? LIMIT 1", [self.model.id]
            ).fetchone()
        if other is None:
            return "the library has no indexed photos yet"
        chosen = {self._model_name, self._meta("model")}
        if len({canonical(name) for name in chosen}) == 1:  # the library's own
            return f"the library's photos are not embedded with {self.model.id} yet (`photoseek index` embeds them)"
        return (
            f"no photo of the library is embedded with {self.model.id}: its photos are embedded with "
            f"{other[0]} (search with that model, or switch: `photoseek models use {self.model.manifest.id}`)"
        )

    def similar(self, photo: Photo | Path | str, limit: int = 50) -> SearchResults:
        """Photos that look like ``photo`` (image-to-image search)."""
        target = str(photo.path if isinstance(photo, Photo) else photo)
        return self.search(f'like:"{target}"', limit)

    def _hits(
        self,
        ids: np.ndarray,
        scores: np.ndarray,
        threshold: float,
        limit: int,
        exclude_like: tuple[str, ...],
        on_disk: bool = False,
    ) -> tuple[list[SearchHit], int]:
        """The best ``limit`` of the candidates that score ``threshold`` or more, as photos, and
        how many were left out for being no longer on disk (``on_disk``)."""
        keep = [(int(i), float(s)) for i, s in zip(ids, scores, strict=True) if s >= threshold]
        if not keep:
            return [], 0
        # The photos searched from are not among their own results, nor are their copies
        # (the same content in another folder).
        excluded = set()
        for target in exclude_like:
            photo = self.photo(target)
            if photo is not None and photo.content_id is not None:
                excluded.add(photo.content_id)
        # Photos of folders offline at the last look are left out; with ``on_disk`` every file is
        # looked at now, so a drive plugged in again since counts (and one still away is counted
        # as gone) without waiting for the next look at the folders.
        reachable = "" if on_disk else "AND r.online = 1 "
        copies: dict[int, list[Photo]] = {}  # every file of a content is a result (copies too)
        missing: dict[int, int] = {}  # files no longer on disk, by content
        left_out = 0
        hits: list[SearchHit] = []
        start = 0
        # Read the best candidates' rows first and more only while some turn out offline,
        # excluded or missing: most searches need one query for `limit` rows.
        while start < len(keep) and len(hits) < limit:
            batch = keep[start : start + limit - len(hits) + 4]
            start += len(batch)
            marks = ",".join("?" * len(batch))
            with self._lock:
                rows = self._conn.execute(
                    # "+p.state": look the few candidates up by content id; the state index would
                    # make SQLite walk every indexed photo (110 ms at a million photos).
                    self._PHOTO_SELECT + f" WHERE p.content_id IN ({marks}) {reachable}"
                    "AND +p.state = 'indexed' ORDER BY p.id",
                    [self._captioner_id(), *[k for k, _ in batch]],
                ).fetchall()
            for row in rows:
                photo = self._photo(row)
                content = photo.content_id
                if content is None or content in excluded:
                    continue
                if on_disk and _missing(photo.path):
                    missing[content] = missing.get(content, 0) + 1
                    continue
                copies.setdefault(content, []).append(photo)
            for content, score in batch:  # in rank order: files gone above the last hit shown are counted
                if len(hits) == limit:
                    break
                left_out += missing.get(content, 0)
                hits += [SearchHit(photo, score) for photo in copies.get(content, ())][: limit - len(hits)]
        return hits, left_out

    # -- captions ----------------------------------------------------------------------------

    def caption(self, path: Path | str) -> str:
        """The caption of a photo: stored if the photo is indexed, generated now otherwise."""
        if not str(path).strip():
            raise LibraryError("no path given")
        model = self.model  # loaded first: the stored caption is then its captioner's
        photo = self._stored(path)
        if photo is not None and photo.caption:
            return photo.caption
        file = Path(path).expanduser()
        if photo is not None and photo.state == "failed":
            raise DecodeError(photo.error or "this photo could not be read")
        if file.is_dir():
            raise LibraryError("a folder, not a photo (`photoseek index` indexes a folder)")
        if not file.is_file():
            raise LibraryError("no such photo")  # the caller names the path
        if model.captioner is None:
            raise LibraryError(f"the model {model.manifest.id} has no captioner")
        data = read_photo_file(file, file.stat().st_size)
        decoded = decode_photo(data, min_side=model.image.preprocess.size, name=file.name)
        encoded = model.image.encode([decoded.image])
        return model.captioner.caption([decoded.image], encoded)[0]
