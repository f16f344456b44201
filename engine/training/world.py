"""A generated, captioned world of simple shapes, written to disk as a Karpathy split file.

Why: the seed models need a data set that can be made offline in seconds, with exact ground
truth. Every image is a muted background with one or two *groups* of shapes; a group is 1-3
objects of one kind, colour and size class. Five human-style sentences per image come from a
small grammar with synonyms, and every sentence names the colour and kind of every group, so a
sentence identifies its image well. Because the scene is known, generated captions can be
scored exactly (:func:`attributes_named`) and the embedding can be probed with word
arithmetic (``COLOURS``, ``KINDS``, :func:`describe`).

    images/{split}/{split}_{index:06d}.png   the pictures
    dataset_world.json                       Karpathy format; each entry also carries
                                             "objects" (the groups), "background" (a word)
                                             and "backdrop" (how it was drawn)

Everything is a pure function of (seed, split, index): image ``train_000042`` is the same
picture whatever ``n_train`` is, and :func:`render` redraws any entry from its JSON alone.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from PIL import Image, ImageDraw

from engine.training.data import tokenize

T = TypeVar("T")

# -----------------------------------------------------------------------------
# The vocabulary of the world

KINDS = ["circle", "square", "triangle", "star", "heart", "cross", "ring", "hexagon", "diamond", "crescent"]
COLOURS = ["red", "green", "blue", "yellow", "orange", "purple", "white", "black"]
SIZES = ["small", "large"]
POSITIONS = ["left", "right", "top", "bottom", "centre"]
BACKGROUNDS = ["light", "dark", "striped", "textured", "plain"]

#: (singular, plural) names of each kind; the first pair is the canonical name.
KIND_SYNONYMS: dict[str, list[tuple[str, str]]] = {
    "circle": [("circle", "circles"), ("disc", "discs"), ("round dot", "round dots")],
    "square": [("square", "squares"), ("box", "boxes")],
    "triangle": [("triangle", "triangles")],
    "star": [("star", "stars")],
    "heart": [("heart", "hearts")],
    "cross": [("cross", "crosses"), ("plus sign", "plus signs")],
    "ring": [("ring", "rings"), ("hoop", "hoops"), ("donut", "donuts")],
    "hexagon": [("hexagon", "hexagons")],
    "diamond": [("diamond", "diamonds"), ("rhombus", "rhombuses")],
    "crescent": [("crescent", "crescents"), ("crescent moon", "crescent moons")],
}
SIZE_WORDS = {"small": ["small", "little", "tiny"], "large": ["large", "big", "huge"]}
#: Count -> (number word, weight). "a" becomes "an" before a vowel.
NUMBER_WORDS = {
    1: [("a", 7), ("one", 2), ("a single", 1)],
    2: [("two", 8), ("a pair of", 2)],
    3: [("three", 8), ("a few", 2)],
}

#: Where a single group sits, said on its own ("on the left") or before a noun ("on the left side of").
_AT = {
    "left": ["on the left", "on the left side", "to the left", "in the left half"],
    "right": ["on the right", "on the right side", "to the right", "in the right half"],
    "top": ["at the top", "near the top", "in the upper half", "in the top part"],
    "bottom": ["at the bottom", "near the bottom", "in the lower half", "in the bottom part"],
    "centre": ["in the centre", "in the middle", "in the center"],
}
_AT_OF = {
    "left": ["on the left side of", "on the left of", "in the left half of"],
    "right": ["on the right side of", "on the right of", "in the right half of"],
    "top": ["at the top of", "near the top of", "in the upper part of"],
    "bottom": ["at the bottom of", "near the bottom of", "in the lower part of"],
    "centre": ["in the centre of", "in the middle of"],
}
_BACKGROUND_ADJECTIVES = {
    "light": ["light", "pale", "light coloured"],
    "dark": ["dark", "dark", "dark coloured"],
    "plain": ["plain", "simple", "neutral", "flat"],
    "striped": ["striped", "stripy"],
    "textured": ["textured", "grainy", "speckled", "noisy"],
}
_BACKGROUND_NOUNS = ["background", "background", "backdrop"]

# Sentence templates. {g}: a group ("two small red circles"), {be}: "is"/"are" agreeing with it,
# {p}: a position on its own, {pof}: a position before a noun, {b}: "a striped background".
_ONE_GROUP = {
    # (says where, says the background)
    (False, False): [
        "{g}",
        "a photo of {g}",
        "a picture of {g}",
        "an image showing {g}",
        "there {be} {g}",
        "{g} in the picture",
        "a drawing of {g}",
        "the picture shows {g}",
        "we can see {g}",
        "a simple image with {g}",
        "an illustration of {g}",
        "just {g}",
    ],
    (True, False): [
        "{g} {p}",
        "there {be} {g} {p}",
        "a photo of {g} {p}",
        "an image with {g} {p}",
        "{p} there {be} {g}",
        "{g} placed {p}",
        "{g} {pof} the picture",
        "{g} {pof} the frame",
        "a picture with {g} {p}",
    ],
    (False, True): [
        "{g} on {b}",
        "a photo of {g} on {b}",
        "{g} against {b}",
        "{b} with {g}",
        "a picture of {g} on {b}",
        "there {be} {g} on {b}",
        "{g} shown on {b}",
        "an image of {g} over {b}",
    ],
    (True, True): [
        "{g} {pof} {b}",
        "{b} with {g} {p}",
        "there {be} {g} {p}, on {b}",
        "a photo of {g} {p} against {b}",
        "on {b}, {g} {p}",
    ],
}
_TWO_GROUPS = {
    # says the background
    False: [
        "{g1} and {g2}",
        "a photo of {g1} and {g2}",
        "{g1} next to {g2}",
        "{g1} with {g2}",
        "an image showing {g1} together with {g2}",
        "there {be} {g1} and {g2}",
        "a picture with {g1} and {g2}",
        "{g1} as well as {g2}",
        "a drawing of {g1} and {g2}",
        "{g1} and {g2} in the same picture",
    ],
    True: [
        "{g1} and {g2} on {b}",
        "{b} with {g1} and {g2}",
        "a photo of {g1} and {g2} against {b}",
        "there {be} {g1} and {g2} on {b}",
        "{g1} next to {g2} on {b}",
        "a picture of {g1} with {g2} on {b}",
    ],
}
#: Two groups in opposite halves; {g1} is the group at the first position of the key.
_TWO_PLACED = {
    ("left", "right"): [
        "{g1} on the left and {g2} on the right",
        "{g1} to the left of {g2}",
        "{g2} to the right of {g1}",
        "{g1} on the left, {g2} on the right",
    ],
    ("top", "bottom"): [
        "{g1} at the top and {g2} at the bottom",
        "{g1} above {g2}",
        "{g2} below {g1}",
        "{g2} underneath {g1}",
    ],
}

# -----------------------------------------------------------------------------
# How things look

#: Object colours, well apart in hue and lightness; each object gets a small random shade of its colour.
PALETTE = {
    "red": (206, 36, 40),
    "green": (44, 156, 64),
    "blue": (38, 84, 206),
    "yellow": (240, 214, 40),
    "orange": (242, 124, 20),
    "purple": (128, 52, 168),
    "white": (246, 246, 246),
    "black": (22, 22, 24),
}
#: Muted, low-saturation background tones, never close to an object colour.
_TONES = {
    "light": [(214, 206, 188), (204, 204, 198), (190, 198, 208), (200, 192, 174), (196, 200, 190)],
    "mid": [(150, 142, 130), (140, 143, 147), (138, 146, 140), (156, 148, 150)],
    "dark": [(66, 72, 82), (78, 78, 80), (90, 84, 76), (70, 80, 94)],
}
_TONE_WORD = {"light": "light", "mid": "plain", "dark": "dark"}
#: Bounding-circle radius of one object, as a fraction of the image side.
_RADIUS = {"small": (0.045, 0.07), "large": (0.11, 0.16)}
#: Where a group's objects may lie (x0, y0, x1, y1 as fractions of the side); "anywhere" has no position word.
_REGIONS = {
    "left": (0.03, 0.03, 0.46, 0.97),
    "right": (0.54, 0.03, 0.97, 0.97),
    "top": (0.03, 0.03, 0.97, 0.46),
    "bottom": (0.03, 0.54, 0.97, 0.97),
    "centre": (0.2, 0.2, 0.8, 0.8),
    "anywhere": (0.03, 0.03, 0.97, 0.97),
}
_GAP = 0.015  # least space between two objects
_COUNTS = [(1, 45), (2, 30), (3, 25)]
#: Random rotation of each kind in degrees (0: rotating would not change it or would turn it into another kind).
_SPIN = {
    "circle": 0,
    "ring": 0,
    "square": 20,
    "diamond": 15,
    "cross": 15,
    "heart": 25,
    "triangle": 180,
    "star": 180,
    "hexagon": 180,
    "crescent": 180,
}
_SUPERSAMPLE = 4  # shapes are drawn 4x larger and scaled down: smooth edges


def _heart() -> list[tuple[float, float]]:
    """The classic heart curve, centred and scaled into the unit circle."""
    t = np.linspace(0, 2 * np.pi, 60, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    y = y - (y.max() + y.min()) / 2
    scale = 0.97 / np.sqrt(x**2 + y**2).max()
    return [(float(a), float(b)) for a, b in zip(x * scale, y * scale, strict=True)]


def _regular(n: int, radius: float, inner: float | None = None) -> list[tuple[float, float]]:
    """A regular n-gon (or an n-pointed star with ``inner`` radius), first point straight up."""
    points = []
    steps = 2 * n if inner is not None else n
    for i in range(steps):
        r = inner if inner is not None and i % 2 else radius
        a = 2 * math.pi * i / steps
        points.append((r * math.sin(a), -r * math.cos(a)))
    return points


def _cross(w: float, e: float) -> list[tuple[float, float]]:
    """A plus sign with arms of half-width ``w`` reaching ``e``: one arm's corners, turned four times."""
    points = [(-w, -e), (w, -e), (w, -w)]
    for _ in range(3):
        points += [(-y, x) for x, y in points[-3:]]
    return points


