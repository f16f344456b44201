"""The desktop app's responsiveness with a large library.

In one run, with a library of 100,000 photos (synthetic vectors and placeholder files, so no
model runs for them):

* start to first painted grid: from before the QApplication is created to the first paint of
  the thumbnail grid, in a fresh process, while the first pass over the folders starts in the
  background as it does for a user (Python and the modules are loaded before the clock starts;
  `photoseek-desktop` adds about 0.4 s of imports);
* GUI-thread stalls while indexing 2,000 real photos (generated JPEGs, built-in model) in the
  background: a 5 ms timer on the GUI thread records how late each tick runs; p99 and max;
* the same while scrolling through the grid (thumbnails decoded and cached meanwhile).

    python benchmarks/bench_gui.py [--photos 100000] [--index 2000]

Runs offscreen (QT_QPA_PLATFORM=offscreen) unless a display is set. Prints a table and writes
benchmarks/results/bench_gui.json. Targets: first paint <= 1.5 s, stall p99 <= 50 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.machine import describe  # noqa: E402
from benchmarks.workdir import WORKDIR_HELP, scratch_folder  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def make_library(workdir: Path, count: int) -> Path:
    """A library of ``count`` photos: small real JPEG files and random vectors of the built-in model."""
    from PIL import Image

    from benchmarks.bench_search import fill_library
    from engine.library import Library

    db = workdir / "big.sqlite3"
    template = workdir / "big-template.sqlite3"
    if template.exists():  # every run starts from the same 100,000-photo library
        import shutil

        shutil.copyfile(template, db)
        for suffix in ("-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        return db
    with Library(workdir / "probe.sqlite3", device="cpu") as probe:
        model_id, dim = probe.model.id, probe.model.manifest.embedding_size
    fill_library(db, count, model_id, dim)
    # The rows point to /synthetic/NNNN/N.jpg; give them a real folder of small files.
    folder = workdir / "synthetic"
    rng = np.random.default_rng(0)
    base = [Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)) for _ in range(16)]
    for i in range(1, count + 1):
        path = folder / f"{i // 1000:04d}" / f"{i}.jpg"
        if i % 1000 == 0 or i == 1:
            path.parent.mkdir(parents=True, exist_ok=True)
        base[i % 16].save(path, quality=70)
    import sqlite3

    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE roots SET path = ? WHERE id = 1", (str(folder),))
        # The rows must match the files, or the first pass would see 100,000 changed photos.
        rows = []
        for photo_id, rel in conn.execute("SELECT id, rel_path FROM photos").fetchall():
            st = (folder / rel).stat()
            rows.append((st.st_size, st.st_mtime_ns, photo_id))
        conn.executemany("UPDATE photos SET size = ?, mtime_ns = ? WHERE id = ?", rows)
    import shutil

    shutil.copyfile(db, template)
    return db


class StallMeter:
    """How late a 5 ms GUI-thread timer fires: the longest the event loop was blocked."""

    def __init__(self) -> None:
        from PySide6.QtCore import QTimer

        self.lags: list[float] = []
        self._last = time.perf_counter()
        self.timer = QTimer()
        self.timer.setInterval(5)
        self.timer.timeout.connect(self._tick)

    def start(self) -> None:
        self.lags = []
        self._last = time.perf_counter()
        self.timer.start()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.lags.append(max(0.0, now - self._last - 0.005))
        self._last = now

    def stop(self) -> dict[str, float]:
        self.timer.stop()
        lags = np.array(self.lags or [0.0]) * 1e3
        return {"ticks": len(lags), "p99_ms": float(np.percentile(lags, 99)), "max_ms": float(lags.max())}


def child_first_paint(db: Path) -> None:
    """In a fresh process: time from QApplication to the grid's first paint."""
    from PySide6.QtCore import QEvent, QObject
    from PySide6.QtWidgets import QApplication

    from desktop_app.main import build

    started = time.perf_counter()
    app = QApplication([])
    window = build(["--db", str(db), "--device", "cpu"])  # the first pass starts in the background, as for a user

    class FirstPaint(QObject):
        def eventFilter(self, _obj, event):
            if event.type() == QEvent.Type.Paint and not hasattr(self, "at"):
                self.at = time.perf_counter() - started
                app.quit()
            return False

    watcher = FirstPaint()
    window.grid.viewport().installEventFilter(watcher)
    window.show()
    app.exec()
    print(json.dumps({"first_paint_s": watcher.at, "photos": window.model.rowCount()}))
    window.close()
    window.library.close()


