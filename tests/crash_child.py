"""The process the crash tests kill: it indexes (or watches) a library until it is killed.

    python -m tests.crash_child LIBRARY MODEL FOLDER index|watch

Small batches make many transactions, so a SIGKILL lands inside one often.
"""

from __future__ import annotations

import sys
import time

from engine.library import Library


def main(argv: list[str]) -> int:
    db, model, folder, mode = argv
    library = Library(db, model=model, device="cpu", threads=1)
    library.add_root(folder)
    if mode == "index":
        jobs = library.scan()
        library.index(jobs, workers=1, batch_size=2)
    else:
        service = library.watch(debounce=0.05, settle=0.1, root_check_interval=0.2, gc_grace=0.3, workers=1)
        while service.running:
            time.sleep(0.05)
    library.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