#: Unit-circle outlines of the polygon kinds (y points down, as in images).
_OUTLINES = {
    "square": [(-0.7, -0.7), (0.7, -0.7), (0.7, 0.7), (-0.7, 0.7)],
    "triangle": _regular(3, 1.0),
    "star": _regular(5, 1.0, inner=0.44),
    "hexagon": _regular(6, 0.95),
    "diamond": [(0.0, -1.0), (0.62, 0.0), (0.0, 1.0), (-0.62, 0.0)],
    "cross": _cross(0.3, 0.92),
    "heart": _heart(),
}


# -----------------------------------------------------------------------------
# Sampling a scene


def _pick(rng: np.random.Generator, items: Sequence[T]) -> T:
    return items[int(rng.integers(len(items)))]


def _weighted(rng: np.random.Generator, items: Sequence[tuple[T, int]]) -> T:
    weights = np.array([w for _, w in items], dtype=float)
    return items[int(rng.choice(len(items), p=weights / weights.sum()))][0]


def _shade(rng: np.random.Generator, rgb: Sequence[int], common: tuple[int, int], each: int) -> list[int]:
    """``rgb`` with one random shift for all channels plus a small one per channel."""
    shift = rng.integers(common[0], common[1] + 1)
    return [min(255, max(0, int(c + shift + rng.integers(-each, each + 1)))) for c in rgb]


