"""The unit of training data: one image with its reference sentences.

Every data set loader (``karpathy.load_karpathy`` for Flickr8k, Flickr30k, COCO and the
generated world) returns a list of :class:`Example`; training, evaluation and the probes
only ever see this type.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

#: The splits an example can belong to (Karpathy's "restval" is read as "train").
SPLITS = ("train", "val", "test")

_WORD = re.compile(r"[a-z0-9']+")


@dataclass(frozen=True)
class Example:
    """One image and the sentences that describe it."""

    image_id: str  # unique within the data set
    path: Path  # the image file
    sentences: tuple[str, ...]  # raw reference sentences (usually 5)
    split: str  # "train" | "val" | "test"
    meta: dict = field(default_factory=dict, hash=False)  # the rest of the source entry


def tokenize(sentence: str) -> list[str]:
    """Lowercase words: runs of ``[a-z0-9']``; punctuation and everything else is dropped.

    >>> tokenize("Two small, red circles -- on a dog's bed.")
    ['two', 'small', 'red', 'circles', 'on', 'a', "dog's", 'bed']
    """
    return _WORD.findall(sentence.lower())
