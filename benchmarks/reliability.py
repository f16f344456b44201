"""Reliability figures: crashes survived, hostile inputs, fuzzing, and the read-only promise.

1. **SIGKILL loop**: index (and watch) a changing folder in child processes killed at random
   moments; after each kill the library must open with ``PRAGMA integrity_check`` = ok; after a
   final run every photo must be indexed exactly once (tests/crash_harness.py).
2. **Hostile inputs**: one folder with every class of odd file a photo collection holds; each
   must end up indexed, or failed / skipped with a reason, and the indexer must finish.
3. **Fuzzing** of the decoding entry point: mutated photos must only ever raise DecodeError.
4. **Read-only promise**: the folder's bytes, names and modification times are identical after
   indexing and watching.

    python benchmarks/reliability.py [--kills 100] [--fuzz 5000] [--many 100000]

Prints the table, writes benchmarks/results/reliability.json and docs/reliability.md, keeping
what is written by hand below the line ``HAND_WRITTEN`` there (findings, checks by hand).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.machine import describe  # noqa: E402
from benchmarks.workdir import WORKDIR_HELP, scratch_folder  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
DOC = ROOT / "docs" / "reliability.md"
HAND_WRITTEN = "<!-- Written by hand from here on; benchmarks/reliability.py keeps it. -->"


def kept_by_hand(doc: Path) -> list[str]:
    """The hand-written part of the document (from the marker on), or just the marker."""
    text = doc.read_text() if doc.exists() else ""
    at = text.find(HAND_WRITTEN)
    return text[at:].rstrip("\n").split("\n") if at >= 0 else [HAND_WRITTEN]


def _jpeg(image: Image.Image, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **kwargs)
    return buffer.getvalue()


def hostile_folder(folder: Path, many: int) -> dict[str, list[str]]:
    """Write one or more files of each class; returns class -> file names (relative)."""
    from pillow_heif import register_heif_opener

    from tests.samples import make_dng

    register_heif_opener()
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8))
    good = _jpeg(photo, quality=90)
    classes: dict[str, list[str]] = {}

    def put(kind: str, name: str, data: bytes) -> None:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        classes.setdefault(kind, []).append(name)

    put("zero-byte file", "empty.jpg", b"")
    put("truncated JPEG", "truncated.jpg", good[: len(good) // 2])
    png = io.BytesIO()
    photo.save(png, "PNG")
    put("truncated PNG", "truncated.png", png.getvalue()[: len(png.getvalue()) // 2])
    put("text file named .jpg", "notes.jpg", b"This is a shopping list, not a photo.\n" * 20)
    put("video file named .jpg", "clip.jpg", b"\x00\x00\x00\x18ftypmp42" + bytes(2000))
    bomb = io.BytesIO()
    Image.new("1", (30000, 30000)).save(bomb, "PNG")  # 900 megapixels, a few KB on disk
    put("decompression bomb", "bomb.png", bomb.getvalue())
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        put("EXIF orientation 1-8", f"orient/o{orientation}.jpg", _jpeg(photo, exif=exif.tobytes()))
    put("CMYK JPEG", "cmyk.jpg", _jpeg(photo.convert("CMYK")))
    sixteen = io.BytesIO()
    Image.fromarray(np.asarray(photo.convert("L"), dtype=np.uint16) * 257).save(sixteen, "PNG")
    put("16-bit PNG", "sixteen.png", sixteen.getvalue())
    frames = [Image.new("RGB", (64, 48), c) for c in ("red", "green", "blue")]
    for fmt, name in (("GIF", "anim.gif"), ("WEBP", "anim.webp")):
        out = io.BytesIO()
        frames[0].save(out, fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
        put(f"animated {fmt}", name, out.getvalue())
    heic = io.BytesIO()
    photo.save(heic, "HEIF")
    put("HEIC", "phone.heic", heic.getvalue())
    put("camera RAW (DNG with preview)", "camera.dng", make_dng())
    put("camera RAW (DNG without preview)", "bare.dng", make_dng(preview=False))
    loop = folder / "loop"
    loop.mkdir()
    (loop / "again").symlink_to(folder, target_is_directory=True)
    classes["symlink loop"] = ["loop/again"]
    locked = folder / "locked.jpg"
    locked.write_bytes(good)
    locked.chmod(0)
    classes["unreadable file (permission denied)"] = ["locked.jpg"]
    closed = folder / "closed"
    closed.mkdir()
    (closed / "inside.jpg").write_bytes(good)
    closed.chmod(0)
    classes["unreadable folder"] = ["closed/inside.jpg"]
    raw_name = os.fsencode(folder) + b"/caf\xe9-latin1.jpg"  # not valid UTF-8
    with open(raw_name, "wb") as handle:
        handle.write(good)
    classes["non-UTF-8 file name"] = ["caf\udce9-latin1.jpg"]
    put("very long file name", "l" * 250 + ".jpg", good)
    if many:
        crowd = folder / "crowd"
        crowd.mkdir()
        small = _jpeg(Image.new("RGB", (32, 24), (200, 100, 50)), quality=60)
        for n in range(many):
            (crowd / f"c{n:06d}.jpg").write_bytes(small)
        classes[f"{many:,} files in one folder"] = [f"crowd/c{n:06d}.jpg" for n in range(0, many, max(1, many // 10))]
    return classes


def snapshot(folder: Path) -> dict[str, tuple[int, int, str]]:
    """Name -> (size, mtime_ns, sha256) of every readable file; names of unreadable ones."""
    out: dict[str, tuple[int, int, str]] = {}
    for dirpath, dirnames, filenames in os.walk(os.fsencode(folder), followlinks=False):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            digest = ""
            if os.path.isfile(path) and not os.path.islink(path):
                try:
                    with open(path, "rb") as handle:
                        digest = hashlib.sha256(handle.read()).hexdigest()
                except OSError:
                    digest = "unreadable"
            out[os.fsdecode(path)] = (st.st_size, st.st_mtime_ns, digest)
    return out


def hostile_run(workdir: Path, model: Path, many: int) -> dict[str, object]:
    from engine.library import Library

    folder = workdir / "hostile"
    classes = hostile_folder(folder, many)
    before = snapshot(folder)
    started = time.perf_counter()
    with Library(workdir / "hostile.sqlite3", model=str(model), device="cpu") as library:
        library.add_root(folder)
        report = library.sync(read_text=False)
        service = library.watch(settle=0.5, debounce=0.2)
        time.sleep(3)
        service.stop()
        photos = {p.path.relative_to(folder).as_posix(): p for p in library.photos(limit=10**9)}
    seconds = time.perf_counter() - started
    after = snapshot(folder)
    rows = []
    for kind, names in classes.items():
        outcomes = []
        for name in names:
            photo = photos.get(name)
            if photo is None:
                outcomes.append("skipped")
            elif photo.state == "failed":
                outcomes.append(f"failed: {photo.error}")
            else:
                outcomes.append(photo.state)
        rows.append({"class": kind, "files": len(names), "outcomes": sorted(set(outcomes))})
    (folder / "closed").chmod(0o755)
    (folder / "locked.jpg").chmod(0o644)
    return {
        "classes": rows,
        "indexer_finished": report.index is not None,
        "seconds": seconds,
        "photos_in_library": len(photos),
        "tree_unchanged": before == after,
        "running_as_root": os.geteuid() == 0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--fuzz", type=int, default=5000)
    parser.add_argument("--many", type=int, default=100_000, help="files in one folder (0: skip)")
    parser.add_argument("--workdir", type=Path, help=WORKDIR_HELP)
    args = parser.parse_args()
    workdir = scratch_folder(args.workdir, "photoseek-reliability-")
    os.environ.setdefault("PHOTOSEEK_DATA_DIR", str(workdir / "data"))
    os.environ.setdefault("PHOTOSEEK_CACHE_DIR", str(workdir / "cache"))
    from engine.library import Library
    from tests.crash_harness import kill_loop
    from tests.fuzz_decode import check, mutate
    from tests.samples import seeds
    from tests.tiny_model import make_tiny_bundle

    model = make_tiny_bundle(workdir / "tiny-rgb")
    print("hostile inputs ...", flush=True)
    hostile = hostile_run(workdir, model, args.many)
    print(f"fuzzing {args.fuzz} cases ...", flush=True)
    rng = random.Random(1)
    corpus = seeds()
    fuzz_started = time.perf_counter()
    for _ in range(args.fuzz):
        check(mutate(rng.choice(corpus), rng))
    fuzz_s = time.perf_counter() - fuzz_started
    print(f"{args.kills} kills ...", flush=True)
    db = workdir / "crash.sqlite3"
    with Library(db, model=str(model), device="cpu") as library:
        model_id = library.model.id
    kills = kill_loop(db, model, workdir / "crash-photos", model_id, kills=args.kills, seed=7)
    final = kills.final
    result = {
        "machine": describe(),
        "kills": {
            "survived": kills.checks,
            "killed": kills.kills,
            "modes": kills.modes,
            "cut_short": kills.cut_short,
            "aimed": kills.aimed,
            "seconds": kills.seconds,
            **final,
        },
        "hostile": hostile,
        "fuzz": {"cases": args.fuzz, "seconds": fuzz_s},
        "photos_lost": final["lost"],
        "duplicates": final["duplicates"],
    }
    lines = [
        "# Reliability",
        "",
        f"`python benchmarks/reliability.py --kills {args.kills} --fuzz {args.fuzz} --many {args.many}` "
        f"({result['machine']}; the suite runs a smaller version: tests/test_crash.py, tests/test_fuzz.py).",
        "",
        "| figure | value |",
        "|---|---|",
        f"| SIGKILLs of the indexer / watcher at random moments | {kills.kills} ({kills.modes}) |",
        f"| runs after which the library opened with integrity_check = ok | {kills.checks} of "
        f"{kills.kills + kills.finished} ({kills.kills} killed, {kills.finished} finished first) |",
        f"| kills that landed mid-indexing (photos left pending) | {kills.cut_short} "
        f"({kills.aimed} timed from the child's first commit) |",
        f"| photos in the final library | {final['photos']} |",
        f"| photos lost | {final['lost']} |",
        f"| duplicate rows | {final['duplicates']} |",
        f"| orphan vectors / orphan contents | {final['orphan_vectors']} / {final['orphan_contents']} |",
        f"| bad-input classes tried | {len(hostile['classes'])} |",
        f"| decoder fuzz cases (only DecodeError allowed) | {args.fuzz} in {fuzz_s:.0f} s |",
        f"| photo folder unchanged (bytes, names, mtimes) | {'yes' if hostile['tree_unchanged'] else 'NO'} |",
        "",
        "## Hostile inputs",
        "",
        "Every file ends up indexed, or failed with the reason shown (`photoseek status`, the Problems",
        "view), or skipped by the walk; the indexer finished "
        f"({hostile['seconds']:.0f} s including {args.many:,} files in one folder and a watch).",
        "",
        "| class | files | outcome |",
        "|---|---|---|",
    ]
    for row in hostile["classes"]:
        lines.append(f"| {row['class']} | {row['files']} | {'; '.join(row['outcomes'])} |")
    if args.many:
        lines += [
            "",
            f"The {args.many:,} files in one folder share one small picture, so it is decoded once and",
            "reused by its fingerprint: that row tests the walk, the library and the watcher at that",
            "size, not decoding speed (benchmarks/bench_index.py measures that).",
        ]
    if hostile["running_as_root"]:
        lines += [
            "",
            "This run was made as root, for whom permission bits do not block reading: the",
            "'unreadable' rows then read fine. As a normal user they fail with \"permission denied\"",
            "(tests/test_concurrency.py simulates the refusal where the file is opened).",
        ]
    DOC.write_text("\n".join([*lines, "", *kept_by_hand(DOC)]) + "\n")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "reliability.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    print("\n".join(lines))
    return 0 if final["lost"] == 0 and final["duplicates"] == 0 and hostile["tree_unchanged"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