def _sample_backdrop(rng: np.random.Generator) -> tuple[dict[str, Any], str]:
    """How the background is drawn, and the word for it."""
    style = _weighted(rng, [("plain", 30), ("gradient", 25), ("stripes", 20), ("noise", 25)])
    tone = _pick(rng, ["light", "dark"] if style == "gradient" else ["light", "mid", "dark"])
    rgb = _shade(rng, _pick(rng, _TONES[tone]), (-6, 6), 4)
    backdrop: dict[str, Any] = {"style": style, "rgb": rgb}
    if style == "plain":
        return backdrop, _TONE_WORD[tone]
    if style == "gradient":
        backdrop["rgb2"] = _shade(rng, _pick(rng, _TONES[tone]), (-22, 22), 4)
        backdrop["direction"] = _pick(rng, ["vertical", "horizontal"])
        return backdrop, _TONE_WORD[tone]
    if style == "stripes":
        step = int(rng.integers(18, 34)) * (1 if tone == "dark" else -1)
        backdrop["rgb2"] = [min(255, max(0, c + step)) for c in rgb]
        backdrop["direction"] = _pick(rng, ["vertical", "horizontal", "diagonal"])
        backdrop["period"] = round(float(rng.uniform(0.05, 0.14)), 4)
        return backdrop, "striped"
    backdrop["sigma"] = round(float(rng.uniform(8, 16)), 2)
    backdrop["seed"] = int(rng.integers(2**31))
    return backdrop, "textured"


