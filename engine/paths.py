"""Where Photoseek keeps its own files. The user's photo folders are never written to."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "photoseek"

#: The repository's ``resources/`` folder (sample photos, manifests, tables).
RESOURCES_DIR = Path(os.environ.get("PHOTOSEEK_RESOURCES", Path(__file__).resolve().parent.parent / "resources"))
SAMPLE_PHOTOS_DIR = RESOURCES_DIR / "sample_photos"


def data_dir() -> Path:
    """The user data directory (library database, model bundles).

    ``PHOTOSEEK_DATA_DIR`` overrides the platform default, which tests and portable installs use.
    """
    override = os.environ.get("PHOTOSEEK_DATA_DIR")
    return Path(override) if override else Path(platformdirs.user_data_dir(APP_NAME))


def cache_dir() -> Path:
    """The user cache directory (thumbnails); safe to delete at any time."""
    override = os.environ.get("PHOTOSEEK_CACHE_DIR")
    return Path(override) if override else Path(platformdirs.user_cache_dir(APP_NAME))


def models_dir() -> Path:
    """Installed model bundles, one folder each."""
    return data_dir() / "models"


def bundled_models_dir() -> Path:
    """Read-only model bundles shipped with an installed application (consulted after
    :func:`models_dir`); ``PHOTOSEEK_BUNDLED_MODELS`` overrides ``resources/models``.

    A packaged build puts the prebuilt built-in bundle here, so its first start needs no torch.
    """
    override = os.environ.get("PHOTOSEEK_BUNDLED_MODELS")
    return Path(override) if override else RESOURCES_DIR / "models"


def default_db_path() -> Path:
    """The library used when no ``--db`` is given; ``PHOTOSEEK_DB`` overrides it."""
    override = os.environ.get("PHOTOSEEK_DB")
    return Path(override) if override else data_dir() / "library.sqlite3"
