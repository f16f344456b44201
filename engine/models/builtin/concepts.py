"""The vocabulary of the built-in model: ImageNet classes, their everyday names, colours.

Pure data and Python: used when the bundle is built (with torch) and by its captioner (without).
The WordNet hypernym chains come from ``resources/builtin/imagenet_hierarchy.json``
(made by ``resources/builtin/make_imagenet_hierarchy.py`` from WordNet 3.0).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

#: The eleven basic colour terms (Berlin & Kay), in the order of the image graph's colour output.
COLOURS: tuple[str, ...] = (
    "black", "white", "grey", "red", "orange", "yellow", "green", "blue", "purple", "pink", "brown",
)  # fmt: skip

#: Everyday ("basic-level") names that people type, keyed by a WordNet lemma that appears in a
#: class's own synset or in its hypernym chain. The value is what people would say.
#: A class gets the nearest such ancestor as its everyday name ("golden retriever" -> "dog").
BASIC_LEVEL: dict[str, str] = {
    # animals
    "dog": "dog", "domestic dog": "dog", "wolf": "wolf", "fox": "fox", "domestic cat": "cat",
    "cat": "cat", "big cat": "big cat", "bear": "bear", "monkey": "monkey", "ape": "ape",
    "bird": "bird", "parrot": "parrot", "owl": "owl", "duck": "duck", "goose": "goose",
    "chicken": "chicken", "eagle": "eagle", "penguin": "penguin", "swan": "swan",
    "hummingbird": "hummingbird", "fish": "fish", "shark": "shark", "ray": "ray",
    "snake": "snake", "lizard": "lizard", "turtle": "turtle", "frog": "frog",
    "salamander": "salamander", "crocodilian reptile": "crocodile", "dinosaur": "dinosaur",
    "insect": "insect", "butterfly": "butterfly", "beetle": "beetle", "bee": "bee", "ant": "ant",
    "spider": "spider", "crab": "crab", "lobster": "lobster", "snail": "snail",
    "jellyfish": "jellyfish", "starfish": "starfish", "whale": "whale", "seal": "seal",
    "horse": "horse", "bovid": "cattle", "cattle": "cattle", "sheep": "sheep",
    "goat": "goat", "swine": "pig", "hog": "pig", "deer": "deer", "antelope": "antelope",
    "camel": "camel", "elephant": "elephant", "rabbit": "rabbit", "rodent": "rodent",
    "squirrel": "squirrel", "mouse": "mouse", "weasel": "weasel", "bat": "bat",
    "primate": "primate", "mammal": "animal", "animal": "animal", "person": "person",
    # vehicles
    "car": "car", "motor vehicle": "vehicle", "truck": "truck", "bus": "bus",
    "bicycle": "bicycle", "motorcycle": "motorcycle", "boat": "boat", "ship": "ship",
    "aircraft": "aircraft", "airplane": "airplane", "train": "train", "locomotive": "train",
    "wheeled vehicle": "vehicle", "vehicle": "vehicle", "sailing vessel": "sailboat",
    # food
    "edible fruit": "fruit", "apple": "apple", "citrus": "citrus fruit", "mug": "mug",
    "vegetable": "vegetable", "bread": "bread",
    "dessert": "dessert", "dish": "dish", "food": "food", "mushroom": "mushroom",
    "fungus": "mushroom", "beverage": "drink",
    # things
    "flower": "flower", "tree": "tree", "plant": "plant", "musical instrument": "musical instrument",
    "ball": "ball", "chair": "chair", "seat": "seat", "table": "table", "bed": "bed",
    "furniture": "furniture", "bottle": "bottle", "cup": "cup", "container": "container",
    "clock": "clock", "computer": "computer", "telephone": "telephone", "camera": "camera",
    "hat": "hat", "shoe": "shoe", "footwear": "shoe", "garment": "clothing",
    "clothing": "clothing", "bag": "bag", "tool": "tool", "weapon": "weapon", "toy": "toy",
    "building": "building", "bridge": "bridge", "house": "house", "church": "church",
    "sign": "sign", "boat house": "boathouse", "kitchen utensil": "kitchen utensil",
    "lamp": "lamp", "screen": "screen", "keyboard": "keyboard", "glass": "glass",
    "geological formation": "landscape", "shore": "shore", "mountain": "mountain",
}  # fmt: skip

_PAREN = re.compile(r"\s*\(([^)]*)\)\s*")


@dataclass(frozen=True)
class ImageNetClass:
    index: int
    name: str  # readable class name, e.g. "golden retriever"
    synonyms: tuple[str, ...]
    everyday: tuple[str, ...]  # everyday names from the hypernym chain, nearest first


def _clean(name: str) -> str:
    """ "kite (bird of prey)" -> "kite"; keeps the readable part of a class name."""
    return _PAREN.sub(" ", name).strip()


def load_classes(hierarchy_path: Path, clean_names: list[str]) -> list[ImageNetClass]:
    """The 1,000 ImageNet classes with synonyms and everyday names from their WordNet chain."""
    entries = json.loads(hierarchy_path.read_text(encoding="utf-8"))
    if len(entries) != len(clean_names):
        raise ValueError(f"{hierarchy_path}: {len(entries)} classes, expected {len(clean_names)}")
    classes = []
    for entry, clean in zip(entries, clean_names, strict=True):
        name = _clean(clean)
        lemmas = [lemma for lemma in entry["lemmas"] if lemma.lower() != name.lower()]
        everyday: list[str] = []
        own = [name.lower(), *(lemma.lower() for lemma in entry["lemmas"])]
        for synset in [own, *entry["hypernyms"]]:
            for lemma in synset:
                word = BASIC_LEVEL.get(lemma.lower())
                if word and word not in everyday and word != name.lower():
                    everyday.append(word)
        classes.append(
            ImageNetClass(
                index=int(entry["index"]),
                name=name,
                synonyms=tuple(dict.fromkeys(_clean(s) for s in lemmas if _clean(s))),
                everyday=tuple(everyday),
            )
        )
    return classes


# By sound, not spelling: "a unicycle", "a European gallinule", "an hourglass".
_A_BEFORE_VOWEL = re.compile(r"(?i)^(uni|eu|one\b|use)")
_AN_BEFORE_H = re.compile(r"(?i)^(hour|honest|honou?r|heir)")
_HAS_ARTICLE = re.compile(r"(?i)^(a|an|the) ")
#: Names that take no article ("clothing, probably a bow tie", "possibly hay or corn").
MASS_NOUNS = frozenset(
    {"clothing", "furniture", "food", "footwear", "hay", "wool", "corn", "broccoli", "cauliflower"}
    | {"guacamole", "carbonara", "consomme", "red wine", "eggnog", "chain mail"}
)


def article(noun: str) -> str:
    """'an umbrella', 'a dog', 'a unicycle', 'an hourglass', 'clothing'."""
    if noun.lower() in MASS_NOUNS or _HAS_ARTICLE.match(noun):
        return noun
    vowel = noun[:1].lower() in "aeiou" and not _A_BEFORE_VOWEL.match(noun)
    return ("an " if vowel or _AN_BEFORE_H.match(noun) else "a ") + noun
