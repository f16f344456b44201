"""Speed of the catalogue's models on this CPU, measured with same-shaped random-weight graphs.

The real weights cannot be downloaded here, so each catalogue model is rebuilt with its real
architecture and sizes (benchmarks/model_shapes.py) and random weights, exported in the layout
its real export uses, imported through Photoseek's own importer and run through Photoseek's own
encoders and captioner — the same code path a pulled model takes. Cost depends on the shapes, not
the weight values, with one exception the results note: the captioner generates a fixed number of
tokens (the end token is never accepted), since random weights would stop at random lengths.

Measured:
* image: photos/s through ImageEncoder.encode (preprocessing of a decoded photo + inference), one
  photo per call as Immich's batch-of-one exports run (from the median time; the mean is kept too);
* text: milliseconds per query through TextEncoder.encode (no cache);
* captioner: seconds per photo (encoder + N decoding steps with the key/value cache), int8 as the
  catalogue's ViT-GPT2 export is (dynamic quantisation with onnxruntime.quantization).

Usage: python benchmarks/bench_model_shapes.py [--models vit-b-32,siglip-b-16,mclip,captioner]
Writes benchmarks/results/model_shapes.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
from PIL import Image  # noqa: E402
from tokenizers import Tokenizer, models, pre_tokenizers  # noqa: E402

from benchmarks.machine import describe  # noqa: E402
from benchmarks.model_shapes import (  # noqa: E402
    MCLIP_XLMR_B16PLUS,
    SIGLIP_B_16,
    VIT_B_32,
    VIT_GPT2,
    ClipShape,
    export_hf_captioner,
    export_immich_clip,
)
from engine.models.encoder_decoder import EncoderDecoderCaptioner  # noqa: E402
from engine.models.importers import BundleInfo, import_folder  # noqa: E402
from engine.models.registry import load_model  # noqa: E402
from engine.models.runtime import SessionFactory, default_threads  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "model_shapes.json"
SHAPES = {"vit-b-32": VIT_B_32, "siglip-b-16": SIGLIP_B_16, "mclip": MCLIP_XLMR_B16PLUS}
CATALOGUE_NAME = {"vit-b-32": "clip-vit-b32", "siglip-b-16": "siglip-b16", "mclip": "mclip-xlmr-b16plus"}
QUERIES = [
    "two dogs on a beach at sunset",
    "a red car parked in front of a house",
    "children playing football in the park",
    "a plate of pasta with tomato sauce",
    "snow on the mountains",
    "a birthday cake with candles",
]


def word_tokenizer(path: Path, vocab_size: int) -> Path:
    """A word tokenizer whose ids stay below the model's vocabulary (cost does not depend on which ids)."""
    words = sorted({w for q in QUERIES for w in q.split()})
    vocab = {w: i + 2 for i, w in enumerate(words)}
    vocab.update({"<pad>": 0, "<unk>": 1})
    assert len(vocab) < vocab_size
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(path))
    return path


def photos(n: int, size: tuple[int, int] = (640, 480)) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray((rng.random((size[1], size[0], 3)) * 255).astype(np.uint8)) for _ in range(n)]


def folder_mb(folder: Path, pattern: str = "*.onnx") -> float:
    return sum(p.stat().st_size for p in folder.rglob(pattern)) / 1e6


def bench_clip(key: str, shape: ClipShape, work: Path, n_images: int, n_queries: int) -> dict:
    src = work / key
    print(f"[{key}] exporting {shape.name} with random weights ...", flush=True)
    started = time.perf_counter()
    export_immich_clip(src, shape, word_tokenizer(work / f"{key}-tok.json", shape.vocab_size), pad_token="<pad>")
    export_s = time.perf_counter() - started
    size_mb = {"visual": folder_mb(src / "visual"), "textual": folder_mb(src / "textual")}
    manifest = import_folder(src, BundleInfo(key), models_root=work / "models")
    shutil.rmtree(src)
    model = load_model(str(manifest.root), device="cpu")
    images = photos(n_images)
    model.image.encode(images[:2])  # warm-up: session creation, first-run allocations
    times = []
    for image in images:
        t = time.perf_counter()
        model.image.encode([image])
        times.append(time.perf_counter() - t)
    model.text.encode(QUERIES[:1])
    text_ms = []
    for query in (QUERIES * 4)[:n_queries]:
        t = time.perf_counter()
        model.text.encode([query])
        text_ms.append((time.perf_counter() - t) * 1000)
    result = {
        "catalogue_name": CATALOGUE_NAME[key],
        "shape": shape.name,
        "embedding_size": shape.embed_dim,
        "image_size": shape.image_size,
        "context_length": shape.context_length,
        "onnx_fp32_mb": {k: round(v, 1) for k, v in size_mb.items()},
        # From the median: the machine is shared, and a neighbour's job inflates the mean.
        "image_photos_per_s": round(1 / statistics.median(times), 2),
        "image_photos_per_s_mean": round(len(times) / sum(times), 2),
        "image_ms_median": round(statistics.median(times) * 1000, 1),
        "text_ms_per_query_median": round(statistics.median(text_ms), 1),
        "images_measured": len(times),
        "queries_measured": len(text_ms),
        "providers": model.sessions.report.active,
        "export_s": round(export_s, 1),
    }
    print(f"[{key}] {json.dumps(result)}", flush=True)
    shutil.rmtree(manifest.root)
    return result