def _place(
    rng: np.random.Generator, region: str, count: int, size: str, taken: list[list[float]]
) -> list[list[float]] | None:
    """``count`` objects ``[x, y, r, angle]`` inside ``region``, apart from each other and from ``taken``.

    None when they do not fit."""
    x0, y0, x1, y1 = _REGIONS[region]
    lo, hi = _RADIUS[size]
    base = rng.uniform(lo, hi)
    placed: list[list[float]] = []
    for _ in range(count):
        r = float(np.clip(base * rng.uniform(0.9, 1.1), lo, hi))
        if x1 - x0 < 2 * r or y1 - y0 < 2 * r:
            return None
        for _attempt in range(60):
            x, y = rng.uniform(x0 + r, x1 - r), rng.uniform(y0 + r, y1 - r)
            if all(math.hypot(x - o[0], y - o[1]) >= r + o[2] + _GAP for o in taken + placed):
                break
        else:
            return None
        placed.append([round(float(x), 4), round(float(y), 4), round(r, 4), 0.0])
    return placed


def sample_scene(rng: np.random.Generator, two_groups: float = 0.5) -> dict[str, Any]:
    """A random scene: ``{"objects": [group, ...], "background": word, "backdrop": {...}}``.

    A group is ``{"kind", "colour", "count", "size", "position", "rgb", "instances"}``;
    ``position`` is one of POSITIONS, or None when the groups are scattered anywhere, and
    ``instances`` holds ``[x, y, r, angle]`` per object (fractions of the image side; degrees).
    Two groups always differ in kind and in colour. The scene is all :func:`render` needs.
    """
    backdrop, word = _sample_backdrop(rng)
    n_groups = 2 if rng.random() < two_groups else 1
    kinds = [KINDS[i] for i in rng.choice(len(KINDS), n_groups, replace=False)]
    colours = [COLOURS[i] for i in rng.choice(len(COLOURS), n_groups, replace=False)]
    for _attempt in range(200):  # counts and sizes are redrawn until the objects fit
        if n_groups == 1:
            positions: list[str | None] = [_pick(rng, POSITIONS)]
        else:
            layout = _weighted(rng, [(None, 35), (("left", "right"), 35), (("top", "bottom"), 30)])
            positions = [None, None] if layout is None else list(layout)
            if rng.random() < 0.5:
                positions.reverse()
        groups: list[dict[str, Any]] = []
        taken: list[list[float]] = []
        for kind, colour, position in zip(kinds, colours, positions, strict=True):
            count, size = _weighted(rng, _COUNTS), _pick(rng, SIZES)
            instances = _place(rng, position or "anywhere", count, size, taken)
            if instances is None:
                break
            for instance in instances:
                instance[3] = round(float(rng.uniform(-_SPIN[kind], _SPIN[kind])), 1)
            taken += instances
            rgb = _shade(rng, PALETTE[colour], (-14, 10), 8)
            groups.append(dict(kind=kind, colour=colour, count=count, size=size, position=position, rgb=rgb))
            groups[-1]["instances"] = instances
        else:
            return {"objects": groups, "background": word, "backdrop": backdrop}
    raise RuntimeError("could not lay out a scene")  # not reached: one small object always fits


