"""Shared fixtures. Tests never download anything and never touch the real user folders."""

from __future__ import annotations

import os
import sqlite3
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.tiny_model import make_tiny_bundle

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def isolated_user_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own data and cache folders; the built-in model is shared (see below)."""
    base = tmp_path_factory.mktemp("user")
    monkeypatch.setenv("PHOTOSEEK_DATA_DIR", str(base / "data"))
    monkeypatch.setenv("PHOTOSEEK_CACHE_DIR", str(base / "cache"))
    monkeypatch.delenv("PHOTOSEEK_DB", raising=False)
    # A models folder shipped beside a checkout (a packaging build) must not leak into tests.
    monkeypatch.setenv("PHOTOSEEK_BUNDLED_MODELS", str(base / "bundled-models"))


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_bundle(tmp_path_factory.mktemp("models") / "tiny-rgb")


def solid(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (64, 48), fmt: str | None = None) -> Path:
    """A photo of one colour, with a little noise so that encoders see a real image."""
    rng = np.random.default_rng(zlib.crc32(path.name.encode()))
    array = np.clip(np.array(colour, dtype=np.int16) + rng.integers(-8, 9, (size[1], size[0], 3)), 0, 255)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path, fmt)
    return path


@pytest.fixture
def rgb_folder(tmp_path: Path) -> Path:
    """A folder with a red, a green and a blue photo, one nested."""
    folder = tmp_path / "photos"
    solid(folder / "red.jpg", (220, 20, 20))
    solid(folder / "green.png", (20, 200, 30))
    solid(folder / "sub" / "blue.jpg", (20, 30, 220))
    return folder


@pytest.fixture(scope="session")
def builtin_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real built-in model, built once per test session (needs the builtin extra)."""
    pytest.importorskip("torch")
    from engine.models.builtin.build import build_bundle

    target = tmp_path_factory.mktemp("builtin") / "photoseek-builtin"
    return build_bundle(target)


def damage(library: Path, table: str | None = None) -> None:
    """Overwrite with noise the root page of ``table`` in a closed library, or every page but the
    first (the header). SQLite then says "database disk image is malformed" on reading it."""
    with sqlite3.connect(library) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()
    conn.close()
    data = bytearray(library.read_bytes())
    start, end = (size, len(data)) if table is None else ((root[0] - 1) * size, root[0] * size)
    assert 0 < start < end <= len(data)
    data[start:end] = bytes((i * 131 + 7) % 251 for i in range(end - start))
    library.write_bytes(bytes(data))
