"""The multimodal linguistic regularities of Kiros et al. (2014), section 5.3.

With linear encoders, arithmetic on joint-space vectors carries meaning across modalities:

    image(a blue star) - text("blue") + text("red")  lands near images of red stars.

The probe runs this for every one-group image of the generated world's test split and every
other colour, retrieves the five nearest test images (the query image excluded) and counts
those that hold an object of the new colour and the same kind. The baseline is the same
retrieval with the image vector alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from engine.training.data import Example


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def arithmetic_probe(
    images: np.ndarray,
    examples: Sequence[Example],
    encode_text: Callable[[list[str]], np.ndarray],
    colours: Sequence[str],
    k: int = 5,
    scale: float = 1.0,
) -> dict[str, float]:
    """Top-``k`` precision of ``image - colour + other colour`` (and of the image alone).

    ``scale`` multiplies the word difference (1.0: the paper's plain arithmetic; a larger
    value may be chosen on the validation split)."""
    pairs = [{(g["colour"], g["kind"]) for g in e.meta["objects"]} for e in examples]
    words = _normalise(encode_text(list(colours)))
    index = {c: n for n, c in enumerate(colours)}
    hits, baseline, queries = 0, 0, 0
    for i, example in enumerate(examples):
        groups = example.meta["objects"]
        if len(groups) != 1:
            continue
        colour, kind = groups[0]["colour"], groups[0]["kind"]
        for other in colours:
            if other == colour:
                continue
            wanted = (other, kind)
            if sum(wanted in p for p in pairs) < k:
                continue  # fewer than k such images exist: precision would be capped
            query = _normalise(images[i] + scale * (words[index[other]] - words[index[colour]]))
            for vector, counter in ((query, "arith"), (images[i], "base")):
                scores = images @ vector
                scores[i] = -np.inf
                top = np.argpartition(-scores, k)[:k]
                found = sum(wanted in pairs[j] for j in top)
                if counter == "arith":
                    hits += found
                else:
                    baseline += found
            queries += 1
    if queries == 0:
        return {"precision_at_5": float("nan"), "baseline": float("nan"), "queries": 0}
    return {
        "precision_at_5": hits / (k * queries),
        "baseline": baseline / (k * queries),
        "queries": queries,
        "scale": scale,
    }