# -----------------------------------------------------------------------------
# Drawing a scene


def _backdrop_pixels(backdrop: dict[str, Any], size: int) -> np.ndarray:
    """The background as a ``size x size x 3`` float array."""
    c1 = np.array(backdrop["rgb"], dtype=np.float32)
    style = backdrop["style"]
    if style == "plain":
        return np.broadcast_to(c1, (size, size, 3)).copy()
    if style == "noise":
        rng = np.random.default_rng(backdrop["seed"])
        coarse = rng.normal(0, 1, (size // 8 + 2, size // 8 + 2)).astype(np.float32)
        blotches = np.asarray(Image.fromarray(coarse).resize((size, size), Image.Resampling.BILINEAR))
        grain = rng.normal(0, 1, (size, size)).astype(np.float32)
        return c1 + (backdrop["sigma"] * (0.8 * blotches + 0.6 * grain))[..., None]
    c2 = np.array(backdrop["rgb2"], dtype=np.float32)
    xs = np.arange(size, dtype=np.float32)[None, :] / size  # a row and a column: they broadcast to the square
    ys = np.arange(size, dtype=np.float32)[:, None] / size
    if style == "gradient":  # "vertical": the colour changes from top to bottom
        t = ys if backdrop["direction"] == "vertical" else xs
    else:  # stripes with soft edges
        u = {"vertical": xs, "horizontal": ys, "diagonal": (xs + ys) / math.sqrt(2)}[backdrop["direction"]]
        t = np.clip(np.sin(2 * np.pi * u / backdrop["period"]) * 3, -1, 1) * 0.5 + 0.5
    return np.broadcast_to(c1 + (c2 - c1) * t[..., None], (size, size, 3))


def _draw_object(
    canvas: Image.Image, kind: str, rgb: Sequence[int], x: float, y: float, r: float, angle: float
) -> None:
    """Paint one object (centre x, y and bounding radius r in pixels) onto the canvas, anti-aliased."""
    s = _SUPERSAMPLE
    left, top = math.floor(x - r) - 1, math.floor(y - r) - 1
    side = math.ceil(2 * r) + 3
    mask = Image.new("L", (side * s, side * s), 0)
    draw = ImageDraw.Draw(mask)
    cx, cy, R = (x - left) * s, (y - top) * s, r * s

    def disc(dx: float, dy: float, radius: float, fill: int) -> None:
        draw.ellipse([cx + dx - radius, cy + dy - radius, cx + dx + radius, cy + dy + radius], fill=fill)

    if kind == "circle":
        disc(0, 0, 0.92 * R, 255)
    elif kind == "ring":
        disc(0, 0, 0.95 * R, 255)
        disc(0, 0, 0.55 * R, 0)
    elif kind == "crescent":
        a = math.radians(angle)
        disc(0, 0, 0.95 * R, 255)
        disc(0.45 * R * math.cos(a), 0.45 * R * math.sin(a), 0.8 * R, 0)
    else:
        cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        draw.polygon(
            [(cx + R * (px * cos - py * sin), cy + R * (px * sin + py * cos)) for px, py in _OUTLINES[kind]], fill=255
        )
    mask = mask.resize((side, side), Image.Resampling.BOX)
    canvas.paste(tuple(rgb), (left, top, left + side, top + side), mask)


def render(scene: dict[str, Any], size: int = 224) -> Image.Image:
    """The RGB picture of a scene (as made by :func:`sample_scene` or read back from the JSON)."""
    pixels = _backdrop_pixels(scene["backdrop"], size)
    canvas = Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8))
    for group in scene["objects"]:
        for x, y, r, angle in group["instances"]:
            _draw_object(canvas, group["kind"], group["rgb"], x * size, y * size, r * size, angle)
    return canvas


# -----------------------------------------------------------------------------
# Sentences


