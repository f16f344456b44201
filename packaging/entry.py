"""Entry point of the packaged application: ``photoseek-desktop`` opens the window, ``photoseek``
is the command line. The package has one executable, ``photoseek``, and ``photoseek-desktop`` is a
link to it (so the program archive is in the folder once); the name it was started by picks the
GUI or the command line. That name is ``argv[0]``: ``sys.executable`` is the file the link
resolves to."""

from __future__ import annotations

import sys
from pathlib import Path


def main() -> int:
    name = Path(sys.argv[0] if sys.argv and sys.argv[0] else sys.executable).name
    if name.startswith("photoseek-desktop"):
        from desktop_app.main import main as run
    else:
        from engine.cli import main as run
    return run()


if __name__ == "__main__":
    raise SystemExit(main())
