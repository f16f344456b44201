"""The engine's exceptions. The engine raises these and never prints or exits;
the CLI and the GUI decide how to show them."""

from __future__ import annotations

from pathlib import Path


class PhotoseekError(Exception):
    """Root of every error the engine raises on purpose."""


class LibraryError(PhotoseekError):
    """The library database cannot be used."""


class SchemaTooNewError(LibraryError):
    """The library was written by a newer Photoseek; it is refused, never altered."""


class LibraryBusyError(LibraryError):
    """Another process is already writing to this library."""


class ModelError(PhotoseekError):
    """A model bundle is missing, broken or cannot run."""


class ModelNotFoundError(ModelError):
    """No installed model bundle has the requested id (``name``, where known)."""

    def __init__(self, message: str, name: str | None = None) -> None:
        super().__init__(message)
        self.name = name


class ModelMissingError(ModelNotFoundError):
    """The model (or captioner) a library uses is not installed any more: the library cannot
    be used as it is, which the message says how to mend."""


class BundleIntegrityError(ModelError):
    """A bundle file is missing or its SHA-256 does not match the manifest."""


class DecodeError(PhotoseekError):
    """A file could not be read as a photo. ``reason`` is shown to the user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FileVanishedError(DecodeError):
    """The file was listed but is gone when it is read: deleted, or renamed or moved, which the
    folder watcher or the next scan records. Not a fault of the photo: it is tried again."""

    def __init__(self) -> None:
        super().__init__("the file disappeared before it could be read")


class QueryError(PhotoseekError):
    """A search query cannot be understood (for example ``like:`` names no known photo)."""


class RootError(PhotoseekError):
    """A photo folder cannot be added (missing, not a folder, unreadable)."""


class InsideRootError(RootError):
    """A folder to add is inside one of the library's folders: its photos are in it already."""

    def __init__(self, folder: Path, root: Path) -> None:
        super().__init__(f"{folder} is already in the library, inside {root}")
        self.folder = folder
        self.root = root


class DownloadError(ModelError):
    """A model could not be downloaded: offline, Hub unreachable, or not on the Hub."""


class DatasetError(PhotoseekError):
    """A training or evaluation data set cannot be read: missing files, wrong format, missing images."""