def _article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _noun_phrase(group: dict[str, Any], rng: np.random.Generator | None, *, size: bool, count: bool) -> str:
    """A group in words: "two small red circles", "an orange crescent moon", "discs"...

    ``rng=None`` gives the canonical words."""

    def choose(items: Sequence[T]) -> T:
        return items[0] if rng is None else _pick(rng, items)

    n = group["count"]
    singular, plural = choose(KIND_SYNONYMS[group["kind"]])
    colour = group["colour"]
    if rng is not None and colour not in ("white", "black") and rng.random() < 0.06:
        colour = "bright " + colour
    words = ([choose(SIZE_WORDS[group["size"]])] if size else []) + [colour, plural if n > 1 else singular]
    phrase = " ".join(words)
    if n > 1 and not count:
        return phrase
    number = NUMBER_WORDS[n][0][0] if rng is None else _weighted(rng, NUMBER_WORDS[n])
    if number == "a":
        return _article(phrase)
    return f"{number} {phrase}"


def object_phrases(scene: dict[str, Any], rng: np.random.Generator, wordings: int = 4) -> list[tuple[str, str]]:
    """Noun phrases for every group of a scene, ``wordings`` each ("a red star", "two small red
    stars", "red pentagrams"...), each with its group's key "colour kind": two phrases with one
    key describe the same thing, whatever their words."""
    return [
        (
            _noun_phrase(group, rng, size=bool(rng.random() < 0.5), count=bool(rng.random() < 0.6)),
            f"{group['colour']} {group['kind']}",
        )
        for group in scene["objects"]
        for _ in range(wordings)
    ]


def _background_phrase(word: str, rng: np.random.Generator | None) -> str:
    if rng is None:
        return f"a {word} background"
    return _article(f"{_pick(rng, _BACKGROUND_ADJECTIVES[word])} {_pick(rng, _BACKGROUND_NOUNS)}")


def _sentence(
    scene: dict[str, Any], rng: np.random.Generator, *, size: bool, count: bool, where: bool, bg: bool
) -> str:
    """One sentence about the scene; the flags say which optional facts it mentions."""
    groups = scene["objects"]
    phrases = [_noun_phrase(g, rng, size=size, count=count) for g in groups]
    background = _background_phrase(scene["background"], rng) if bg else ""
    if len(groups) == 1:
        position = groups[0]["position"] if where else None
        template = _pick(rng, _ONE_GROUP[(position is not None, bg)])
        at = _pick(rng, _AT[position]) if position else ""
        at_of = _pick(rng, _AT_OF[position]) if position else ""
        be = "are" if groups[0]["count"] > 1 else "is"
        text = template.format(g=phrases[0], be=be, p=at, pof=at_of, b=background)
    else:
        order = [0, 1]
        positions = tuple(g["position"] for g in groups)
        if where and positions[0] is not None:
            order = [0, 1] if positions in _TWO_PLACED else [1, 0]
            template = _pick(rng, _TWO_PLACED[(positions[order[0]], positions[order[1]])])
            template += ", on {b}" if bg else ""
        else:
            template = _pick(rng, _TWO_GROUPS[bg])
            if rng.random() < 0.5:
                order = [1, 0]
        g1, g2 = (phrases[i] for i in order)
        be = "are" if groups[order[0]]["count"] > 1 else "is"
        text = template.format(g1=g1, g2=g2, be=be, b=background)
    if rng.random() < 0.5:
        text = text[0].upper() + text[1:]
    if rng.random() < 0.3:
        text += "."
    return text


def _mentions(rng: np.random.Generator, n: int, share: float, possible: bool = True) -> list[bool]:
    """Which of n sentences mention a fact: about ``share`` of them, at least one and (for n > 1) not all."""
    if not possible:
        return [False] * n
    flags = [bool(rng.random() < share) for _ in range(n)]
    if not any(flags):
        flags[int(rng.integers(n))] = True
    if all(flags) and n > 1:
        flags[int(rng.integers(n))] = False
    return flags


