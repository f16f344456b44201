"""Indexing throughput on 12-megapixel JPEGs, four ways, side by side in one run.

(a) reference: rclip's loop: full decode, a resize of the whole photo to the model's size
    (PIL ``resize``, as rclip's preprocessing does it), centre crop, one inference call per
    photo; (a') the same loop with Photoseek's faster resize (``reducing_gap``), which rclip
    does not have: a stricter reference, also reported;
(b) decode only, on all cores (reduced-size JPEG decoding + preprocessing, thread pool);
(c) inference only, on all cores (batches of preprocessed photos); (c') the same with the
    float image graph, where the model's CPU graph is an 8-bit copy of it;
(d) the real pipeline (``Library.sync``: read, fingerprint, decode pool, batched inference,
    captions, one writer thread committing to SQLite).

Decoding and inference share the cores, so the best the pipeline can do is
L = 1 / (1/b + 1/c). Targets on 2 cores: (d) >= 5 x (a) and (d) >= 0.8 x L.
The second pass, text reading and face finding, is measured separately, (e), and again reading
text only, (e'), on the same library right after: what finding faces costs.

    python benchmarks/bench_index.py [--photos 120] [--model builtin]

The photos are the bundled sample photos scaled up to 4000x3000 (each one made distinct so
none is skipped as a duplicate). Prints a table and writes benchmarks/results/bench_index.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.machine import describe  # noqa: E402
from benchmarks.workdir import WORKDIR_HELP, scratch_folder  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def make_photos(folder: Path, count: int) -> list[Path]:
    from engine import paths

    sources = sorted(p for p in paths.SAMPLE_PHOTOS_DIR.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not sources:
        raise SystemExit(f"no sample photos in {paths.SAMPLE_PHOTOS_DIR}")
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    rng = np.random.default_rng(0)
    for n in range(count):
        path = folder / f"photo-{n:04d}.jpg"
        out.append(path)
        if path.exists():
            continue
        base = ImageOps.exif_transpose(Image.open(sources[n % len(sources)])).convert("RGB")
        big = ImageOps.fit(base, (4000, 3000), Image.Resampling.BICUBIC)
        if n // len(sources) % 2:
            big = ImageOps.mirror(big)
        # Sensor-like noise gives the files the size of camera JPEGs (an upscaled photo is
        # unnaturally smooth, small and quick to decode) and makes every file distinct.
        noise = rng.normal(0.0, 6.0, size=(3000, 4000, 3))
        pixels = np.clip(np.asarray(big, dtype=np.float32) + noise, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(path, quality=92)
    return out


def rclip_loop(model, photos: list[Path]) -> float:  # type: ignore[no-untyped-def]
    """As rclip indexes (rclip/main.py, rclip/utils/preprocess.py): PIL opens and fully decodes
    each photo, resizes the whole of it so that its shorter side is the model's size (one PIL
    ``resize``, no reducing gap; with this model's interpolation, where rclip uses bicubic,
    which costs more), crops the centre, and runs the model on it."""
    from engine.models.preprocess import _RESAMPLE, to_tensor

    spec = model.image.preprocess
    resample = _RESAMPLE[spec.interpolation]
    started = time.perf_counter()
    for path in photos:
        image = Image.open(path).convert("RGB")
        w, h = image.size
        scale = spec.size / min(w, h)
        image = image.resize((max(spec.size, round(w * scale)), max(spec.size, round(h * scale))), resample)
        # to_tensor crops and normalises; its own resize finds the size already right (a copy)
        model.image.encode_tensor(to_tensor([image], spec))
    return len(photos) / (time.perf_counter() - started)


def reference_loop(model, photos: list[Path]) -> float:  # type: ignore[no-untyped-def]
    """(a'): rclip's loop with Photoseek's resize (a reducing gap: far cheaper on 12 MP)."""
    started = time.perf_counter()
    for path in photos:
        image = Image.open(path).convert("RGB")
        model.image.encode([image])
    return len(photos) / (time.perf_counter() - started)


def decode_only(model, photos: list[Path], workers: int) -> tuple[float, list[np.ndarray]]:  # type: ignore[no-untyped-def]
    from engine.ingest.decode import decode_photo

    size = model.image.preprocess.size

    def work(path: Path) -> np.ndarray:
        decoded = decode_photo(path.read_bytes(), min_side=size)
        return model.image.preprocess_batch([decoded.image])[0]

    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        tensors = list(pool.map(work, photos))
    return len(photos) / (time.perf_counter() - started), tensors


def inference_only(model, tensors: list[np.ndarray], batch: int = 16, image=None) -> float:  # type: ignore[no-untyped-def]
    image = image or model.image
    started = time.perf_counter()
    for i in range(0, len(tensors), batch):
        encoded = image.encode_tensor(np.stack(tensors[i : i + batch]))
        if model.captioner is not None:
            model.captioner.caption([], encoded)
    return len(tensors) / (time.perf_counter() - started)


def float_image_encoder(model):  # type: ignore[no-untyped-def]
    """The model's image encoder on its float graph, when the CPU runs an 8-bit one (else None)."""
    from dataclasses import replace

    from engine.models.encoders import ImageEncoder
    from engine.models.runtime import SessionFactory

    manifest = model.image.manifest
    if manifest.image.cpu_file is None:
        return None
    encoder = ImageEncoder(replace(manifest, image=replace(manifest.image, cpu_file=None)), SessionFactory("cpu"))
    encoder.encode([Image.new("RGB", (64, 64))])
    return encoder


def pipeline(model_name: str | None, folder: Path, workdir: Path, workers: int) -> tuple[float, float, float, int]:
    """Photos/s of (d) the pipeline, (e) the second pass (text and faces) and (e') the second
    pass reading text only, on the same library one after the other; and the photos with text."""
    from engine.ingest import faces
    from engine.library import Library

    db = workdir / f"bench-{time.time_ns()}.sqlite3"
    library = Library(db, model=model_name, device="cpu")
    library.add_root(folder)
    library.model.image.encode([Image.new("RGB", (64, 64))])  # sessions loaded before timing
    started = time.perf_counter()
    report = library.sync(read_text=False, workers=workers)
    seconds = time.perf_counter() - started
    assert report.index is not None and report.index.failed == 0, report.index
    photos_per_s = report.index.embedded / seconds
    started = time.perf_counter()
    found = library.read_text(workers=workers)
    text_rate = report.index.embedded / (time.perf_counter() - started)
    # The same pass again without the face detector (what it cost before faces were looked for).
    with library._conn as conn:
        for table in ("photo_text", "photo_faces"):
            conn.execute(f"DELETE FROM {table}")
        conn.execute("DELETE FROM embeddings WHERE kind = 'text'")
    available, faces.available = faces.available, lambda: False
    try:
        started = time.perf_counter()
        library.read_text(workers=workers)
        text_only_rate = report.index.embedded / (time.perf_counter() - started)
    finally:
        faces.available = available
    library.close()
    return photos_per_s, text_rate, text_only_rate, found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=120)
    parser.add_argument(
        "--reference-photos",
        type=int,
        default=None,
        help="photos for the slow reference loops (default: all, the same photos as the other variants)",
    )
    parser.add_argument("--model", default=None)
    parser.add_argument("--workdir", type=Path, help=WORKDIR_HELP)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each variant; the best counts")
    args = parser.parse_args()

    from engine.models.registry import load_model

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workdir = scratch_folder(args.workdir, "photoseek-bench-index-")
    photos = make_photos(workdir / "photos", args.photos)
    model = load_model(args.model, device="cpu")
    model.image.encode([Image.new("RGB", (64, 64))])  # sessions loaded before timing
    for path in photos:  # warm the page cache so every variant reads from memory
        path.read_bytes()

    # Other programs share the cores: every variant runs --repeat times, interleaved, and its
    # best run counts (the least disturbed one), the same rule for all four.
    float_image = float_image_encoder(model)
    a = a2 = b = c = c_float = d = e = e_text = 0.0
    found = 0
    for _ in range(args.repeat):
        a = max(a, rclip_loop(model, photos[: args.reference_photos]))
        a2 = max(a2, reference_loop(model, photos[: args.reference_photos]))
        b_run, tensors = decode_only(model, photos, cores)
        b = max(b, b_run)
        c = max(c, inference_only(model, tensors))
        if float_image is not None:
            c_float = max(c_float, inference_only(model, tensors, image=float_image))
        d_run, e_run, e_text_run, found = pipeline(args.model, workdir / "photos", workdir, cores)
        d, e, e_text = max(d, d_run), max(e, e_run), max(e_text, e_text_run)
    limit = 1.0 / (1.0 / b + 1.0 / c)
    rows = [
        ("(a) rclip's loop (full decode and resize, 1 photo per call)", a),
        ("(a') the same with Photoseek's resize", a2),
        ("(b) decode only, all cores", b),
        ("(c) inference only, all cores", c),
        *([("(c') the same with the float image graph (a GPU's)", c_float)] if c_float else []),
        ("    L = 1 / (1/b + 1/c)", limit),
        ("(d) the real pipeline", d),
        ("(e) second pass: text and faces (separate)", e),
        ("(e') the same, text only", e_text),
    ]
    mean_mb = sum(p.stat().st_size for p in photos) / len(photos) / 1e6
    print(f"{len(photos)} photos of 4000x3000 ({mean_mb:.1f} MB each on average), {cores} cores, model {model.id}")
    for name, value in rows:
        print(f"{name:55} {value:8.1f} photos/s")
    print(f"(d)/(a) = {d / a:.1f}   (target >= 5)   (d)/(a') = {d / a2:.1f}")
    print(f"(d)/L   = {d / limit:.2f}  (target >= 0.8)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {
        "photos": len(photos),
        "repeat": args.repeat,
        "mean_file_mb": mean_mb,
        "cores": cores,
        "machine": describe(),
        "model": model.id,
        "a_reference": a,
        "a_reference_fast_resize": a2,
        "b_decode": b,
        "c_inference": c,
        "c_inference_float_graph": c_float or None,
        "L": limit,
        "d_pipeline": d,
        "e_text_pass": e,
        "e_text_only_pass": e_text,
        "text_found": found,
        "d_over_a": d / a,
        "d_over_a_fast_resize": d / a2,
        "d_over_L": d / limit,
    }
    (RESULTS / "bench_index.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"written {RESULTS / 'bench_index.json'}")


if __name__ == "__main__":
    main()
