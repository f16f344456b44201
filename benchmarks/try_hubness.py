"""Would correcting for hubness rank the built-in model's photos better?

ConSE vectors are mixtures of the same 1,000 class vectors, so every photo's vector shares a
large common part (the mean cosine between two photos of the evaluation set is about 0.8), and
some photos — those whose classifier output is spread thin — sit near the centre and come up
for many queries ("hubs"; Radovanović et al. 2010, Dinu et al. 2015 for zero-shot learning).
This tries, through the real engine's vectors of every photo of the set:

* ``base``: the cosine the app ranks by;
* ``query - b × mean query``: the mean vector of reference queries (the first name of each of
  the 1,000 ImageNet classes, embedded as the app embeds a query) taken off every query, which
  lowers the photos that are close to every query (it changes only the query vector, so the
  index would stay as it is);
* ``centred photos``: the library's mean photo vector taken off every photo, then normalised
  again (the index would have to store other vectors);
* ``photos - b × sample mean``: a fixed centre instead, the mean vector of the app's bundled
  sample photos (which a model build could bake into the image graph), times b;
* ``CSLS k``: 2 × cosine minus the photo's mean cosine to its k nearest reference queries
  (Conneau et al. 2018; a bias per photo).

Variants are compared on the dev split (``--split dev``, the default); the test split is for a
variant that is taken, measured once.

    python benchmarks/try_hubness.py --data ~/photoseek-eval [--split dev] [--distractors]

Prints R@1, R@10, median rank and mAP of each variant, for the split's photos among the split
and among all photos of the set (with ``--distractors`` also among all photos of the set and
the unlabelled photos of benchmarks/datasets/distractor_photos.py, which then count in the
library's mean), and writes benchmarks/results/try_hubness-SPLIT.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.eval_retrieval import (  # noqa: E402
    RESULTS,
    index_set,
    load_distractors,
    load_labels,
    ranks_for,
    split_of,
    summarise,
)
from benchmarks.workdir import WORKDIR_HELP, scratch_folder  # noqa: E402

#: score(query vector, positions of photos in the set) -> their scores
Scorer = Callable[[np.ndarray, np.ndarray], np.ndarray]


def reference_queries() -> list[str]:
    classes = json.loads((ROOT / "resources" / "builtin" / "imagenet_hierarchy.json").read_text())
    return sorted({c["lemmas"][0].replace("_", " ") for c in classes})


def centred(vectors: np.ndarray, centre: np.ndarray) -> np.ndarray:
    out = vectors - centre
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def sample_mean(model: str | None, workdir: Path) -> np.ndarray:
    """The mean vector of the bundled sample photos (resources/sample_photos)."""
    from engine import paths
    from engine.library import Library

    library = Library(workdir / "samples.sqlite3", model=model, device="cpu")
    try:
        library.add_root(paths.SAMPLE_PHOTOS_DIR)
        library.sync(read_text=True)
        index = library.search_index()
        ids = [p.content_id for p in library.photos(limit=10**6) if p.content_id is not None]
        return np.stack([index.vector(int(c)) for c in ids]).mean(axis=0)
    finally:
        library.close()


def scorers(vectors: np.ndarray, references: np.ndarray, samples: np.ndarray) -> dict[str, Scorer]:
    mean_query = references.mean(axis=0)
    around_mean = centred(vectors, vectors.mean(axis=0))
    to_refs = np.sort(vectors @ references.T, axis=1)
    out: dict[str, Scorer] = {"base": lambda q, at: vectors[at] @ q}
    for b in (0.5, 1.0):
        out[f"query - {b:g} × mean query"] = lambda q, at, b=b: vectors[at] @ (q - b * mean_query)
    out["centred photos"] = lambda q, at: around_mean[at] @ q
    for b in (0.5, 0.75, 1.0):
        fixed = centred(vectors, b * samples)
        out[f"photos - {b:g} × sample mean"] = lambda q, at, f=fixed: f[at] @ q
    for k in (5, 10, 50):
        hubness = to_refs[:, -k:].mean(axis=1)
        out[f"CSLS {k}"] = lambda q, at, h=hubness: 2 * (vectors[at] @ q) - h[at]
    return out


def figures(score: Scorer, queries: dict[str, np.ndarray], labels: list[str], wanted: np.ndarray, gallery: np.ndarray):  # type: ignore[no-untyped-def]
    """R@K, median rank and mAP of the ``wanted`` photos, each ranked among the ``gallery``."""
    gallery_labels = [labels[i] for i in gallery]
    position = {int(i): n for n, i in enumerate(gallery)}
    rank_of: dict[int, int] = {}
    aps = []
    for label in sorted({labels[i] for i in wanted}):
        ranks, ap = ranks_for(score(queries[label], gallery), gallery_labels, label)
        spots = [n for n, lab in enumerate(gallery_labels) if lab == label]
        rank_of.update(zip(spots, ranks, strict=True))
        aps.append(ap)
    return summarise([rank_of[position[int(i)]] for i in wanted], aps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder made by benchmarks/datasets/eval_photos.py")
    parser.add_argument("--split", choices=("dev", "test"), default="dev")
    parser.add_argument("--model", default=None, help="model id or bundle folder (default: built-in)")
    parser.add_argument("--workdir", type=Path, help=WORKDIR_HELP)
    parser.add_argument("--distractors", action="store_true", help="add DATA/distractors.jsonl's photos")
    args = parser.parse_args()
    from engine.search.query import parse

    rows = load_labels(args.data, "all") + (load_distractors(args.data) if args.distractors else [])
    workdir = scratch_folder(args.workdir, "photoseek-hubness-")
    library, _, photos = index_set(args.data, rows, workdir, args.model, read_text=True)
    index = library.search_index()
    kept = [r for r in rows if r["file"] in photos and photos[r["file"]].content_id is not None]
    vectors = np.stack([index.vector(int(photos[r["file"]].content_id)) for r in kept])
    labels = [r["label"] for r in kept]
    queries = {label: library.query_vector(parse(label)) for label in set(labels) - {""}}
    references = np.stack([library.query_vector(parse(text)) for text in reference_queries()])
    model = library.model.id
    library.close()
    samples = sample_mean(args.model, workdir)

    everyone = np.arange(len(kept))
    labelled = np.array([i for i, lab in enumerate(labels) if lab])
    split = np.array([i for i, r in enumerate(kept) if r["label"] and split_of(r["file"]) == args.split])
    upper = np.triu_indices(len(vectors), 1)
    mean_cosine = float((vectors @ vectors.T)[upper].mean())
    print(f"{model}: {len(split)} {args.split} photos of {len(kept)}; mean cosine between two photos {mean_cosine:.3f}")
    results = {}
    for name, score in scorers(vectors, references, samples).items():
        within = figures(score, queries, labels, split, split)
        among = figures(score, queries, labels, split, labelled)
        results[name] = {"split": within, "among all": among}
        line = (
            f"{name:26} R@1 {within['R@1']:.3f}  R@10 {within['R@10']:.3f}  med r {within['med r']:4.1f}  "
            f"mAP {within['mAP']:.3f}  | among {len(labelled)}: R@10 {among['R@10']:.3f}  med r {among['med r']:4.1f}"
        )
        if args.distractors:
            more = results[name]["among all and distractors"] = figures(score, queries, labels, split, everyone)
            line += f"  | among {len(kept)}: R@1 {more['R@1']:.3f}  R@10 {more['R@10']:.3f}  med r {more['med r']:4.1f}"
        print(line)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"try_hubness-{args.split}.json"
    summary = {
        "model": model,
        "split": args.split,
        "photos": len(split),
        "set": len(labelled),
        "distractors": len(kept) - len(labelled),
        "mean cosine": mean_cosine,
    }
    out.write_text(json.dumps(summary | {"results": results}, indent=2) + "\n")
    print(f"written {out}")


if __name__ == "__main__":
    main()