def make_sentences(scene: dict[str, Any], rng: np.random.Generator, n: int = 5) -> list[str]:
    """``n`` different sentences about a scene. Each names the colour and kind of every group;
    size, count, position and background are each mentioned in some of them, not all."""
    groups = scene["objects"]
    placed = all(g["position"] is not None for g in groups)
    plural = any(g["count"] > 1 for g in groups)
    size = _mentions(rng, n, 0.5)
    count = _mentions(rng, n, 0.6, possible=plural)
    where = _mentions(rng, n, 0.4, possible=placed)
    bg = _mentions(rng, n, 0.4)
    sentences: list[str] = []
    seen: set[tuple[str, ...]] = set()
    for i in range(n):
        for _attempt in range(50):
            text = _sentence(scene, rng, size=size[i], count=count[i] or not plural, where=where[i], bg=bg[i])
            if tuple(tokenize(text)) not in seen:
                break
        seen.add(tuple(tokenize(text)))
        sentences.append(text)
    return sentences


def describe(scene: dict[str, Any], *, size: bool = True, position: bool = True, background: bool = True) -> str:
    """One canonical sentence: canonical words, every group with its count, e.g.
    "two small red circles on the left side of a striped background" or
    "a large blue star and three small white rings on a dark background"."""
    groups = scene["objects"]
    phrases = [_noun_phrase(g, None, size=size, count=True) for g in groups]
    bg = _background_phrase(scene["background"], None) if background else ""
    positions = tuple(g.get("position") for g in groups)
    if len(groups) == 1 and position and positions[0] is not None:
        if background:
            return f"{phrases[0]} {_AT_OF[positions[0]][0]} {bg}"
        return f"{phrases[0]} {_AT[positions[0]][0]}"
    if len(groups) == 2 and position and positions[0] is not None:
        order = [0, 1] if positions in _TWO_PLACED else [1, 0]
        key = (positions[order[0]], positions[order[1]])
        text = _TWO_PLACED[key][0].format(g1=phrases[order[0]], g2=phrases[order[1]])
        return f"{text}, on {bg}" if background else text
    text = " and ".join(phrases)
    return f"{text} on {bg}" if background else text


# -----------------------------------------------------------------------------
# Scoring a sentence against a scene

#: Word sequences that name a kind, longest first ("crescent moon" before "crescent").
_KIND_WORDS = sorted(
    ((tuple(name.split()), kind) for kind, names in KIND_SYNONYMS.items() for pair in names for name in pair),
    key=lambda item: -len(item[0]),
)
#: Words that may stand between a colour and a kind: "red small circle", "red bright star".
_BETWEEN = {w for words in SIZE_WORDS.values() for w in words} | {"bright"}


def named_pairs(sentence: str) -> set[tuple[str, str]]:
    """The (colour, kind) pairs a sentence names: a colour word followed by a kind's name,
    singular or plural, with at most two size words (or "bright") between them."""
    tokens = tokenize(sentence)
    pairs = set()
    for i, token in enumerate(tokens):
        if token not in PALETTE:
            continue
        j = i + 1
        while j < len(tokens) and j - i <= 2 and tokens[j] in _BETWEEN:
            j += 1
        for words, kind in _KIND_WORDS:
            if tuple(tokens[j : j + len(words)]) == words:
                pairs.add((token, kind))
                break
    return pairs


def attributes_named(sentence: str, scene: dict[str, Any]) -> bool:
    """True when the sentence names the colour and kind of every group in the scene, and names
    no colour-kind pair that is not there. Used to score generated captions."""
    return named_pairs(sentence) == {(g["colour"], g["kind"]) for g in scene["objects"]}


# -----------------------------------------------------------------------------
# Writing the data set

FORMAT_VERSION = 1
_SPLIT_NUMBER = {"train": 0, "val": 1, "test": 2}


