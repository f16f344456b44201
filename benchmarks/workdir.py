"""Where a benchmark writes its scratch files (synthetic libraries of up to 1.6 GB, generated
photos, evaluation libraries)."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

WORKDIR_HELP = "scratch files (default: a temporary folder, removed at the end; a folder given is kept and reused)"


def scratch_folder(given: Path | None, prefix: str) -> Path:
    """``given`` (kept, so that a later run reuses what is there), or a temporary folder that is
    removed when the benchmark ends, however it ends short of being killed."""
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        return given
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path
