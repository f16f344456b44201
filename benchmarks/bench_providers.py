"""The same model on the CUDA and the CPU execution provider, side by side, on the same photos.

For each provider it reports inference photos/s on photos that are already decoded, and
end-to-end photos/s of a real index run (read, fingerprint, decode, preprocess, infer, write);
decoding alone is measured once with the pipeline's own decode pool. When decoding is slower
than inference, decoding is the bottleneck and a faster provider will not make indexing faster.

A provider that cannot be used is reported with the warning ONNX Runtime's fall-back produced
(for example "cuda: not usable: ... running on the CPU"); nothing is measured for it then.

Usage:
  python benchmarks/bench_providers.py --shape vit-b-32            # same-shaped random-weight ViT-B/32
  python benchmarks/bench_providers.py --model clip-vit-b32        # an installed bundle
  ... [--photos DIR | --synthetic 48 --megapixels 12] [--providers cuda,cpu] [--batch 16]
Needs onnxruntime-gpu with CUDA and cuDNN libraries for the CUDA provider. Writes
benchmarks/results/providers.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
from PIL import Image  # noqa: E402

from benchmarks.machine import describe  # noqa: E402
from engine.ingest.decode import decode_photo, read_photo_file  # noqa: E402
from engine.library import Library  # noqa: E402
from engine.models.registry import load_model, resolve  # noqa: E402
from engine.models.runtime import default_threads  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "providers.json"
DEVICE = {"cuda": "gpu", "cpu": "cpu"}


def synthetic_photos(folder: Path, count: int, megapixels: float) -> list[Path]:
    """Camera-sized JPEGs with gradients and noise (so that they compress like photos, not flat colour)."""
    folder.mkdir(parents=True, exist_ok=True)
    width = int((megapixels * 1e6 * 4 / 3) ** 0.5)
    height = width * 3 // 4
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width]
    out = []
    for i in range(count):
        base = np.stack([(x * (i + 1)) % 256, (y * 2 + i * 7) % 256, ((x + y) // 3) % 256], axis=-1)
        noise = rng.integers(-20, 21, base.shape)
        image = Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))
        path = folder / f"photo{i:03d}.jpg"
        image.save(path, quality=90)
        out.append(path)
    return out


def shape_bundle(name: str, work: Path) -> Path:
    """A same-shaped random-weight model, imported as a bundle (needs torch)."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    from benchmarks.model_shapes import SIGLIP_B_16, VIT_B_32, export_immich_clip
    from engine.models.importers import BundleInfo, import_folder

    shape = {"vit-b-32": VIT_B_32, "siglip-b-16": SIGLIP_B_16}[name]
    tok = Tokenizer(models.WordLevel({"<pad>": 0, "<unk>": 1, "photo": 2}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(work / "tok.json"))
    export_immich_clip(work / "src", shape, work / "tok.json", pad_token="<pad>")
    return import_folder(work / "src", BundleInfo(name), models_root=work / "models").root


def decode_rate(paths: list[Path], size: int, preprocess, workers: int) -> tuple[float, float, list[np.ndarray]]:
    """Photos/s of read + decode + preprocess on `workers` threads, and the median ms per photo."""

    def one(path: Path) -> tuple[float, np.ndarray]:
        t = time.perf_counter()
        data = read_photo_file(path, path.stat().st_size)
        tensor = preprocess([decode_photo(data, min_side=size).image])[0]
        return time.perf_counter() - t, tensor

    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        done = list(pool.map(one, paths))
    elapsed = time.perf_counter() - started
    return len(paths) / elapsed, statistics.median(d for d, _ in done) * 1000, [t for _, t in done]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", help="installed bundle id or folder")
    source.add_argument("--shape", choices=("vit-b-32", "siglip-b-16"), default="vit-b-32")
    parser.add_argument("--photos", type=Path, help="a folder of photos (default: synthetic ones)")
    parser.add_argument("--synthetic", type=int, default=48)
    parser.add_argument("--megapixels", type=float, default=12.0)
    parser.add_argument("--providers", default="cuda,cpu")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="photoseek-providers-") as tmp:
        work = Path(tmp)
        folder = Path(resolve(args.model)) if args.model else shape_bundle(args.shape, work)
        if args.photos:
            paths = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        else:
            print(f"writing {args.synthetic} synthetic {args.megapixels:g} MP photos ...", flush=True)
            paths = synthetic_photos(work / "photos", args.synthetic, args.megapixels)
        cpu_model = load_model(str(folder), device="cpu")
        size = cpu_model.image.preprocess.size
        decode_per_s, decode_ms, tensors = decode_rate(paths, size, cpu_model.image.preprocess_batch, args.workers)
        print(f"decode + preprocess: {decode_per_s:.1f} photos/s on {args.workers} threads ({decode_ms:.0f} ms each)")
        batch = np.stack(tensors)
        result: dict[str, object] = {
            "model": cpu_model.id,
            "photos": len(paths),
            "photo_source": str(args.photos) if args.photos else f"synthetic {args.megapixels:g} MP JPEG",
            "decode": {"photos_per_s": round(decode_per_s, 1), "ms_per_photo_median": round(decode_ms, 1)},
            "machine": {
                "cpus": os.cpu_count(),
                "threads": default_threads(),
                "processor": describe(),
                "onnxruntime": f"{ort.__version__} ({ort.get_device()})",
                "available_providers": ort.get_available_providers(),
            },
            "providers": {},
        }
        for name in [p.strip() for p in args.providers.split(",") if p.strip()]:
            model = load_model(str(folder), device=DEVICE[name])
            model.image.encode_tensor(batch[: args.batch])  # warm-up and session creation
            report = model.sessions.report
            if name == "cuda" and not report.on_gpu:
                print(f"{name}: not usable here: {report.warning}")
                result["providers"][name] = {"usable": False, "warning": report.warning, "active": report.active}  # type: ignore[index]
                continue
            started = time.perf_counter()
            for i in range(0, len(batch), args.batch):
                model.image.encode_tensor(batch[i : i + args.batch])
            infer_per_s = len(batch) / (time.perf_counter() - started)
            with Library(work / f"{name}.sqlite3", model=str(folder), device=DEVICE[name]) as library:
                library.add_root(paths[0].parent)
                index = library.sync(workers=args.workers, read_text=False).index  # indexing only, no OCR
            assert index is not None
            end_to_end = index.embedded / index.seconds if index.seconds else 0.0
            entry = {
                "usable": True,
                "active": report.active,
                "inference_photos_per_s": round(infer_per_s, 1),
                "end_to_end_photos_per_s": round(end_to_end, 1),
                "bottleneck": "decoding" if decode_per_s < infer_per_s else "inference",
            }
            print(f"{name}: {json.dumps(entry)}", flush=True)
            result["providers"][name] = entry  # type: ignore[index]
    result["measured_at"] = time.strftime("%Y-%m-%d %H:%M:%S")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
