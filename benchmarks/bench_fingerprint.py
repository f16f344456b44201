"""What the content fingerprint costs on large files (it is what lets a moved photo keep its
vectors without running a model).

Files up to 64 MiB are hashed whole with XXH3-128 (the indexer has read them anyway to decode
them); larger ones (RAW, TIFF scans) from their size and three 1 MiB samples. For comparison,
BLAKE2b of the whole file. Files are in the page cache (the indexer reads them once).

    python benchmarks/bench_fingerprint.py

Prints a table and writes benchmarks/results/bench_fingerprint.json.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"


def best_of(fn, runs: int = 5) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times) * 1e3


def main() -> None:
    from engine.ingest.decode import FULL_HASH_LIMIT, fingerprint

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mb in (5, 25, 60, 100, 400):
            path = Path(tmp) / f"f{mb}.bin"
            path.write_bytes(os.urandom(mb * 1_000_000))
            size = path.stat().st_size
            data = path.read_bytes()
            if size > FULL_HASH_LIMIT:
                ours = best_of(lambda: fingerprint(path=path, size=size))  # noqa: B023
                how = "size + 3 x 1 MiB samples"
            else:
                ours = best_of(lambda: fingerprint(data))  # noqa: B023
                how = "XXH3-128, whole file"
            blake = best_of(lambda: hashlib.blake2b(data, digest_size=16).digest())  # noqa: B023
            rows.append({"mb": mb, "method": how, "ms": ours, "blake2b_ms": blake})
            print(f"{mb:5d} MB  {how:26}  {ours:8.2f} ms   (BLAKE2b whole file {blake:8.1f} ms)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_fingerprint.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
