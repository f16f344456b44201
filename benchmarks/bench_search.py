"""Search latency and memory over large synthetic libraries.

For each size (100k, 1M vectors of the model's dimension) a library file is filled with random
unit vectors, then a fresh process opens it the way the app does and measures:

* resident memory of the loaded vectors (RSS after loading minus before);
* query latency p50/p95 of ``Library.search`` end to end (text encoding, scoring, exact
  re-ranking, reading result rows), with the query cache cold (every query new) and warm;
* the text encoder alone on new queries (p50/p95);
* recall@10 of the app's index against exact float32 brute force, and the brute-force latency
  for comparison;
* for a model with photo-to-photo vectors (the built-in one), Find similar (``like:PATH`` of a
  library photo) as well: the second index's load time and memory, its latency p50/p95, and
  the memory of both indexes together.

    python benchmarks/bench_search.py [--sizes 100000 1000000] [--queries 200]

Prints a table and writes benchmarks/results/bench_search.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
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
WORDS = (
    "dog cat car bicycle beach sunset mountain snow red blue green yellow boat tree flower city street "
    "night child person bird horse cup coffee table window house river bridge train plane sign"
).split()


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def unit_vectors(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def fill_library(path: Path, count: int, model_id: str, dim: int, similar_dim: int = 0, seed: int = 0) -> None:
    """A library with ``count`` photos whose vectors are random unit vectors (and photo-to-photo
    vectors of ``similar_dim``, stored as the indexer stores them, where that is not 0)."""
    from engine.ingest.pipeline import SIMILAR_STORED
    from engine.store.db import connect

    conn = connect(path)
    rng = np.random.default_rng(seed)
    now = time.time()
    with conn:
        conn.execute("INSERT INTO roots (id, path, added_at, online) VALUES (1, '/synthetic', ?, 1)", (now,))
    chunk = 20_000
    for start in range(0, count, chunk):
        n = min(chunk, count - start)
        vectors = unit_vectors(rng, n, dim)
        ids = range(start + 1, start + n + 1)
        with conn:
            conn.executemany(
                "INSERT INTO contents (id, fingerprint, created_at) VALUES (?, ?, ?)", ((i, f"fp{i}", now) for i in ids)
            )
            conn.executemany(
                "INSERT INTO photos (id, root_id, rel_path, size, mtime_ns, content_id, state) "
                "VALUES (?, 1, ?, 1, 1, ?, 'indexed')",
                ((i, f"{i // 1000:04d}/{i}.jpg", i) for i in ids),
            )
            kinds = [("image", vectors)]
            if similar_dim:
                kinds.append(("similar", unit_vectors(rng, n, similar_dim).astype(SIMILAR_STORED)))
            for kind, rows in kinds:
                conn.executemany(
                    "INSERT INTO embeddings (content_id, model_id, kind, region, vector) VALUES (?, ?, ?, 0, ?)",
                    ((i, model_id, kind, v.tobytes()) for i, v in zip(ids, rows, strict=True)),
                )
    conn.close()


def similar_size(model: object) -> int:
    """The size of the model's photo-to-photo vectors (0 for a model without them)."""
    from PIL import Image

    encoded = model.image.encode([Image.new("RGB", (256, 256), (90, 120, 150))])  # type: ignore[attr-defined]
    return 0 if encoded.similar is None else int(encoded.similar.shape[1])


def measure(db: Path, queries: int) -> dict[str, float]:
    """Runs in a fresh process: open, load, query."""
    from engine.library import Library

    library = Library(db, device="cpu")
    library.model.text.encode_query("warm up the text graph")
    before = rss_mb()
    started = time.perf_counter()
    index = library.search_index()
    load_s = time.perf_counter() - started
    after = rss_mb()
    rng = np.random.default_rng(1)
    texts = [" ".join(rng.choice(WORDS, size=3)) + f" {n}" for n in range(queries)]
    cold, warm = [], []
    for text in texts:
        t = time.perf_counter()
        library.search(text, limit=20, cutoff=-1)
        cold.append(time.perf_counter() - t)
    for text in texts:
        t = time.perf_counter()
        library.search(text, limit=20, cutoff=-1)
        warm.append(time.perf_counter() - t)
    # The text encoder alone on new queries.
    encode = []
    for n in range(200):
        t = time.perf_counter()
        library.model.text.encode_query(f"{texts[n % len(texts)]} encoder {n}")
        encode.append(time.perf_counter() - t)
    # Recall@10 against exact float32 brute force, and brute-force latency.
    chunks = list(library._vector_chunks())  # one read of the library for both
    exact = np.concatenate([v for _, v in chunks])
    ids = np.concatenate([i for i, _ in chunks])
    hits = 0
    brute = []
    sample = texts[:50]
    for text in sample:
        q = library.model.text.encode_query(text)
        t = time.perf_counter()
        truth = set(ids[np.argsort(-(exact @ q))[:10]].tolist())
        brute.append(time.perf_counter() - t)
        got = set(index.search(q, 10)[0].tolist())
        hits += len(truth & got)
    similar = measure_similar(library, queries) if library.model.image.graph.similar_output else {}
    return {
        **similar,
        "vectors": len(index),
        "storage": "4-bit + exact re-rank" if index.quantized else "float32 exact",
        "index_mb": index.nbytes / 1e6,
        "rss_delta_mb": after - before,
        "load_s": load_s,
        "cold_p50_ms": float(np.percentile(cold, 50) * 1e3),
        "cold_p95_ms": float(np.percentile(cold, 95) * 1e3),
        "warm_p50_ms": float(np.percentile(warm, 50) * 1e3),
        "warm_p95_ms": float(np.percentile(warm, 95) * 1e3),
        "recall_at_10": hits / (10 * len(sample)),
        "text_encoder_p50_ms": float(np.percentile(encode, 50) * 1e3),
        "text_encoder_p95_ms": float(np.percentile(encode, 95) * 1e3),
        "bruteforce_f32_p50_ms": float(np.percentile(brute, 50) * 1e3),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3,
    }


