"""Could the second indexing pass read text faster without reading less?

The second pass reads text (RapidOCR) and looks for faces in a 640-pixel copy of each photo; on
camera photos it is the slowest part of indexing (``benchmarks/bench_index.py``, rows (e) and
(e')), and almost all of its time is RapidOCR's text *detection* network (PP-OCRv6 small, the
only one the package ships), which runs on every photo, text or not. This times the reader the
app uses against two faster ones and compares what they read:

* ``current``: the app's reader (``engine.ingest.textread.TextReader``), detection at 640 px;
* ``int8``: the same with the detection network quantized to 8 bits here (ONNX Runtime's static
  QDQ quantization after converting the graph to opset 13, weights per channel, activation
  ranges from the bundled sample photos), which is how the built-in model's image graph is made
  fast on the CPU;
* ``side 512``: the app's networks with detection at 512 px (0.64 of the pixels).

Every photo of the evaluation set and the distractors is read by ``current``; the variants read
the photos where it found text and a fixed sample of 120 where it found none, plus the sample
photos. There is no ground truth for the words, so the figures say how far a variant strays
from what the app reads now: the share of photos with the same words, of the current reader's
words the variant also reads (for photos where the current reader found text), of the
variant's words the current reader also reads, and the photos where one found text and the
other none. One thread per reader, as the app runs them (one reader per worker thread).

    python benchmarks/try_ocr_speed.py --data ~/photoseek-eval

Prints a table and writes benchmarks/results/try_ocr_speed.json (about 20 minutes on two cores).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.eval_retrieval import RESULTS, load_distractors, load_labels  # noqa: E402
from benchmarks.machine import describe  # noqa: E402
from benchmarks.workdir import WORKDIR_HELP, scratch_folder  # noqa: E402

WORD = re.compile(r"\w\w+")


def words(text: str) -> set[str]:
    return {w.lower() for w in WORD.findall(text)}


def det_model() -> Path:
    import rapidocr

    found = sorted((Path(rapidocr.__file__).parent / "models").glob("*det*.onnx"))
    if not found:
        raise SystemExit("no RapidOCR detection model installed")
    return found[0]


def quantize_det(source: Path, folder: Path) -> Path:
    """The detection network with 8-bit weights (per channel) and activations."""
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process
    from PIL import Image

    from engine import paths

    model = onnx.load(str(source))
    name = model.graph.input[0].name
    # Per-channel scales need DequantizeLinear's axis, which came with opset 13.
    onnx.save(version_converter.convert_version(model, 13), str(folder / "det-13.onnx"))
    quant_pre_process(str(folder / "det-13.onnx"), str(folder / "det-pre.onnx"), skip_symbolic_shape=True)

    def prepare(file: Path) -> np.ndarray:  # as RapidOCR prepares a photo for detection
        with Image.open(file) as opened:
            image = opened.convert("RGB")
        image.thumbnail((640, 640))
        w, h = (max(32, round(side / 32) * 32) for side in image.size)
        array = np.asarray(image.resize((w, h)), dtype=np.float32)[:, :, ::-1] / 255.0
        array = (array - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
        return array.transpose(2, 0, 1)[None].astype(np.float32)

    samples = [prepare(f) for f in sorted(paths.SAMPLE_PHOTOS_DIR.glob("*.jpg"))]

    class Samples(CalibrationDataReader):
        def __init__(self) -> None:
            self.rows = iter(samples)

        def get_next(self) -> dict[str, np.ndarray] | None:
            row = next(self.rows, None)
            return None if row is None else {name: row}

    target = folder / "det-int8.onnx"
    quantize_static(
        str(folder / "det-pre.onnx"),
        str(target),
        Samples(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    return target


def reader(**params: object) -> Callable[[object], str]:
    from engine.ingest.textread import TextReader

    current = TextReader()
    if params:
        from rapidocr import RapidOCR

        current._ocr = RapidOCR(
            params={
                "Global.log_level": "error",
                "Global.use_cls": False,
                "Det.limit_side_len": 640,
                "Det.limit_type": "max",
                "EngineConfig.onnxruntime.intra_op_num_threads": 1,
                "EngineConfig.onnxruntime.inter_op_num_threads": 1,
                **params,
            }
        )
    return lambda image: current.read(image).text  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder made by benchmarks/datasets/eval_photos.py")
    parser.add_argument("--workdir", type=Path, help=WORKDIR_HELP)
    args = parser.parse_args()
    from PIL import Image

    from engine import paths
    from engine.ingest.decode import DecodeError, decode_photo, read_photo_file
    from engine.ingest.textread import DETECT_SIDE

    workdir = scratch_folder(args.workdir, "photoseek-ocr-")
    files = [args.data / r["file"] for r in load_labels(args.data, "all") + load_distractors(args.data)]
    files += sorted(paths.SAMPLE_PHOTOS_DIR.glob("*.jpg"))
    images = {}
    for file in files:  # decoded and shrunk as the second pass does
        try:
            decoded = decode_photo(read_photo_file(file, file.stat().st_size), min_side=DETECT_SIDE * 3 // 4)
        except (DecodeError, OSError):
            continue
        image = decoded.image
        image.thumbnail((DETECT_SIDE, DETECT_SIDE), Image.Resampling.BILINEAR)
        images[str(file)] = image
    readers = {
        "current": reader(),
        "int8": reader(**{"Det.model_path": str(quantize_det(det_model(), workdir))}),
        "side 512": reader(**{"Det.limit_side_len": 512}),
    }
    read: dict[str, dict[str, str]] = {name: {} for name in readers}
    seconds: dict[str, list[float]] = {name: [] for name in readers}

    def run(name: str, keys: list[str]) -> None:
        for key in keys:
            started = time.perf_counter()
            read[name][key] = readers[name](images[key])
            seconds[name].append(time.perf_counter() - started)

    run("current", list(images))
    with_text = [k for k, t in read["current"].items() if t]
    samples = {str(f) for f in paths.SAMPLE_PHOTOS_DIR.glob("*.jpg")}
    without = sorted(k for k, t in read["current"].items() if not t and k not in samples)
    chosen = sorted(set(with_text) | set(random.Random(0).sample(without, min(120, len(without)))) | samples)
    seconds["current"] = [seconds["current"][list(images).index(k)] for k in chosen]  # the same photos
    for name in ("int8", "side 512"):
        run(name, chosen)
    rows = []
    for name in readers:
        same, kept, sound, lost, gained = 0, [], [], 0, 0
        for key in chosen:
            a, b = words(read["current"][key]), words(read[name][key])
            same += a == b
            kept += [len(a & b) / len(a)] if a else []
            sound += [len(a & b) / len(b)] if b else []
            lost += bool(a) and not b
            gained += bool(b) and not a
        rows.append(
            {
                "reader": name,
                "ms_mean": 1000 * float(np.mean(seconds[name])),
                "ms_p50": 1000 * float(np.median(seconds[name])),
                "same_words": same / len(chosen),
                "words_kept": float(np.mean(kept)),
                "words_also_current": float(np.mean(sound)) if sound else 1.0,
                "text_lost": lost,
                "text_gained": gained,
            }
        )
    print(f"{len(images)} photos read by the current reader, text in {len(with_text)}; compared on {len(chosen)}")
    print(f"{'reader':10} {'ms mean':>8} {'ms p50':>7} {'same':>5} {'kept':>5} {'also':>5} lost gained")
    for r in rows:
        print(
            f"{r['reader']:10} {r['ms_mean']:8.0f} {r['ms_p50']:7.0f} {r['same_words']:5.2f} {r['words_kept']:5.2f} "
            f"{r['words_also_current']:5.2f} {r['text_lost']:4} {r['text_gained']:6}"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {
        "photos": len(images),
        "with_text": len(with_text),
        "compared": len(chosen),
        "rows": rows,
        "machine": describe(),
        "command": "python benchmarks/try_ocr_speed.py --data DATA",
    }
    (RESULTS / "try_ocr_speed.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
