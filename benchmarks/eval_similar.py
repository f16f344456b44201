"""Photo-to-photo search ("find similar", ``like:PATH``) on real labelled photos.

The evaluation set (``benchmarks/datasets/eval_photos.py``) has labels with more than one photo
(two photos of a zebra, three of a beaker). Each such photo is a query; its rank is 1 + the
number of photos of *other* labels that score higher than its best-scoring partner (a photo of
the same label, itself left out). The gallery is every photo of the set and, with
``--distractors``, the unlabelled photos of ``benchmarks/datasets/distractor_photos.py`` too.

Side by side in one run, through the real engine's stored vectors:

* ``embedding``: the model's joint embedding with the text found in the photo mixed in, what
  ``like:`` compared before the model had vectors of its own for it;
* ``similar``: the model's photo-to-photo vectors (``image.similar_output``), what ``like:``
  alone compares now. A model without them has only the first row.

    python benchmarks/eval_similar.py --data ~/photoseek-eval [--distractors] [--model M]

Prints R@1, R@5, R@10 and median rank per split and writes benchmarks/results/eval_similar.json,
which ``eval_retrieval.py --write-doc`` puts into docs/quality.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.eval_retrieval import RESULTS, index_set, load_distractors, load_labels, split_of, summarise  # noqa: E402
from benchmarks.machine import describe  # noqa: E402
from benchmarks.workdir import WORKDIR_HELP, scratch_folder  # noqa: E402


def partner_ranks(vectors: np.ndarray, labels: list[str], queries: list[int]) -> list[int]:
    """For each query photo: 1 + how many photos of other labels score above its best partner."""
    out = []
    label_array = np.array(labels)
    for i in queries:
        scores = vectors @ vectors[i]
        partners = (label_array == labels[i]) & (np.arange(len(labels)) != i)
        best = scores[partners].max()
        out.append(1 + int(((label_array != labels[i]) & (scores > best)).sum()))
    return out


#: Floors of Find similar's scores tried (``search.similar_cutoff``).
FLOORS = (0.0, 0.1, 0.15, 0.2, 0.25, 0.3)


def floor_curve(vectors: np.ndarray, labels: list[str], queries: list[int]) -> list[dict[str, float]]:
    """For each floor: of the queries whose best partner is ranked in the top 10 (what R@10
    counts), the share whose partner scores at least the floor (so is shown); and how many
    photos a query shows (median, 90th percentile; itself left out)."""
    ranks = partner_ranks(vectors, labels, queries)
    label_array = np.array(labels)
    best, shown = [], []
    for i in queries:
        scores = vectors @ vectors[i]
        scores[i] = -np.inf
        best.append(float(scores[label_array == labels[i]].max()))
        shown.append(scores)
    top = [b for b, r in zip(best, ranks, strict=True) if r <= 10]
    curve = []
    for floor in FLOORS:
        counts = [int((s >= floor).sum()) for s in shown]
        curve.append(
            {
                "floor": floor,
                "top-10 partners": len(top),
                "top-10 partners shown": float(np.mean([b >= floor for b in top])) if top else 0.0,
                "shown p50": float(np.median(counts)),
                "shown p90": float(np.percentile(counts, 90)),
            }
        )
    return curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder made by benchmarks/datasets/eval_photos.py")
    parser.add_argument("--model", default=None, help="model id or bundle folder (default: built-in)")
    parser.add_argument("--distractors", action="store_true", help="add DATA/distractors.jsonl's photos")
    parser.add_argument("--workdir", type=Path, help=WORKDIR_HELP)
    args = parser.parse_args()
    rows = load_labels(args.data, "all") + (load_distractors(args.data) if args.distractors else [])
    workdir = scratch_folder(args.workdir, "photoseek-similar-")
    started = time.perf_counter()
    library, _, photos = index_set(args.data, rows, workdir, args.model, read_text=True)
    try:
        kept = [r for r in rows if r["file"] in photos and photos[r["file"]].content_id is not None]
        ids = [int(photos[r["file"]].content_id) for r in kept]  # type: ignore[arg-type]
        index = library.search_index()
        spaces = {"embedding": np.stack([index.vector(i) for i in ids])}
        alike = library.similar_index()
        if alike is not None:
            spaces["similar"] = np.stack([alike.vector(i) for i in ids])
        model = library.model.id
        similar_cutoff = library.model.similar_cutoff
        # The engine's own like: search agrees with the similar vectors' ranking (a check, not a figure).
        if alike is not None:
            probe = next(r for r in kept if r["label"])
            hits = library.search(f'like:"{photos[probe["file"]].path}"', limit=5).hits
            own = spaces["similar"] @ spaces["similar"][kept.index(probe)]
            assert abs(hits[0].score - float(np.sort(own)[-2])) < 1e-4, "like: does not rank by the similar vectors"
    finally:
        library.close()
    labels = [r["label"] for r in kept]
    count = Counter(lab for lab in labels if lab)
    result: dict[str, object] = {
        "model": model,
        "gallery": len(kept),
        "similar_cutoff": similar_cutoff,
        "results": {},
        "floors": {},
    }
    for split in ("dev", "test"):
        queries = [
            i for i, r in enumerate(kept) if r["label"] and count[r["label"]] > 1 and split_of(r["file"]) == split
        ]
        per_space = {}
        for name, vectors in spaces.items():
            figures = summarise(partner_ranks(vectors, labels, queries), [0.0])
            del figures["mAP"]
            per_space[name] = figures
            print(
                f"{split:4} {len(queries):3} queries among {len(kept):5}  {name:9}  R@1 {figures['R@1']:.3f}  "
                f"R@5 {figures['R@5']:.3f}  R@10 {figures['R@10']:.3f}  med r {figures['med r']:.0f}"
            )
        result["results"][split] = {"queries": len(queries), **per_space}  # type: ignore[index]
        if "similar" in spaces:
            curve = floor_curve(spaces["similar"], labels, queries)
            result["floors"][split] = curve  # type: ignore[index]
            for point in curve:
                mark = " (the model's)" if point["floor"] == similar_cutoff else ""
                print(
                    f"     floor {point['floor']:.2f}{mark}: "
                    f"top-10 partners shown {point['top-10 partners shown']:.2f} of {point['top-10 partners']}, "
                    f"photos shown p50 {point['shown p50']:.0f}  p90 {point['shown p90']:.0f}"
                )
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["machine"] = describe()
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "eval_similar.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written {out}")


if __name__ == "__main__":
    main()
