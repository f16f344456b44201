"""Captioners: turn a photo into a sentence.

The built-in model's captioner (``type: labels``) writes a plain sentence from the image
graph's own signals — ImageNet class probabilities and colour shares — and hedges when the
classifier is unsure, so it never claims what the model did not see. Captioners that generate
text with a decoder graph register themselves in :data:`CAPTIONER_TYPES`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Protocol

import numpy as np
from PIL import Image

from engine.errors import ModelError
from engine.models.builtin.concepts import article
from engine.models.encoders import EncodedImages
from engine.models.manifest import Manifest
from engine.models.runtime import SessionFactory


class Captioner(Protocol):
    id: str

    def caption(self, images: list[Image.Image], encoded: EncodedImages) -> list[str]:
        """One caption per image; ``encoded`` holds the image graph's outputs for the same batch."""
        ...


ACHROMATIC = frozenset({"black", "white", "grey"})


class LabelCaptioner:
    """Sentences from class probabilities and colour shares (no language model)."""

    CONFIDENT = 0.45  # a class this likely is named plainly
    LIKELY = 0.2  # below this, a class is only offered as "possibly"
    GROUP = 0.5  # an everyday name ("dog") whose classes together reach this is named
    COLOUR_SHARE = 0.18

    def __init__(self, manifest: Manifest) -> None:
        spec = manifest.captioner or {}
        labels = json.loads(manifest.path(spec.get("labels", "labels.json")).read_text(encoding="utf-8"))
        self.id = f"{manifest.label}:labels"
        self.names = [c["name"] for c in labels["classes"]]
        self.everyday = [c["everyday"][0] if c["everyday"] else None for c in labels["classes"]]
        self.colour_names = labels["colours"]
        groups = sorted({e for e in self.everyday if e})
        self._group_index = {g: i for i, g in enumerate(groups)}
        self._groups = groups
        member = np.zeros((len(self.names), len(groups)), dtype=np.float32)
        for k, e in enumerate(self.everyday):
            if e:
                member[k, self._group_index[e]] = 1.0
        self._member = member

    def subject(self, probs: np.ndarray) -> str:
        order = np.argsort(probs)[::-1]
        best, p_best = int(order[0]), float(probs[order[0]])
        second = int(order[1])
        group_mass = probs @ self._member
        g = int(np.argmax(group_mass))
        group, p_group = self._groups[g], float(group_mass[g])
        name = self.names[best]
        if p_best >= self.CONFIDENT:
            return article(name)
        if p_group >= self.GROUP and self.everyday[best] == group:
            if p_best >= self.LIKELY:
                return f"{article(group)}, probably {article(name)}"
            return article(group)
        if p_best >= self.LIKELY:
            # ImageNet has classes that share a name ("missile" twice): offer a different one.
            other = next((self.names[int(k)] for k in order[1:6] if self.names[int(k)] != name), None)
            if other is None or float(probs[second]) < self.LIKELY / 4:
                return f"possibly {article(name)}"
            return f"possibly {article(name)} or {article(other)}"
        return f"something the model cannot name with confidence (perhaps {article(name)})"

    def colours(self, shares: np.ndarray) -> str:
        # A coloured object on a grey background is what people notice: chromatic terms need
        # a smaller share of the photo than black, white and grey to be named.
        picked = [
            (float(s), name)
            for s, name in zip(shares, self.colour_names, strict=True)
            if s >= (self.COLOUR_SHARE if name in ACHROMATIC else self.COLOUR_SHARE / 1.5)
        ]
        picked.sort(reverse=True)
        names = [n for _, n in picked[:3]]
        if not names:
            return "many colours"
        if len(names) == 1:
            return f"mostly {names[0]}"
        return "mostly " + ", ".join(names[:-1]) + f" and {names[-1]}"

    def caption(self, images: list[Image.Image], encoded: EncodedImages) -> list[str]:
        probs = encoded.extras.get("probs")
        shares = encoded.extras.get("colours")
        if probs is None or shares is None:
            raise ModelError("the labels captioner needs the image graph's probs and colours outputs")
        out = []
        for p, s in zip(probs, shares, strict=True):
            subject = self.subject(p)
            out.append(f"{subject[0].upper()}{subject[1:]}; {self.colours(s)}.")
        return out


def _encoder_decoder(manifest: Manifest, factory: SessionFactory) -> Captioner:
    from engine.models.encoder_decoder import EncoderDecoderCaptioner

    return EncoderDecoderCaptioner(manifest, factory)


CaptionerFactory = Callable[[Manifest, SessionFactory], Captioner]
CAPTIONER_TYPES: dict[str, CaptionerFactory] = {
    "labels": lambda manifest, _factory: LabelCaptioner(manifest),
    "encoder-decoder": _encoder_decoder,
}


def load_captioner(manifest: Manifest, factory: SessionFactory) -> Captioner | None:
    """The captioner a bundle declares, or None when it has none (or names another bundle for it,
    which :mod:`engine.models.registry` resolves)."""
    if not manifest.captioner or "bundle" in manifest.captioner:
        return None
    kind = manifest.captioner.get("type")
    if kind not in CAPTIONER_TYPES:
        raise ModelError(f"model {manifest.id}: unknown captioner type {kind!r}")
    return CAPTIONER_TYPES[kind](manifest, factory)
