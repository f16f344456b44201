"""Killing the indexer at random moments and checking the library after each kill.

Used by tests/test_crash.py (a short run) and benchmarks/reliability.py (a long one).
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from engine.ingest.scan import from_db_name, walk

ROOT = Path(__file__).resolve().parent.parent


def write_photo(path: Path, rng: random.Random) -> None:
    """A small random-coloured JPEG or PNG (distinct content every time)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    colour = np.array([rng.randrange(256) for _ in range(3)], dtype=np.int16)
    noise = np.random.default_rng(rng.randrange(1 << 30)).integers(-6, 7, (48, 64, 3))
    pixels = np.clip(colour + noise, 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, "PNG" if path.suffix == ".png" else "JPEG")


def make_tree(folder: Path, count: int, rng: random.Random) -> None:
    for i in range(count):
        write_photo(folder / f"d{i % 7}" / f"e{i % 3}" / f"p{i:05d}{rng.choice(['.jpg', '.png'])}", rng)


def mutate(folder: Path, rng: random.Random, serial: list[int]) -> None:
    """Add, delete, rename, rewrite photos and rename a folder: work for the next run."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    for _ in range(rng.randint(20, 60)):
        serial[0] += 1
        write_photo(folder / f"d{rng.randrange(9)}" / f"n{serial[0]:06d}.jpg", rng)
    rng.shuffle(files)
    for path in files[:2]:
        path.unlink()
    for path in files[2:5]:
        serial[0] += 1
        path.rename(path.with_name(f"r{serial[0]:06d}{path.suffix}"))
    for path in files[5:7]:
        write_photo(path, rng)
    folders = sorted(p for p in folder.iterdir() if p.is_dir())
    if folders and rng.random() < 0.5:
        serial[0] += 1
        victim = rng.choice(folders)
        victim.rename(folder / f"f{serial[0]:06d}")


def child(db: Path, model: Path, folder: Path, mode: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.Popen(
        [sys.executable, "-m", "tests.crash_child", str(db), str(model), str(folder), mode],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def progress(db: Path) -> tuple[int, int]:
    """(photos pending, photos indexed): read while a child writes (WAL lets a reader in)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        rows = dict(conn.execute("SELECT state, count(*) FROM photos GROUP BY state").fetchall())
    finally:
        conn.close()
    return int(rows.get("pending", 0)), int(rows.get("indexed", 0))


def wait_for_work(proc: subprocess.Popen[bytes], db: Path, before: tuple[int, int], limit: float) -> None:
    """Return once the child has committed work of its own (the library's counts moved) and
    photos wait to be indexed, once it has ended, or after ``limit`` seconds."""
    deadline = time.perf_counter() + limit
    while proc.poll() is None and time.perf_counter() < deadline:
        now = progress(db)
        if now != before and now[0] > 0:
            return
        time.sleep(0.005)


def check_opens(db: Path) -> int:
    """After a kill: the library opens and SQLite finds it intact. Returns how many photos
    were left pending."""
    conn = sqlite3.connect(db)
    try:
        result = conn.execute("PRAGMA integrity_check").fetchall()
        assert result == [("ok",)], f"integrity_check: {result}"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == [], "foreign keys broken"
        pending = int(conn.execute("SELECT count(*) FROM photos WHERE state = 'pending'").fetchone()[0])
    finally:
        conn.close()
    from engine.store.db import connect

    connect(db).close()
    return pending