def measure_similar(library: object, queries: int) -> dict[str, float]:
    """Find similar through ``Library.search("like:PATH")``: the photo-to-photo index read on
    the first such search, then ``queries`` searches from random library photos."""
    before = rss_mb()
    started = time.perf_counter()
    index = library.similar_index()  # type: ignore[attr-defined]
    load_s = time.perf_counter() - started
    after = rss_mb()
    conn = sqlite3.connect(library.db_path)  # type: ignore[attr-defined]
    try:
        count = conn.execute("SELECT count(*) FROM photos").fetchone()[0]
        picked = np.random.default_rng(2).choice(np.arange(1, count + 1), size=queries, replace=False)
        paths = [
            "/synthetic/" + conn.execute("SELECT rel_path FROM photos WHERE id = ?", (int(i),)).fetchone()[0]
            for i in picked
        ]
    finally:
        conn.close()
    latency = []
    for path in paths:
        t = time.perf_counter()
        # cutoff -1: random vectors are unrelated, so the model's floor for Find similar would
        # leave nothing to list (the latency of listing is what is measured).
        results = library.search(f'like:"{path}"', limit=20, cutoff=-1)  # type: ignore[attr-defined]
        latency.append(time.perf_counter() - t)
        assert results.hits, results.message  # the photo was found and has neighbours
    return {
        "similar_vectors": len(index),
        "similar_index_mb": index.nbytes / 1e6,
        "similar_rss_delta_mb": after - before,
        "similar_load_s": load_s,
        "similar_p50_ms": float(np.percentile(latency, 50) * 1e3),
        "similar_p95_ms": float(np.percentile(latency, 95) * 1e3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--workdir", type=Path, help=WORKDIR_HELP)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.queries)))
        return

    from engine.models.registry import load_model

    model = load_model(None, device="cpu")
    similar_dim = similar_size(model)
    workdir = scratch_folder(args.workdir, "photoseek-bench-search-")
    rows = []
    for size in args.sizes:
        # the model's id is in the name: a library filled for another model has no vectors for this one
        safe_id = "".join(ch if ch.isalnum() or ch in "-." else "_" for ch in model.id)
        db = workdir / f"synthetic-{size}-{safe_id}{'-similar' if similar_dim else ''}.sqlite3"
        if not db.exists():
            print(f"filling a library with {size:,} vectors ...", file=sys.stderr)
            fill_library(db, size, model.id, model.manifest.embedding_size, similar_dim)
            sqlite3.connect(db).execute("PRAGMA wal_checkpoint(TRUNCATE)").close()
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(db), "--queries", str(args.queries)],
            check=True,
            capture_output=True,
            text=True,
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
        result["size"] = size
        rows.append(result)

    header = (
        f"{'vectors':>10} {'storage':>22} {'index MB':>9} {'RSS +MB':>8} {'load s':>7} "
        f"{'cold p50':>9} {'cold p95':>9} {'warm p50':>9} {'warm p95':>9} {'recall@10':>9} {'f32 bf':>7} "
        f"{'text p50':>9} {'text p95':>9}"
    )
    print(header)
    for r in rows:
        print(
            f"{r['vectors']:>10,} {r['storage']:>22} {r['index_mb']:>9.0f} {r['rss_delta_mb']:>8.0f} "
            f"{r['load_s']:>7.1f} "
            f"{r['cold_p50_ms']:>8.1f}ms {r['cold_p95_ms']:>7.1f}ms {r['warm_p50_ms']:>7.1f}ms "
            f"{r['warm_p95_ms']:>7.1f}ms {r['recall_at_10']:>9.3f} {r['bruteforce_f32_p50_ms']:>5.0f}ms "
            f"{r['text_encoder_p50_ms']:>7.1f}ms {r['text_encoder_p95_ms']:>7.1f}ms"
        )
    similar_rows = [r for r in rows if "similar_p50_ms" in r]
    if similar_rows:
        print(f"\nFind similar ({similar_dim}-d photo-to-photo vectors, `like:PATH` of a library photo):")
        print(
            f"{'vectors':>10} {'index MB':>9} {'RSS +MB':>8} {'load s':>7} {'p50':>9} {'p95':>9} {'both RSS +MB':>13}"
        )
        for r in similar_rows:
            print(
                f"{r['similar_vectors']:>10,} {r['similar_index_mb']:>9.0f} {r['similar_rss_delta_mb']:>8.0f} "
                f"{r['similar_load_s']:>7.1f} {r['similar_p50_ms']:>7.1f}ms {r['similar_p95_ms']:>7.1f}ms "
                f"{r['rss_delta_mb'] + r['similar_rss_delta_mb']:>13.0f}"
            )
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {"machine": describe(), "model": model.id}
    (RESULTS / "bench_search.json").write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    print(f"written {RESULTS / 'bench_search.json'}")


if __name__ == "__main__":
    main()
