"""Searching for people with the built-in model, with and without the faces the second pass finds.

ImageNet has no person class, so the built-in model mixes a sentence about the people into the
vector of a photo where faces were found (``people_in_photo_weight``, engine/ingest/faces.py).
This benchmark types people queries ("a person", "a woman", ...) over the evaluation photos and
the distractors (1,019 photos, ``benchmarks/datasets/``), and ranks them twice in one run, on the
same stored vectors: as the model ships, and with the people sentence's weight at 0 (the model
without faces).

Which photos show people was judged by eye (``benchmarks/datasets/people_judgements.json``), for
every photo either ranking puts in a query's top 20 and every photo with a face found: the
judged pool, as in TREC. A photo outside the pool that enters a top 20 later (another model) is
counted as unjudged, never as right or wrong; ``--sheet`` draws the unjudged ones for judging
(numbered, with their list in a JSON file beside the drawings).

    python benchmarks/eval_people.py --data ~/photoseek-eval [--workdir W] [--sheet unjudged.png]

Prints precision at 10 and 20 per query and the detector's precision on the judged photos, and
writes benchmarks/results/eval_people.json.
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

from benchmarks.eval_retrieval import RESULTS, index_set, load_distractors, load_labels  # noqa: E402
from benchmarks.machine import describe  # noqa: E402
from benchmarks.workdir import WORKDIR_HELP, scratch_folder  # noqa: E402

QUERIES = ["a person", "people", "a man", "a woman", "a child", "a face", "a portrait", "a group of people"]
JUDGEMENTS = ROOT / "benchmarks" / "datasets" / "people_judgements.json"
DEPTH = 20


def load_judged() -> dict[str, bool]:
    """File -> whether it shows a person (a real one, or a drawing, toy or photo of one)."""
    if not JUDGEMENTS.is_file():
        return {}
    data = json.loads(JUDGEMENTS.read_text())
    return {**dict.fromkeys(data["people"], True), **dict.fromkeys(data["no_people"], False)}


def precision(top: list[str], judged: dict[str, bool], k: int) -> tuple[float, int]:
    """Share of the first ``k`` that show people, and how many of them were not judged."""
    first = top[:k]
    return sum(judged.get(f, False) for f in first) / k, sum(f not in judged for f in first)


def sheets(files: list[str], data: Path, out: Path, size: int = 160, cols: int = 8, per_sheet: int = 40) -> list[Path]:
    """The photos ``files``, numbered in order, ``per_sheet`` to a PNG (``out`` with -1, -2...),
    for judging by eye."""
    from PIL import Image, ImageDraw

    written = []
    for first in range(0, len(files), per_sheet):
        chunk = files[first : first + per_sheet]
        rows = (len(chunk) + cols - 1) // cols
        canvas = Image.new("RGB", (cols * size, rows * (size + 14)), "white")
        draw = ImageDraw.Draw(canvas)
        for n, file in enumerate(chunk):
            image = Image.open(data / file).convert("RGB")
            image.thumbnail((size, size))
            x, y = (n % cols) * size, (n // cols) * (size + 14)
            canvas.paste(image, (x, y))
            draw.text((x + 2, y + size), f"{first + n} {Path(file).stem[:20]}", fill="black")
        path = out.with_name(f"{out.stem}-{first // per_sheet + 1}{out.suffix}")
        canvas.save(path)
        written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder made by benchmarks/datasets/eval_photos.py")
    parser.add_argument("--workdir", type=Path, help=WORKDIR_HELP)
    parser.add_argument("--sheet", type=Path, help="draw the unjudged photos of the pool into this PNG")
    args = parser.parse_args()
    from engine.search.query import parse

    rows = load_labels(args.data, "all") + load_distractors(args.data)
    workdir = scratch_folder(args.workdir, "photoseek-people-")
    started = time.perf_counter()
    library, _, photos = index_set(args.data, rows, workdir, None, read_text=True)
    try:
        model = library.model
        weight = model.manifest.search_setting("people_in_photo_weight", 0.0)
        by_content: dict[int, list[str]] = {}
        for file, photo in photos.items():
            if photo.content_id is not None:
                by_content.setdefault(photo.content_id, []).append(file)
        ids = np.array(sorted(by_content), dtype=np.int64)
        faces = dict(library._conn.execute("SELECT content_id, faces FROM photo_faces").fetchall())
        with_faces = sorted(f for cid, n in faces.items() if n > 0 for f in by_content.get(cid, []))

        shown: dict[str, list[str]] = {}  # query -> the photos above its relevance floor

        def tops() -> dict[str, list[str]]:
            index = library.search_index()
            gallery = np.stack([index.vector(int(i)) for i in ids])
            out = {}
            for query in QUERIES:
                vector = library.query_vector(parse(query))
                scores = gallery @ vector
                out[query] = [by_content[int(ids[j])][0] for j in np.argsort(-scores, kind="stable")[:DEPTH]]
                above = np.flatnonzero(scores >= model.relevance_floor(vector))
                shown.setdefault(query, [by_content[int(ids[j])][0] for j in above])
            return out

        ranked = {"with faces": tops()}
        model.manifest.search["people_in_photo_weight"] = 0.0
        library.reload_index()
        ranked["without faces"] = tops()
        model.manifest.search["people_in_photo_weight"] = weight
    finally:
        library.close()

    judged = load_judged()
    pool = sorted({f for lists in ranked.values() for top in lists.values() for f in top} | set(with_faces))
    unjudged = [f for f in pool if f not in judged]
    if args.sheet and unjudged:
        drawn = sheets(unjudged, args.data, args.sheet)
        listed = args.sheet.with_suffix(".json")
        listed.write_text(json.dumps(unjudged, indent=0) + "\n")
        print(f"{len(unjudged)} unjudged photos drawn into {', '.join(map(str, drawn))} (list: {listed})")

    table = []
    print(f"{model.id}, people_in_photo_weight {weight}; {len(ids)} photos; pool {len(pool)}, unjudged {len(unjudged)}")
    print(f"{'query':20} {'variant':14} {'P@10':>5} {'P@20':>5} unjudged@20")
    for query in QUERIES:
        for variant, lists in ranked.items():
            p10, _ = precision(lists[query], judged, 10)
            p20, missing = precision(lists[query], judged, 20)
            table.append({"query": query, "variant": variant, "p10": p10, "p20": p20, "unjudged_in_20": missing})
            print(f"{query:20} {variant:14} {p10:5.2f} {p20:5.2f} {missing}")
    people_total = sum(judged.get(f, False) for f in photos)
    floors = {
        query: {"shown": len(files), "people shown": sum(judged.get(f, False) for f in files)}
        for query, files in shown.items()
    }
    print(f"shown above the relevance floor (with faces; {people_total} photos judged to show people):")
    for query, f in floors.items():
        print(f"  {query:20} {f['shown']:5} shown, {f['people shown']:4} of them judged to show people")
    for variant in ranked:
        mean10 = float(np.mean([r["p10"] for r in table if r["variant"] == variant]))
        mean20 = float(np.mean([r["p20"] for r in table if r["variant"] == variant]))
        print(f"{'mean':20} {variant:14} {mean10:5.2f} {mean20:5.2f}")
    detector = {
        "photos_with_faces": len(with_faces),
        "of_them_judged_people": sum(judged.get(f, False) for f in with_faces),
        "of_them_judged_no_people": sum(judged.get(f) is False for f in with_faces),
        "photos_judged_people": people_total,
        "of_them_with_faces": sum(f in set(with_faces) for f in photos if judged.get(f, False)),
    }
    print(f"detector: {detector}")
    sources = Counter("/".join(f.split("/")[:2]) for f in photos if judged.get(f, False))
    print(f"photos judged to show people, by source: {sources.most_common(5)}")
    result = {
        "model": model.id,
        "people_in_photo_weight": weight,
        "photos": len(ids),
        "pool": len(pool),
        "unjudged": len(unjudged),
        "queries": table,
        "relevance floor": floors,
        "detector": detector,
        "people_by_source": dict(sources.most_common()),
        "seconds": round(time.perf_counter() - started, 1),
        "machine": describe(),
        "command": "python benchmarks/eval_people.py --data DATA",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "eval_people.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