def check_complete(db: Path, folder: Path, model_id: str) -> dict[str, int]:
    """After a final run: every photo on disk indexed exactly once, nothing else in the library."""
    on_disk = {from_db_name(e.rel_path) for e in walk(folder).files}
    conn = sqlite3.connect(db)
    try:
        photos = conn.execute("SELECT rel_path, state, content_id FROM photos").fetchall()
        in_library = [from_db_name(r[0]) for r in photos]
        duplicates = len(in_library) - len(set(in_library))
        lost = len(on_disk - set(in_library))
        ghosts = len(set(in_library) - on_disk)
        not_indexed = sum(1 for r in photos if r[1] != "indexed" or r[2] is None)
        dup_contents = conn.execute(
            "SELECT count(*) FROM (SELECT fingerprint FROM contents GROUP BY fingerprint HAVING count(*) > 1)"
        ).fetchone()[0]
        dup_vectors = conn.execute(
            "SELECT count(*) FROM (SELECT content_id FROM embeddings WHERE model_id = ? AND kind = 'image' "
            "AND region = 0 GROUP BY content_id HAVING count(*) > 1)",
            (model_id,),
        ).fetchone()[0]
        missing_vectors = conn.execute(
            "SELECT count(*) FROM photos p WHERE NOT EXISTS (SELECT 1 FROM embeddings e "
            "WHERE e.content_id = p.content_id AND e.model_id = ? AND e.kind = 'image' AND e.region = 0)",
            (model_id,),
        ).fetchone()[0]
        orphan_contents = conn.execute(
            "SELECT count(*) FROM contents WHERE id NOT IN (SELECT content_id FROM photos WHERE content_id IS NOT NULL)"
        ).fetchone()[0]
        orphan_vectors = (
            conn.execute(
                "SELECT count(*) FROM embeddings WHERE content_id NOT IN (SELECT id FROM contents)"
            ).fetchone()[0]
            + conn.execute(
                "SELECT count(*) FROM captions WHERE content_id NOT IN (SELECT id FROM contents)"
            ).fetchone()[0]
        )
    finally:
        conn.close()
    return {
        "photos": len(on_disk),
        "lost": lost,
        "duplicates": duplicates + dup_contents + dup_vectors,
        "ghosts": ghosts,
        "not_indexed": not_indexed,
        "missing_vectors": missing_vectors,
        "orphan_contents": orphan_contents,
        "orphan_vectors": orphan_vectors,
    }


@dataclass
class KillReport:
    kills: int = 0  # children killed while still running
    finished: int = 0  # children that finished before the kill came
    checks: int = 0  # integrity checks passed after a kill
    cut_short: int = 0  # kills that landed after the child's own first commit, photos still pending
    aimed: int = 0  # kills timed from the child's first commit rather than from its start
    modes: dict[str, int] = field(default_factory=dict)
    final: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def kill_loop(
    db: Path, model: Path, folder: Path, model_id: str, kills: int, seed: int = 0, photos: int = 120
) -> KillReport:
    """Index ``folder`` into ``db`` in child processes killed with SIGKILL at random moments
    (changing the folder between runs), checking the library after every kill; then let one run
    finish and check that every photo is indexed exactly once."""
    rng = random.Random(seed)
    report = KillReport()
    started = time.perf_counter()
    make_tree(folder, photos, rng)
    serial = [0]
    # Half the indexer's kills come at a random moment of the child's whole life (start-up and
    # scan are crash points too), spread over how long a child takes, learnt from those that
    # finished. The first estimate is measured, not guessed: one child indexes the whole tree
    # into a scratch library. The other half are aimed: the harness watches the library and
    # kills shortly after the child's first commit, so that kills land mid-work on any machine.
    # Timing alone did not: on a machine where the children started slower than the
    # calibration run, all 20 kills of a run landed before any photo was written.
    calibration = time.perf_counter()
    scratch = db.with_name(f"{db.stem}-calibration{db.suffix}")
    proc = child(scratch, model, folder, "index")
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr.decode(errors="replace")[-2000:]
    durations = [time.perf_counter() - calibration]
    index_runs = 0
    while report.kills < kills:
        mode = "watch" if rng.random() < 0.3 else "index"
        aimed = mode == "index" and index_runs % 2 == 0
        index_runs += mode == "index"
        if rng.random() < 0.7:
            mutate(folder, rng, serial)
        before = progress(db)
        proc = child(db, model, folder, mode)
        begun = time.perf_counter()
        span = sorted(durations)[len(durations) // 2]
        delay = rng.uniform(0.3, 1.0) * span
        if mode == "watch":  # change the folders under the watcher before the kill
            time.sleep(delay / 2)
            mutate(folder, rng, serial)
            delay /= 2
        elif aimed:
            wait_for_work(proc, db, before, limit=60.0)
            delay = rng.uniform(0.0, 0.05)
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            report.kills += 1
            report.aimed += aimed
            report.modes[mode] = report.modes.get(mode, 0) + 1
        else:
            if proc.returncode != 0:
                stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise AssertionError(f"child failed ({proc.returncode}): {stderr[-2000:]}")
            report.finished += 1
            durations = [*durations[-8:], time.perf_counter() - begun]
        finally:
            if proc.stderr:
                proc.stderr.close()
        pending = check_opens(db)
        report.checks += 1
        worked = progress(db) != before
        report.cut_short += proc.returncode == -signal.SIGKILL and worked and pending > 0
    proc = child(db, model, folder, "index")
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr.decode(errors="replace")[-2000:]
    check_opens(db)
    report.final = check_complete(db, folder, model_id)
    report.seconds = time.perf_counter() - started
    return report
