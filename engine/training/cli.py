"""``photoseek train``: train, evaluate and export the seed models.

    photoseek train --world DIR [--images-per-split 8000 1000 1000] [--export BUNDLE]
    photoseek train --karpathy dataset_flickr8k.json --images Flicker8k_Dataset [--export BUNDLE]

Needs the ``builtin`` extra (PyTorch and the packaged backbone weights) and, for caption
scores, ``pycocoevalcap`` (the ``train`` extra).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from engine import paths
from engine.training.options import POOLINGS

if TYPE_CHECKING:
    from engine.training.train import Trained


def add_arguments(p: argparse.ArgumentParser) -> None:
    data = p.add_mutually_exclusive_group(required=True)
    data.add_argument("--world", type=Path, metavar="DIR", help="generate (or reuse) the captioned world in DIR")
    data.add_argument("--karpathy", type=Path, metavar="JSON", help="a Karpathy split file (Flickr8k/30k, COCO)")
    p.add_argument("--images", type=Path, help="image folder for --karpathy (default: the JSON's folder)")
    p.add_argument(
        "--images-per-split", type=int, nargs=3, default=(8000, 1000, 1000), metavar=("TRAIN", "VAL", "TEST")
    )
    p.add_argument("--epochs", type=int, default=6, help="embedding epochs (default 6)")
    p.add_argument("--decoder-epochs", type=int, default=6, help="decoder epochs (default 6)")
    p.add_argument("--text-encoder", choices=("lstm", "bow"), default="lstm")
    p.add_argument("--max-violation", action="store_true", help="hardest-negative loss instead of the sum")
    p.add_argument("--embed-size", type=int, default=256, help="joint space size (default 256)")
    p.add_argument(
        "--phrase-weight",
        type=float,
        default=1.0,
        help="weight of the image-phrase pairs in the embedding's loss (default 1; 0: sentences only, "
        "the paper's). Phrases: a data set's 'phrases' lists, or the generated world's objects",
    )
    p.add_argument(
        "--pooling",
        choices=POOLINGS,
        default="regions",
        help="image feature: the backbone's stride-16 map read by a trained region encoder (default "
        "regions), or its pooled last map (avg: the paper's), plus quadrants and/or colour shares",
    )
    p.add_argument(
        "--decoder-input",
        choices=("embedding", "features"),
        default="features",
        help="the LSTM decoder reads the image features (default; attention over regions) or the joint-space vector",
    )
    p.add_argument("--decoders", default="lstm,scnlm", help="comma-separated: lstm, scnlm (default both)")
    p.add_argument("--backbone", default="efficientnet-lite0", choices=("efficientnet-lite0", "efficientnet-lite2"))
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", type=Path, help="cache for image features (default: the user cache folder)")
    p.add_argument("--export", type=Path, metavar="BUNDLE", help="write a model bundle here")
    p.add_argument("--report", type=Path, metavar="JSON", help="write the metrics here")


def _progress(message: str, fraction: float) -> None:
    end = "\n" if fraction >= 1.0 or "epoch" in message else "\r"
    print(f"  {message}", end=end, file=sys.stderr, flush=True)


def cmd_train(args: argparse.Namespace) -> int:
    from engine.training.karpathy import load_karpathy
    from engine.training.report import caption_table, retrieval_table
    from engine.training.train import TrainConfig, evaluate, run

    started = time.perf_counter()
    if args.world is not None:
        from engine.training.world import generate

        n_train, n_val, n_test = args.images_per_split
        print(f"generating the captioned world in {args.world} ...", file=sys.stderr)
        json_path = generate(args.world, n_train=n_train, n_val=n_val, n_test=n_test, seed=args.seed)
        examples = load_karpathy(json_path)
    else:
        examples = load_karpathy(args.karpathy, args.images)
    config = TrainConfig(
        backbone=args.backbone,
        pooling=args.pooling,
        decoder_input=args.decoder_input,
        embed_size=args.embed_size,
        text_encoder=args.text_encoder,
        max_violation=args.max_violation,
        phrase_weight=args.phrase_weight,
        epochs=args.epochs,
        decoder_epochs=args.decoder_epochs,
        decoders=tuple(d.strip() for d in args.decoders.split(",") if d.strip()),
        seed=args.seed,
        device=args.device,
    )
    work = args.work or paths.cache_dir() / "training"
    trained = run(examples, config, work, progress=_progress)
    report = evaluate(trained)
    val_images, val_sentences = _val_embeddings(trained)
    report["cutoff"] = cutoff_from_validation(val_images, val_sentences, trained.splits["val"].owner)
    report["seconds"] = trained.seconds
    report["hardware"] = trained.hardware
    print(
        retrieval_table(
            {
                f"{config.text_encoder.upper()} ({'max' if config.max_violation else 'sum'} of hinges)": report[
                    "retrieval"
                ]
            }
        )
    )
    print()
    print(caption_table(report["captions"]))
    print(f"\ntrained in {sum(trained.seconds.values()):.0f} s on {trained.hardware}")
    if args.export is not None:
        from engine.training.export import export_bundle

        metrics = {"cutoff": report["cutoff"], "test": report["retrieval"]}
        manifest = export_bundle(trained, args.export, metrics)
        diffs = manifest.raw["training"]["export_max_abs_diff"]
        print(f"exported {manifest.label} to {args.export} (ONNX vs PyTorch max abs diff {max(diffs.values()):.1g})")
    if args.report is not None:
        args.report.write_text(json.dumps(report, indent=1) + "\n")
    print(f"done in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return 0


def _val_embeddings(trained: Trained) -> tuple[np.ndarray, np.ndarray]:
    from engine.training.train import embed

    return embed(trained.vse, trained.splits["val"], trained.config.resolved_device())


def cutoff_from_validation(images: np.ndarray, sentences: np.ndarray, owner: np.ndarray, keep: float = 0.95) -> float:
    """The similarity above which ``keep`` of the validation sentences score their own image:
    the search cutoff, so an unrelated query shows "no photo matches" instead of junk."""
    own = np.einsum("md,md->m", sentences, images[owner])
    return round(float(np.quantile(own, 1.0 - keep)), 3)
