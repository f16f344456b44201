"""Walking a photo folder and working out what changed since the last look.

The walk only lists and stats; it opens a file only when its extension is unknown, to read
32 bytes and recognise an image by its content. Hidden files and folders are skipped, symlink
loops are broken, unreadable folders are reported, never fatal.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from engine.ingest.decode import NOT_PHOTO_EXTENSIONS, PHOTO_EXTENSIONS, sniff

log = logging.getLogger(__name__)

# Names that are not valid UTF-8 reach Python as lone surrogates (surrogateescape), which
# SQLite cannot store as text. They are mapped to a private-use range and back, reversibly.
_SURROGATE_BASE = 0xDC00
_PRIVATE_BASE = 0x10FC00


def to_db_name(name: str) -> str:
    if not any(0xDC80 <= ord(ch) <= 0xDCFF for ch in name):
        return name
    return "".join(
        chr(_PRIVATE_BASE + (ord(ch) - _SURROGATE_BASE)) if 0xDC80 <= ord(ch) <= 0xDCFF else ch for ch in name
    )


def from_db_name(name: str) -> str:
    if not any(0x10FC80 <= ord(ch) <= 0x10FCFF for ch in name):
        return name
    return "".join(
        chr(_SURROGATE_BASE + (ord(ch) - _PRIVATE_BASE)) if 0x10FC80 <= ord(ch) <= 0x10FCFF else ch for ch in name
    )


@dataclass(frozen=True)
class FileEntry:
    """A file that may be a photo: its path relative to the root (as stored), size and mtime."""

    rel_path: str
    size: int
    mtime_ns: int


@dataclass
class WalkReport:
    files: list[FileEntry] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (relative path, reason)
    # Folders the walk entered through a symbolic link, as (link path, real folder), in the
    # walk's order; and links it met that lead nowhere now. (The folder watcher follows both.)
    links: list[tuple[str, str]] = field(default_factory=list)
    dangling: list[str] = field(default_factory=list)


def is_candidate(path: str) -> bool:
    """A photo extension, or an unknown extension whose first bytes are an image's."""
    ext = os.path.splitext(path)[1].lower()
    if ext in PHOTO_EXTENSIONS:
        return True
    if ext in NOT_PHOTO_EXTENSIONS:
        return False
    try:
        with open(path, "rb") as handle:
            return sniff(handle.read(32)) is not None
    except OSError:
        return False


def is_hidden(rel_path: str) -> bool:
    """Whether any part of a path relative to a root is hidden (those are never photos to index)."""
    return any(part.startswith(".") and part not in (".", "..") for part in rel_path.split(os.sep))


def entry_for(root: Path, path: Path) -> FileEntry | None:
    """The walk's entry for one file under ``root``, or None if it is not a candidate photo now
    (missing, hidden, a folder, not a photo)."""
    rel = os.path.relpath(path, root)
    if rel.startswith(".." + os.sep) or rel == ".." or is_hidden(rel):
        return None
    try:
        info = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode) or not is_candidate(os.fspath(path)):
        return None
    return FileEntry(to_db_name(rel), info.st_size, info.st_mtime_ns)


def _inside(path: str, folder: str) -> bool:
    return path.startswith(folder.rstrip(os.sep) + os.sep)


def _second_path(folder: str, real: str, real_root: str) -> bool:
    """Whether ``folder`` (a path under the root whose real path is ``real``) is reached through
    a link and is really a folder of the root: another path to folders the root's walk lists by
    their own."""
    return real != os.path.abspath(folder) and (real == real_root or _inside(real, real_root))


#: How the walk's reasons for a file begin (the others are about a folder), for those that
#: count them apart.
FILE_PROBLEM = "cannot read the file"


def _why(exc: OSError) -> str:
    """The system's reason, as the other reasons are written ("permission denied")."""
    why = exc.strerror or str(exc)
    return why[:1].lower() + why[1:]


def walk(root: Path, start: Path | None = None, *, photos: bool = True) -> WalkReport:
    """Every candidate photo under ``root`` (hidden entries skipped, symlink loops broken, links
    to folders of the root itself not followed: their photos are listed by their own paths).

    With ``start`` (a folder inside ``root``) only that subtree is walked; paths stay relative to
    ``root``. With ``photos=False`` only the folders are walked (for ``links`` and ``dangling``):
    no file is looked at.
    """
    report = WalkReport()
    root_str = os.fspath(root)
    first = os.fspath(start) if start is not None else root_str
    seen_dirs: set[tuple[int, int]] = set()
    # A subtree's walk lists no folder a second time under another path: it never goes back up
    # into the folders above it, nor through a link into a folder of the root (the root's walk
    # reaches that by its own path).
    real_root = os.path.realpath(root_str)
    if start is not None and _second_path(first, os.path.realpath(first), real_root):
        return report
    here = first
    while here != root_str and _inside(here, root_str):
        here = os.path.dirname(here)
        with contextlib.suppress(OSError):
            st = os.stat(here)
            seen_dirs.add((st.st_dev, st.st_ino))
    try:
        st = os.stat(first)
        seen_dirs.add((st.st_dev, st.st_ino))
    except OSError as exc:
        rel = to_db_name(os.path.relpath(first, root_str))
        report.problems.append((rel, f"cannot look into the folder: {_why(exc)}"))
        return report
    stack = [first]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            rel = os.path.relpath(folder, root_str)
            report.problems.append((to_db_name(rel), f"cannot look into the folder: {_why(exc)}"))
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            link = entry.is_symlink()
            if not photos and not link and not entry.is_dir(follow_symlinks=False):
                continue  # a plain file, and only folders are wanted
            try:
                info = entry.stat(follow_symlinks=True)
            except OSError as exc:  # dangling symlink, permission denied, vanished
                if link:
                    report.dangling.append(entry.path)
                    if photos and os.path.splitext(entry.name)[1].lower() in PHOTO_EXTENSIONS:
                        # A photo's name that leads nowhere (its file moved or deleted, its drive
                        # not connected): said, not skipped without a word.
                        rel = os.path.relpath(entry.path, root_str)
                        report.problems.append((to_db_name(rel), f"{FILE_PROBLEM}: a link to a file that is not there"))
                else:
                    rel = os.path.relpath(entry.path, root_str)
                    report.problems.append((to_db_name(rel), f"{FILE_PROBLEM}: {_why(exc)}"))
                continue
            if stat.S_ISDIR(info.st_mode):
                key = (info.st_dev, info.st_ino)
                if key in seen_dirs:  # a symlink loop or a second link to the same folder
                    continue
                real = os.path.realpath(entry.path) if link else None
                if real is not None and _second_path(entry.path, real, real_root):
                    continue  # a link to a folder of the root: listed by its own path
                seen_dirs.add(key)
                stack.append(entry.path)
                if real is not None:
                    report.links.append((entry.path, real))
            elif photos and stat.S_ISREG(info.st_mode) and is_candidate(entry.path):
                rel = os.path.relpath(entry.path, root_str)
                report.files.append(FileEntry(to_db_name(rel), info.st_size, info.st_mtime_ns))
    return report