def bench_captioner(work: Path, n_images: int, tokens: int) -> dict:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src = work / "captioner"
    print("[captioner] exporting ViT-GPT2-shaped encoder-decoder with random weights ...", flush=True)
    tok = word_tokenizer(work / "cap-tok.json", VIT_GPT2.vocab_size)
    export_hf_captioner(src, VIT_GPT2, tok, eos_token_id=0, max_length=tokens + 1, forms=("plain", "with_past"))
    fp32_mb = folder_mb(src)
    print("[captioner] quantising to int8 (as the catalogue's export is) ...", flush=True)
    for name in ("encoder_model", "decoder_model", "decoder_with_past_model"):
        quantize_dynamic(src / f"{name}.onnx", src / f"{name}_quantized.onnx", weight_type=QuantType.QInt8)
        (src / f"{name}.onnx").unlink()
    int8_mb = folder_mb(src)
    int8_files = {p.name: round(p.stat().st_size / 1e6, 1) for p in sorted(src.glob("*_quantized.onnx"))}
    manifest = import_folder(src, BundleInfo("captioner"), models_root=work / "models", variant="quantized")
    shutil.rmtree(src)
    captioner = EncoderDecoderCaptioner(manifest, SessionFactory("cpu"))
    captioner.eos_id = -1  # never stop early: every photo gets exactly `tokens` decoding steps
    images = photos(n_images)
    captioner.generate(images[:1])  # warm-up
    encode_s, total_s = [], []
    for image in images:
        t = time.perf_counter()
        states = captioner.encode([image])
        encode_s.append(time.perf_counter() - t)
        captioner.greedy(states)
        total_s.append(time.perf_counter() - t)
    result = {
        "catalogue_name": "vit-gpt2-captioner",
        "shape": VIT_GPT2.name,
        "decoder_cache": manifest.captioner["decoder"]["cache"] if manifest.captioner else None,
        "onnx_fp32_mb": round(fp32_mb, 1),
        "onnx_int8_mb": round(int8_mb, 1),
        "onnx_int8_files_mb": int8_files,
        "tokens_per_caption": tokens,
        "s_per_photo_median": round(statistics.median(total_s), 3),
        "encoder_ms_median": round(statistics.median(encode_s) * 1000, 1),
        "ms_per_token_median": round((statistics.median(total_s) - statistics.median(encode_s)) * 1000 / tokens, 1),
        "photos_measured": len(total_s),
    }
    print(f"[captioner] {json.dumps(result)}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="vit-b-32,siglip-b-16,mclip,captioner")
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--queries", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=16, help="decoding steps per caption")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    chosen = [m.strip() for m in args.models.split(",") if m.strip()]
    results: dict[str, object] = {
        "machine": {
            "cpus": os.cpu_count(),
            "threads": default_threads(),
            "processor": describe(),
            "onnxruntime": ort.__version__,
            "python": platform.python_version(),
        },
        "note": "random weights, real shapes; run on the CPU provider; see the module docstring",
        "models": {},
    }
    with tempfile.TemporaryDirectory(prefix="photoseek-shapes-") as tmp:
        work = Path(tmp)
        for key in chosen:
            if key == "captioner":
                results["models"]["captioner"] = bench_captioner(work, max(3, args.images // 3), args.tokens)  # type: ignore[index]
            else:
                results["models"][key] = bench_clip(key, SHAPES[key], work, args.images, args.queries)  # type: ignore[index]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(args.output.read_text()) if args.output.exists() else {}
    previous.setdefault("models", {}).update(results["models"])  # type: ignore[arg-type]
    previous["machine"], previous["note"] = results["machine"], results["note"]
    previous["measured_at"] = time.strftime("%Y-%m-%d %H:%M:%S")
    args.output.write_text(json.dumps(previous, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
