"""The long fuzz run of the decoding entry point: ``decode_photo`` must only ever raise DecodeError.

    python benchmarks/fuzz_decode.py [--runs N] [--seed S]

Uses atheris (libFuzzer, coverage-guided over the Python code) when it is installed, seeded with
a valid file of every supported format; otherwise the same mutator as the test suite's bounded
run (tests/fuzz_decode.py) in a plain loop. Prints ``fuzz cases: N`` and exits non-zero on the
first input that breaks the contract (saved as crash-* / printed).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def run_atheris(runs: int, seed: int) -> int:
    import atheris

    with atheris.instrument_imports():
        from tests.fuzz_decode import check
    from tests.samples import seeds

    corpus = Path(tempfile.mkdtemp(prefix="photoseek-fuzz-"))
    for i, data in enumerate(seeds()):
        (corpus / f"seed-{i:02d}").write_bytes(data)

    def one(data: bytes) -> None:
        check(data)

    crashes = Path(tempfile.mkdtemp(prefix="photoseek-fuzz-crashes-"))
    args = [
        sys.argv[0],
        f"-runs={runs}",
        f"-seed={seed}",
        "-max_len=65536",
        "-rss_limit_mb=4096",
        "-timeout=20",
        f"-artifact_prefix={crashes}/",
        str(corpus),
    ]
    atheris.Setup(args, one)
    print(f"fuzz engine: atheris {getattr(atheris, '__version__', '')}".strip(), flush=True)
    atheris.Fuzz()  # exits the process when the runs are done
    return 0


def run_plain(runs: int, seed: int) -> int:
    from tests.fuzz_decode import check, mutate
    from tests.samples import seeds

    print("fuzz engine: random mutation (atheris not installed)", flush=True)
    rng = random.Random(seed)
    corpus = seeds()
    started = time.perf_counter()
    for i in range(runs):
        data = mutate(rng.choice(corpus), rng)
        try:
            check(data)
        except BaseException:
            crash = ROOT / f"crash-{i}"
            crash.write_bytes(data)
            print(f"contract broken by case {i}, saved as {crash}", flush=True)
            raise
    print(f"fuzz cases: {runs} in {time.perf_counter() - started:.1f}s", flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--plain", action="store_true", help="do not use atheris even if it is installed")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if not args.plain:
        try:
            import atheris  # noqa: F401
        except ImportError:
            pass
        else:
            return run_atheris(args.runs, args.seed)
    return run_plain(args.runs, args.seed)


if __name__ == "__main__":
    raise SystemExit(main())
