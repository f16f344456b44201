"""The built-in model against a naive ConSE, on the same photos, in one run.

Issue 3 gives its target for scale against "a naive ConSE": the top 10 ImageNet classes of
EfficientNet-Lite0, their probabilities weighting MiniLM embeddings of "a photo of a {label}",
nothing else (no synonyms or everyday names, no temperature, no colours, no text read in the
photo, no faces). This builds that model with the built-in model's own builder
(``BuiltinConfig(top_k=10, temperature=1, ...)``) into a scratch folder, indexes the evaluation
set and the distractors with both models through the real engine, and ranks the split's photos
for their labels among the split, among all labelled photos and among those and the
distractors, as ``benchmarks/eval_retrieval.py`` does (a photo competes only with photos of
other labels). The difference in R@10 is paired (the same photos, hit or miss under each
model), with its standard error.

How hard the set is shows in the baseline's own figure: the issue quotes about 0.48 for the
naive ConSE "on such a set" among ~1,000 photos.

    python benchmarks/baseline_conse.py --data ~/photoseek-eval [--split test]

Prints the table and writes benchmarks/results/baseline_conse-SPLIT.json, which
``eval_retrieval.py --write-doc`` puts into docs/quality.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.eval_retrieval import (  # noqa: E402
    RESULTS,
    caption_names,
    class_ancestor_table,
    index_set,
    load_distractors,
    load_labels,
    ranks_among,
    split_of,
    summarise,
)
from benchmarks.machine import describe  # noqa: E402
from benchmarks.workdir import WORKDIR_HELP, scratch_folder  # noqa: E402

#: The issue's naive ConSE, in the built-in model's settings.
NAIVE = {
    "top_k": 10,
    "temperature": 1.0,
    "synonym_weight": 0.0,
    "everyday_weight": 0.0,
    "broad_weight": 0.0,
    "colour_weight": 0.0,
    "text_in_photo_weight": 0.0,
    "people_in_photo_weight": 0.0,
    "prompt": "a photo of {}.",  # the builder puts the article in: "a photo of a zebra."
}


def build_naive(target: Path) -> Path:
    from engine.models.builtin.build import BuiltinConfig, build_bundle

    if not (target / "model.json").is_file():
        build_bundle(target, BuiltinConfig(**NAIVE))  # type: ignore[arg-type]
    return target


def ranks_of(data: Path, rows: list[dict[str, str]], workdir: Path, model: str | None, split: str):  # type: ignore[no-untyped-def]
    """For each gallery (the split, the labelled photos, everything): file -> rank of the split's
    photos; the galleries' sizes; whether each labelled photo's caption names its object; and the
    model's id."""
    library, _, photos = index_set(data, rows, workdir, model, read_text=True)
    try:
        index = library.search_index()
        kept = [r for r in rows if r["file"] in photos and photos[r["file"]].content_id is not None]
        vectors = {r["file"]: index.vector(int(photos[r["file"]].content_id)) for r in kept}
        galleries = {
            "split": [r for r in kept if r["label"] and split_of(r["file"]) == split],
            "labelled": [r for r in kept if r["label"]],
            "all": kept,
        }
        # Does the photo's caption name its labelled object (or a kind of it)? The caption reads
        # the classifier's top classes, so this tells whether the classifier saw the object.
        table = class_ancestor_table()
        named = {
            r["file"]: caption_names(photos[r["file"]].caption or "", r["label"], table) for r in kept if r["label"]
        }
        out: dict[str, dict[str, int]] = {}
        for name, gallery_rows in galleries.items():
            gallery = np.stack([vectors[r["file"]] for r in gallery_rows])
            queries = [i for i, r in enumerate(gallery_rows) if r["label"] and split_of(r["file"]) == split]
            ranks, _, _ = ranks_among(library, gallery, gallery_rows, queries, {})
            out[name] = {gallery_rows[i]["file"]: rank for i, rank in zip(queries, ranks, strict=True)}
        return out, {name: len(g) for name, g in galleries.items()}, named, library.model.id
    finally:
        library.close()


def compare(ours: dict[str, int], naive: dict[str, int]) -> dict[str, object]:
    files = sorted(set(ours) & set(naive))
    a = np.array([ours[f] for f in files])
    b = np.array([naive[f] for f in files])
    diff = (a <= 10).astype(float) - (b <= 10).astype(float)
    return {
        "photos": len(files),
        "built-in": summarise(a.tolist(), [0.0]),
        "naive": summarise(b.tolist(), [0.0]),
        "R@10 difference": float(diff.mean()),
        "R@10 difference, standard error": float(diff.std(ddof=1) / np.sqrt(len(files))),
        "found by the built-in only": int((diff > 0).sum()),
        "found by the naive only": int((diff < 0).sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder made by benchmarks/datasets/eval_photos.py")
    parser.add_argument("--split", choices=("dev", "test"), default="test")
    parser.add_argument("--workdir", type=Path, help=WORKDIR_HELP)
    args = parser.parse_args()
    workdir = scratch_folder(args.workdir, "photoseek-baseline-")
    rows = load_labels(args.data, "all") + load_distractors(args.data)
    started = time.perf_counter()
    naive_bundle = build_naive(workdir / "naive-conse")
    ours, sizes, named, ours_id = ranks_of(args.data, rows, workdir / "built-in", None, args.split)
    naive, naive_sizes, _, _ = ranks_of(args.data, rows, workdir / "naive", str(naive_bundle), args.split)
    if sizes != naive_sizes:  # a photo read by one model and not the other: not the same test
        raise SystemExit(f"the two libraries hold different photos: {sizes} against {naive_sizes}")
    result: dict[str, object] = {
        "split": args.split,
        "model": ours_id,
        "naive settings": NAIVE,
        "gallery sizes": sizes,
        "results": {name: compare(ours[name], naive[name]) for name in ours},
        # Among the split's photos ranked with the distractors: how often the built-in model's
        # caption names the object of the photos it finds in the top 10 and of those it misses.
        "caption names object": {
            kind: float(np.mean([named[f] for f, rank in ours["all"].items() if (rank <= 10) == (kind == "found")]))
            for kind in ("found", "missed")
        },
        "seconds": round(time.perf_counter() - started, 1),
        "machine": describe(),
    }
    for name, figures in result["results"].items():  # type: ignore[attr-defined]
        size = sizes[name]
        o, n = figures["built-in"], figures["naive"]
        print(
            f"among {size:5} ({name:8}): built-in R@1 {o['R@1']:.3f} R@5 {o['R@5']:.3f} R@10 {o['R@10']:.3f} "
            f"med r {o['med r']:.0f} | naive R@1 {n['R@1']:.3f} R@5 {n['R@5']:.3f} R@10 {n['R@10']:.3f} "
            f"med r {n['med r']:.0f} | R@10 difference {figures['R@10 difference']:+.3f} "
            f"± {figures['R@10 difference, standard error']:.3f}"
        )
    names = result["caption names object"]
    print(
        f"built-in captions name the object: {names['found']:.2f} of the photos found, "  # type: ignore[index]
        f"{names['missed']:.2f} of those missed"  # type: ignore[index]
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"baseline_conse-{args.split}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written {out}")


if __name__ == "__main__":
    main()
