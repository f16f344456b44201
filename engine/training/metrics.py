"""Evaluation as in the paper: R@K and median rank in both directions, and caption scores.

Image annotation: for every image, the rank of its best-ranked reference sentence among all
test sentences. Image search: for every sentence, the rank of its image among all test
images. Ranks are 1-based; R@K is the share of queries whose rank is at most K.

Captions are scored with the COCO caption evaluation code (``pycocoevalcap``: BLEU-1..4 and
CIDEr-D) on lowercased word tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _summary(ranks: np.ndarray) -> dict[str, float]:
    return {
        "r1": float(np.mean(ranks <= 1)),
        "r5": float(np.mean(ranks <= 5)),
        "r10": float(np.mean(ranks <= 10)),
        "medr": float(np.median(ranks)),
        "meanr": float(np.mean(ranks)),
    }


def retrieval(images: np.ndarray, sentences: np.ndarray, owner: np.ndarray) -> dict[str, dict[str, float]]:
    """R@1/5/10 and median rank for annotation and search.

    ``images`` [N, D] and ``sentences`` [M, D] are unit vectors; ``owner`` [M] gives the image
    row of every sentence.
    """
    scores = images @ sentences.T  # [N, M]
    # Annotation: rank of the best of the image's own sentences.
    order = np.argsort(-scores, axis=1, kind="stable")
    is_own = owner[order] == np.arange(len(images))[:, None]
    annotation = is_own.argmax(axis=1) + 1
    # Search: rank of the sentence's image among all images.
    own_score = scores[owner, np.arange(len(owner))]
    search = (scores > own_score[None, :]).sum(axis=0) + 1
    return {"annotation": _summary(annotation), "search": _summary(search)}


def caption_scores(references: Sequence[Sequence[str]], candidates: Sequence[str]) -> dict[str, float]:
    """BLEU-1..4 and CIDEr-D of ``candidates`` against their reference sentences."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider

    from engine.training.vocab import tokenize

    gts = {i: [" ".join(tokenize(r)) for r in refs] for i, refs in enumerate(references)}
    res = {i: [" ".join(tokenize(c)) or "<empty>"] for i, c in enumerate(candidates)}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    cider, _ = Cider().compute_score(gts, res)
    return {"bleu1": bleu[0], "bleu2": bleu[1], "bleu3": bleu[2], "bleu4": bleu[3], "cider": float(cider)}
