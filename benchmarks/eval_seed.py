"""Train and evaluate the seed models on the generated world; write the paper-style tables.

    python benchmarks/eval_seed.py [--work DIR] [--images-per-split 8000 1000 1000]

Trains, side by side on the same cached features:

* the LSTM sentence encoder with the sum-of-hinges ranking loss (the paper's), and its two
  caption decoders (SC-NLM and LSTM, greedy and beam search);
* the same encoder with the max-of-hinges (hardest negative) loss;
* the bag-of-words (linear) sentence encoder, for the multimodal regularities probe;
* the paper's own image side, a linear map of the pooled frozen feature (``pooling="avg"``),
  with the LSTM decoder: the baseline the region encoder is measured against.

Prints the tables and writes them to docs/seed-models.md and benchmarks/results/eval_seed.json,
with training times and hardware. Targets (issue text): search and annotation R@10 >= 0.9 and
median rank <= 2, caption attribute accuracy >= 0.9, arithmetic probe precision@5 >= 0.8.
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

from engine.training.karpathy import load_karpathy  # noqa: E402
from engine.training.probe import arithmetic_probe  # noqa: E402
from engine.training.report import caption_table, retrieval_table  # noqa: E402
from engine.training.train import TrainConfig, Trained, embed_images, encode_texts, evaluate, run  # noqa: E402
from engine.training.world import COLOURS, generate  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "eval_seed.json"
DOC = ROOT / "docs" / "seed-models.md"

#: The seed model's settings (chosen on the validation split; see docs/seed-models.md).
SEED: dict = {}  # the TrainConfig defaults are the seed model's settings
POOLED = "LSTM, sum of hinges, pooled feature, sentences only (paper)"
SENTENCES_ONLY = "LSTM, sum of hinges, sentences only"


def progress(message: str, fraction: float) -> None:
    if "epoch" in message or fraction >= 1.0:
        print(f"  {message}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "photoseek-eval-seed")
    parser.add_argument("--images-per-split", type=int, nargs=3, default=(8000, 1000, 1000))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-doc", action="store_true", help="do not rewrite docs/seed-models.md")
    parser.add_argument("--render", action="store_true", help="only rewrite the tables from the results file")
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="RUN",
        help="train only these runs (by name) and merge them into the existing results file",
    )
    args = parser.parse_args()
    if args.render:
        results = json.loads(RESULTS.read_text())
        text = render_results(results)
        DOC.write_text(text + "\n")
        print(text)
        return

    started = time.perf_counter()
    n_train, n_val, n_test = args.images_per_split
    world_json = generate(args.work / "world", n_train=n_train, n_val=n_val, n_test=n_test, seed=args.seed)
    world_seconds = time.perf_counter() - started
    examples = load_karpathy(world_json)

    runs = {
        "LSTM, sum of hinges": TrainConfig(**SEED, seed=args.seed),
        SENTENCES_ONLY: TrainConfig(**SEED, seed=args.seed, phrase_weight=0.0, decoders=()),
        "LSTM, max of hinges": TrainConfig(**SEED, seed=args.seed, max_violation=True, decoders=()),
        "BoW (linear), sum of hinges": TrainConfig(**SEED, seed=args.seed, text_encoder="bow", decoders=()),
        POOLED: TrainConfig(
            **SEED,
            seed=args.seed,
            pooling="avg",
            phrase_weight=0.0,
            epochs=12,
            decoder_input="embedding",
            decoders=("lstm",),
        ),
    }
    results: dict = {"world": {"images": list(args.images_per_split), "seconds": round(world_seconds, 1)}, "runs": {}}
    if args.only:
        unknown = set(args.only) - set(runs)
        if unknown:
            parser.error(f"unknown runs {sorted(unknown)}; the runs are {list(runs)}")
        results = json.loads(RESULTS.read_text())
        runs = {name: config for name, config in runs.items() if name in args.only}
    for name, config in runs.items():
        print(f"{name}:", file=sys.stderr)
        run_started = time.perf_counter()
        trained = run(examples, config, args.work / "cache", progress)
        report = evaluate(trained, beams=(1, 3))
        images, _ = trained.test_embeddings()
        probe = probe_with_scale_from_validation(trained, images)
        if args.only:
            results.setdefault("reruns", {})[name] = round(time.perf_counter() - run_started, 1)
        results["runs"][name] = {
            "config": {k: v for k, v in vars(config).items() if k != "decoders"} | {"decoders": list(config.decoders)},
            "retrieval": report["retrieval"],
            "captions": report["captions"],
            "probe": probe,
            "seconds": {k: round(v, 1) for k, v in trained.seconds.items()},
            "hardware": trained.hardware,
            "history": trained.history,
        }
    if not args.only:
        results["total_seconds"] = round(time.perf_counter() - started, 1)

    text = render_results(results)
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    if not args.no_doc:
        DOC.write_text(text + "\n")


def caption_rows_of(run_name: str, captions: dict) -> dict:
    """The caption table's rows of one run (the pooled-feature baseline's decoder is renamed)."""
    if run_name != POOLED:
        return captions
    return {f"LSTM decoder, pooled feature/{key.split('/', 1)[1]}": v for key, v in captions.items()}


PROBE_SCALES = (0.2, 0.35, 0.5, 0.7, 1.0, 1.4, 2.0)


def probe_with_scale_from_validation(trained: Trained, test_images: np.ndarray) -> dict:
    """The arithmetic probe on the test split, with the word-difference scale that does best on
    the validation split (the paper's plain arithmetic is scale 1.0, also reported)."""

    def encode(texts: list[str]) -> np.ndarray:
        return encode_texts(trained.vse, trained.vocab, texts)

    val = trained.splits["val"]
    val_images = embed_images(trained.vse, val, trained.config.resolved_device())
    on_val = {sc: arithmetic_probe(val_images, val.examples, encode, COLOURS, scale=sc) for sc in PROBE_SCALES}
    best = max(PROBE_SCALES, key=lambda sc: on_val[sc]["precision_at_5"])
    test = trained.splits["test"].examples
    result = arithmetic_probe(test_images, test, encode, COLOURS, scale=best)
    result["plain"] = arithmetic_probe(test_images, test, encode, COLOURS, scale=1.0)["precision_at_5"]
    result["validation"] = {str(sc): r["precision_at_5"] for sc, r in on_val.items()}
    return result


def render_results(results: dict) -> str:
    runs = results["runs"]
    captions = {k: v for name, r in runs.items() for k, v in caption_rows_of(name, r["captions"]).items()}
    return render(
        results, {n: r["retrieval"] for n, r in runs.items()}, captions, {n: r["probe"] for n, r in runs.items()}
    )


def render(results: dict, retrieval_rows: dict, caption_rows: dict, probes: dict) -> str:
    main_run = results["runs"]["LSTM, sum of hinges"]
    seconds = main_run["seconds"]
    n_train, n_val, n_test = results["world"]["images"]
    lines = [
        "# Seed models: results",
        "",
        "Written by `python benchmarks/eval_seed.py` (do not edit by hand; see docs/training.md for the method).",
        "",
        f"Generated captioned world: {n_train} training, {n_val} validation and {n_test} test images, five "
        f"sentences each; the test images are never seen in training. Hardware: {main_run['hardware']}.",
        "",
        "## Image annotation and image search (test split, R@K in %)",
        "",
        retrieval_table(retrieval_rows),
        "",
        f"Chance: R@10 = {100 * 10 / n_test:.1f} % for search. Every run pairs each training image with "
        "noun phrases of its objects as well as its sentences (phrase weight 1; Niu et al. 2017), except "
        "those marked 'sentences only', which train on the sentences alone as Kiros et al. do.",
        "",
        "## Captions (test split)",
        "",
        caption_table(caption_rows),
        "",
        "'Colour, kind right' is the share of captions that name every object's colour and kind correctly "
        "and name no colour-kind pair that is not in the image; then the same for one-object and "
        "two-object images.",
        "",
        "## Multimodal regularities: image - colour + other colour (test split)",
        "",
        "| Sentence encoder | precision@5 | scale (validation) | plain (scale 1) | image alone | queries |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, probe in probes.items():
        lines.append(
            f"| {name} | {probe['precision_at_5']:.3f} | {probe['scale']:g} | {probe['plain']:.3f} "
            f"| {probe['baseline']:.3f} | {probe['queries']} |"
        )
    lines += [
        "",
        "The query is image + scale x (text(new colour) - text(old colour)), normalised; a hit is a "
        "test image holding an object of the new colour and the same kind. Word vectors are the "
        "sentence encoder's vectors of the one-word sentences.",
    ]
    lines += [
        "",
        "## Training time",
        "",
        "| Run | features | embedding | SC-NLM | LSTM decoder |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, run_ in results["runs"].items():
        s = run_["seconds"]
        cells = [f"{s.get(k, 0):.0f} s" if k in s else "-" for k in ("features", "embedding", "scnlm", "lstm")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Image features are computed once and cached; the world is drawn once and cached too. "
        + (
            "In this run both came from the cache of an earlier run (see docs/training.md for fresh figures). "
            if seconds["features"] < 5
            else f"Image features took {seconds['features']:.0f} s, the world {results['world']['seconds']:.0f} s. "
        )
        + f"Whole benchmark: {results['total_seconds']:.0f} s.",
    ]
    for name, secs in results.get("reruns", {}).items():
        lines += ["", f"The run '{name}' was trained again on its own (`--only`, {secs:.0f} s) after a fix."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