def measure_stalls(db: Path, workdir: Path, index_count: int) -> dict[str, object]:
    from PIL import Image
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from desktop_app.main import build

    app = QApplication([])
    window = build(["--db", str(db), "--device", "cpu"])
    window.sync.stop()
    window.resize(1280, 820)
    window.show()
    meter = StallMeter()
    out: dict[str, object] = {}

    # Scrolling: page down through the grid, one step every 20 ms, for 10 s.
    bar = window.grid.verticalScrollBar()
    steps = {"n": 0}

    def scroll() -> None:
        bar.setValue(bar.value() + bar.pageStep() // 2)
        steps["n"] += 1

    scroller = QTimer()
    scroller.setInterval(20)
    scroller.timeout.connect(scroll)
    meter.start()
    scroller.start()
    QTimer.singleShot(10_000, app.quit)
    app.exec()
    scroller.stop()
    out["scrolling"] = meter.stop() | {"scroll_steps": steps["n"]}

    # Indexing: add a folder of real photos; the app indexes it in the background.
    folder = workdir / "new-photos"
    if not folder.exists():
        rng = np.random.default_rng(1)
        folder.mkdir()
        for n in range(index_count):
            colour = rng.integers(0, 255, 3)
            pixels = np.clip(colour + rng.normal(0, 20, (480, 640, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"new-{n:05d}.jpg", quality=85)
    done: dict[str, object] = {}

    def finished(result: object) -> None:
        done["at"] = time.perf_counter()
        app.quit()

    window.sync.finished.connect(finished)
    started = time.perf_counter()
    meter.start()
    window.add_folder(folder)
    app.exec()
    out["indexing"] = meter.stop() | {
        "photos": index_count,
        "seconds": float(done.get("at", time.perf_counter())) - started,  # type: ignore[arg-type]
    }
    # Quitting while indexing: how long close() takes to stop the run.
    more = workdir / "more-photos"
    if not more.exists():
        more.mkdir()
        for n in range(400):
            Image.new("RGB", (640, 480), (n % 255, 100, 50)).save(more / f"m-{n:04d}.jpg")
    window.sync.finished.disconnect(finished)
    window.sync.progress.connect(lambda *_: QTimer.singleShot(500, app.quit))  # indexing is under way
    window.add_folder(more)
    QTimer.singleShot(60_000, app.quit)
    app.exec()
    assert window.sync.running, "the indexing run to interrupt did not start"
    t = time.perf_counter()
    window.close()
    out["quit_while_indexing_s"] = time.perf_counter() - t
    window.library.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=100_000)
    parser.add_argument("--index", type=int, default=2000)
    parser.add_argument("--workdir", type=Path, help=WORKDIR_HELP)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--paint-only", action="store_true", help="measure only the first paint")
    args = parser.parse_args()
    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    if args.child:
        child_first_paint(args.child)
        return
    workdir = scratch_folder(args.workdir, "photoseek-bench-gui-")
    os.environ.setdefault("PHOTOSEEK_DATA_DIR", str(workdir / "data"))
    os.environ.setdefault("PHOTOSEEK_CACHE_DIR", str(workdir / "cache"))
    print(f"making a library of {args.photos:,} photos ...", flush=True)
    db = make_library(workdir, args.photos)
    paints = []
    for _ in range(3):
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(db)], check=True, capture_output=True, text=True, env=os.environ
        ).stdout
        paints.append(json.loads(out.strip().splitlines()[-1])["first_paint_s"])
    if args.paint_only:
        print(f"start to first painted grid {np.median(paints):.2f} s (median of 3: {paints})")
        return
    stalls = measure_stalls(db, workdir, args.index)
    result = {
        "machine": describe(),
        "platform": os.environ.get("QT_QPA_PLATFORM", "xcb"),
        "photos": args.photos,
        "first_paint_s": {"runs": paints, "median": float(np.median(paints))},
        **stalls,
    }
    print(f"library of {args.photos:,} photos ({result['platform']})")
    print(f"start to first painted grid      {np.median(paints):6.2f} s (median of 3; target <= 1.5 s)")
    for key in ("indexing", "scrolling"):
        s = result[key]
        print(f"GUI stall while {key:10} p99 {s['p99_ms']:6.1f} ms   max {s['max_ms']:6.1f} ms  (target p99 <= 50 ms)")
    print(f"indexing {args.index} photos took {result['indexing']['seconds']:.1f} s")
    print(f"closing the window while indexing {result['quit_while_indexing_s']:.2f} s")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_gui.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"written {RESULTS / 'bench_gui.json'}")


if __name__ == "__main__":
    main()