def _make_image(task: tuple[str, str, int, int, int, float]) -> tuple[dict[str, Any], list[str]]:
    """Sample, draw and save one image; returns its scene and sentences. Runs in worker processes."""
    root, split, index, seed, size, two_groups = task
    rng = np.random.default_rng([seed, _SPLIT_NUMBER[split], index])
    scene = sample_scene(rng, two_groups)
    sentences = make_sentences(scene, rng)
    render(scene, size).save(Path(root) / "images" / split / f"{split}_{index:06d}.png", compress_level=1)
    return scene, sentences


def _is_cached(json_path: Path, settings: dict[str, Any]) -> bool:
    """Whether ``json_path`` was written with these settings and all its images are still there."""
    try:
        with json_path.open("rb") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return False
    if not isinstance(data, dict) or data.get("generator") != settings:
        return False
    return all((json_path.parent / e["filepath"] / e["filename"]).is_file() for e in data.get("images", []))


def generate(
    root: Path,
    *,
    n_train: int,
    n_val: int,
    n_test: int,
    seed: int = 0,
    size: int = 224,
    two_groups: float = 0.5,
    workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Render the world into ``root`` and return the path of ``root/dataset_world.json``.

    Deterministic for a seed. When the JSON is already there with the same settings and all
    its images exist, it is returned at once. ``workers`` processes draw the images (worth it
    from a few hundred images on). ``progress(done, total)`` is called as images are made.
    """
    if min(n_train, n_val, n_test) < 0:
        raise ValueError("image counts must not be negative")
    if size < 32:
        raise ValueError(f"size {size} is too small to draw shapes on; use 32 or more")
    if not 0 <= two_groups <= 1:
        raise ValueError("two_groups is a share between 0 and 1")
    root = Path(root)
    json_path = root / "dataset_world.json"
    settings = dict(
        format=FORMAT_VERSION, seed=seed, n_train=n_train, n_val=n_val, n_test=n_test, size=size, two_groups=two_groups
    )
    if _is_cached(json_path, settings):
        return json_path

    tasks = [
        (str(root), split, index, seed, size, two_groups)
        for split, n in (("train", n_train), ("val", n_val), ("test", n_test))
        for index in range(n)
    ]
    for split in _SPLIT_NUMBER:
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
    entries = []
    with ProcessPoolExecutor(workers) if workers > 1 and len(tasks) >= 200 else _InProcess() as pool:
        results = pool.map(_make_image, tasks, chunksize=max(1, min(64, len(tasks) // (8 * workers))))
        for imgid, ((_, split, index, *_rest), (scene, sentences)) in enumerate(zip(tasks, results, strict=True)):
            sentid = 5 * imgid
            entries.append(
                {
                    "filepath": f"images/{split}",
                    "filename": f"{split}_{index:06d}.png",
                    "imgid": imgid,
                    "split": split,
                    "sentids": list(range(sentid, sentid + len(sentences))),
                    "sentences": [
                        {"tokens": tokenize(s), "raw": s, "imgid": imgid, "sentid": sentid + k}
                        for k, s in enumerate(sentences)
                    ],
                    **scene,
                }
            )
            if progress is not None:
                progress(imgid + 1, len(tasks))

    temporary = json_path.with_name(json_path.name + ".tmp")
    temporary.write_text(json.dumps({"dataset": "world", "generator": settings, "images": entries}), encoding="utf-8")
    os.replace(temporary, json_path)  # written last and whole: a JSON that is there means a finished world
    return json_path


class _InProcess:
    """Stands in for a process pool when the work is too small to be worth starting one."""

    def __enter__(self) -> _InProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def map(self, fn: Callable[[Any], T], items: Sequence[Any], chunksize: int = 1) -> Any:
        return map(fn, items)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m engine.training.world ROOT --train 10000 --val 500 --test 500``"""
    parser = argparse.ArgumentParser(description="Render the generated world of captioned shapes.")
    parser.add_argument("root", type=Path)
    parser.add_argument("--train", type=int, default=10000)
    parser.add_argument("--val", type=int, default=500)
    parser.add_argument("--test", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    path = generate(
        args.root,
        n_train=args.train,
        n_val=args.val,
        n_test=args.test,
        seed=args.seed,
        size=args.size,
        workers=args.workers,
    )
    print(f"{path} ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
