"""Entry point of both packaged executables: ``photoseek-desktop`` opens the window, ``photoseek``
is the command line. One script (and one PyInstaller analysis) serves both, chosen by the name of
the executable, so the two share one folder of libraries."""

from __future__ import annotations

import sys
from pathlib import Path


def main() -> int:
    name = Path(sys.executable).name
    if name.startswith("photoseek-desktop"):
        from desktop_app.main import main as run
    else:
        from engine.cli import main as run
    return run()


if __name__ == "__main__":
    raise SystemExit(main())
