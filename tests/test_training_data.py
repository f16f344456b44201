"""Training data: the Karpathy split reader and the generated world of captioned shapes."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from engine.errors import DatasetError, PhotoseekError
from engine.training import world as world_module
from engine.training.data import Example, tokenize
from engine.training.karpathy import load_karpathy
from engine.training.world import (
    COLOURS,
    KINDS,
    PALETTE,
    SIZE_WORDS,
    attributes_named,
    describe,
    generate,
    named_pairs,
    render,
)

# -----------------------------------------------------------------------------
# Karpathy split files


def _png(path: Path, colour: tuple[int, int, int] = (120, 80, 40)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 6), colour).save(path)


def _sentence(raw: str, imgid: int, sentid: int) -> dict[str, Any]:
    return {"tokens": tokenize(raw), "raw": raw, "imgid": imgid, "sentid": sentid}


def _entry(filename: str, split: str, imgid: int, raws: list[str], **extra: Any) -> dict[str, Any]:
    sentences = [_sentence(raw, imgid, 5 * imgid + k) for k, raw in enumerate(raws)]
    return {
        "filename": filename,
        "imgid": imgid,
        "sentids": [s["sentid"] for s in sentences],
        "sentences": sentences,
        "split": split,
        **extra,
    }


def _write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.fixture
def flickr(tmp_path: Path) -> Path:
    """A Flickr8k-style file: images beside the JSON, no filepath, every split including restval."""
    entries = [
        _entry("1000268201_693b08cb0e.jpg", "train", 0, ["A child in a pink dress .", "A girl going into a house ."]),
        _entry("1001773457_577c3a7d70.jpg", "restval", 1, ["A black dog and a spotted dog are fighting"]),
        _entry("1002674143_1b742ab4b8.jpg", "val", 2, ["A little girl is sitting in front of a painting ."]),
        _entry("1003163366_44323f5815.jpg", "test", 3, ["A man lays on a bench ."]),
    ]
    entries[3]["sentences"].append({"tokens": ["a", "man", "sleeps"], "imgid": 3, "sentid": 99})  # no "raw"
    for e in entries:
        _png(tmp_path / e["filename"])
    return _write(tmp_path / "dataset_flickr8k.json", {"dataset": "flickr8k", "images": entries})


def test_tokenize_lowercases_and_drops_punctuation():
    assert tokenize("Two small, RED circles -- on a dog's bed.") == "two small red circles on a dog's bed".split()
    assert tokenize("  ...  ") == []


def test_load_karpathy_flickr(flickr: Path):
    examples = load_karpathy(flickr)
    assert [e.image_id for e in examples] == [
        "1000268201_693b08cb0e",
        "1001773457_577c3a7d70",
        "1002674143_1b742ab4b8",
        "1003163366_44323f5815",
    ]
    assert [e.split for e in examples] == ["train", "train", "val", "test"]  # restval is training data
    assert examples[0].path == flickr.parent / "1000268201_693b08cb0e.jpg"
    assert examples[0].sentences == ("A child in a pink dress .", "A girl going into a house .")
    assert examples[3].sentences[-1] == "a man sleeps"  # tokens when there is no raw text
    assert examples[1].meta == {"imgid": 1, "sentids": [5]}
    assert all(isinstance(e, Example) and e.path.is_file() for e in examples)


def test_load_karpathy_coco_filepath_and_image_root(tmp_path: Path):
    images = tmp_path / "coco"
    entries = [
        _entry("COCO_val2014_000000391895.jpg", "test", 0, ["A man with a red helmet on a small moped."]),
        _entry("COCO_train2014_000000057870.jpg", "restval", 1, ["A restaurant has modern wooden tables."]),
    ]
    entries[0].update(filepath="val2014", cocoid=391895)
    entries[1].update(filepath="train2014", cocoid=57870)
    for e in entries:
        _png(images / e["filepath"] / e["filename"])
    path = _write(tmp_path / "dataset_coco.json", {"dataset": "coco", "images": entries})

    examples = load_karpathy(path, images)
    assert [e.image_id for e in examples] == ["391895", "57870"]
    assert examples[0].path == images / "val2014" / "COCO_val2014_000000391895.jpg"
    assert [e.split for e in examples] == ["test", "train"]
    assert examples[0].meta["cocoid"] == 391895 and "filepath" not in examples[0].meta

    with pytest.raises(DatasetError, match="2 of 2 images"):
        load_karpathy(path)  # the images are not beside the JSON
    assert len(load_karpathy(path, check_images=False)) == 2


def test_filepath_falls_back_to_one_folder(tmp_path: Path):
    """Flickr images often sit in one folder even where the JSON names a sub-folder."""
    entry = _entry("a.jpg", "train", 0, ["a photo"], filepath="flickr30k-images/x")
    _png(tmp_path / "a.jpg")
    path = _write(tmp_path / "d.json", {"images": [entry]})
    assert load_karpathy(path)[0].path == tmp_path / "a.jpg"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected an object with an 'images' list"),
        ('{"dataset": "coco"}', "expected an object with an 'images' list"),
        ('{"images": [3]}', r"images\[0\] is a int"),
        ('{"images": [{"split": "train", "sentences": [{"raw": "x"}]}]}', "has no 'filename'"),
        ('{"images": [{"filename": "a.jpg", "split": "train"}]}', r"images\[0\] \(a.jpg\) has no sentences"),
        ('{"images": [{"filename": "a.jpg", "split": "train", "sentences": []}]}', "has no sentences"),
        ('{"images": [{"filename": "a.jpg", "split": "test", "sentences": [{"raw": ""}]}]}', "sentence 0 has neither"),
        ('{"images": [{"filename": "a.jpg", "split": "dev", "sentences": [{"raw": "x"}]}]}', "split 'dev'"),
    ],
)
def test_bad_files_are_refused_with_a_reason(tmp_path: Path, content: str, message: str):
    _png(tmp_path / "a.jpg")
    path = tmp_path / "dataset.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DatasetError, match=message):
        load_karpathy(path)


def test_missing_file_and_duplicate_ids(tmp_path: Path):
    with pytest.raises(DatasetError, match="no such file"):
        load_karpathy(tmp_path / "dataset_flickr30k.json")
    with pytest.raises(DatasetError, match="is a folder"):
        load_karpathy(tmp_path)
    entries = [_entry("a.jpg", "train", 0, ["x"], filepath="p"), _entry("a.jpg", "val", 1, ["y"], filepath="q")]
    path = _write(tmp_path / "d.json", {"images": entries})
    with pytest.raises(DatasetError, match="same image id 'a'"):
        load_karpathy(path, check_images=False)
    assert issubclass(DatasetError, PhotoseekError)


def test_missing_images_are_counted_and_named(flickr: Path):
    for name in ("1001773457_577c3a7d70.jpg", "1003163366_44323f5815.jpg"):
        (flickr.parent / name).unlink()
    with pytest.raises(DatasetError, match="2 of 4 images") as caught:
        load_karpathy(flickr)
    assert "1001773457_577c3a7d70.jpg" in str(caught.value)


# -----------------------------------------------------------------------------
# The generated world

SIZES = {"n_train": 20, "n_val": 5, "n_test": 5}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("world"), seed=7, **SIZES)


@pytest.fixture(scope="module")
def examples(world: Path) -> list[Example]:
    return load_karpathy(world)


def _pixels(example: Example) -> np.ndarray:
    with Image.open(example.path) as image:
        return np.asarray(image.convert("RGB"))


def test_world_loads_as_a_karpathy_file_with_its_scenes(world: Path, examples: list[Example]):
    assert world.name == "dataset_world.json"
    assert len(examples) == 30
    for e in examples:
        assert e.path == world.parent / "images" / e.split / f"{e.image_id}.png"
        assert len(e.sentences) == 5 and len(set(e.sentences)) == 5
        assert e.meta["background"] in {"light", "dark", "striped", "textured", "plain"}
        assert 1 <= len(e.meta["objects"]) <= 2
        with Image.open(e.path) as image:
            assert image.size == (224, 224)


def test_splits_are_sized_as_asked_and_disjoint(examples: list[Example]):
    by_split = {s: [e for e in examples if e.split == s] for s in ("train", "val", "test")}
    assert {s: len(v) for s, v in by_split.items()} == {"train": 20, "val": 5, "test": 5}
    assert len({e.image_id for e in examples}) == len({e.path for e in examples}) == 30


def test_same_seed_same_world_other_seed_other_world(world: Path, tmp_path: Path):
    again = generate(tmp_path / "again", seed=7, **SIZES)
    assert again.read_bytes() == world.read_bytes()
    for a, b in zip(load_karpathy(world), load_karpathy(again), strict=True):
        assert np.array_equal(_pixels(a), _pixels(b))
    other = load_karpathy(generate(tmp_path / "other", seed=8, **SIZES))
    assert [e.sentences for e in other] != [e.sentences for e in load_karpathy(world)]
    assert not np.array_equal(_pixels(other[0]), _pixels(load_karpathy(world)[0]))


def test_an_image_does_not_depend_on_how_many_are_made(world: Path, tmp_path: Path):
    smaller = load_karpathy(generate(tmp_path / "small", seed=7, n_train=3, n_val=1, n_test=0))
    full = {e.image_id: e for e in load_karpathy(world)}
    for e in smaller:
        assert e.sentences == full[e.image_id].sentences
        assert np.array_equal(_pixels(e), _pixels(full[e.image_id]))


def test_render_redraws_an_image_from_its_json_entry(examples: list[Example]):
    for e in examples[:5]:
        assert np.array_equal(np.asarray(render(e.meta, 224)), _pixels(e))


def test_every_sentence_names_its_own_image_and_rarely_another(examples: list[Example]):
    for e in examples:
        for s in e.sentences:
            assert attributes_named(s, e.meta), (s, e.meta["objects"])
    others = [attributes_named(s, b.meta) for a, b in itertools.permutations(examples, 2) for s in a.sentences]
    assert sum(others) / len(others) < 0.05


def test_sentences_mention_size_count_position_and_background_sometimes(examples: list[Example]):
    sentences = [s for e in examples for s in e.sentences]
    size_words = {w for words in SIZE_WORDS.values() for w in words}
    share = sum(bool(size_words & set(tokenize(s))) for s in sentences) / len(sentences)
    assert 0.2 < share < 0.8
    share = sum("background" in s or "backdrop" in s for s in sentences) / len(sentences)
    assert 0.1 < share < 0.7
    plural = [s for e in examples for s in e.sentences if e.meta["objects"][0]["count"] == 2]
    assert any("two" in tokenize(s) or "pair" in tokenize(s) for s in plural)
    assert not any(w in tokenize(s) for s in sentences for w in ("dices", "crosss", "boxs"))


def test_images_vary(examples: list[Example]):
    digests = {hashlib.sha256(_pixels(e).tobytes()).hexdigest() for e in examples}
    assert len(digests) == len(examples)
    scenes = [e.meta for e in examples]
    assert len({g["kind"] for s in scenes for g in s["objects"]}) >= 8
    assert len({g["colour"] for s in scenes for g in s["objects"]}) >= 7
    assert len({s["backdrop"]["style"] for s in scenes}) == 4
    assert {len(s["objects"]) for s in scenes} == {1, 2}


def _nearest_colour(rgb: Any) -> str:
    return min(PALETTE, key=lambda c: float(np.linalg.norm(np.subtract(PALETTE[c], rgb))))


def test_objects_are_drawn_in_their_named_colour_where_the_scene_says(examples: list[Example]):
    for e in examples:
        pixels = _pixels(e).astype(float)
        ys, xs = np.mgrid[0:224, 0:224]
        for group in e.meta["objects"]:
            assert _nearest_colour(group["rgb"]) == group["colour"]
            for x, y, r, _angle in group["instances"]:
                inside = (xs - x * 224) ** 2 + (ys - y * 224) ** 2 <= (r * 224) ** 2
                close = np.linalg.norm(pixels[inside] - group["rgb"], axis=1) < 30
                assert close.mean() > 0.15, (e.image_id, group)


def test_backgrounds_never_look_like_an_object_colour(examples: list[Example]):
    for e in examples:
        backdrop = e.meta["backdrop"]
        for rgb in (backdrop["rgb"], backdrop.get("rgb2", backdrop["rgb"])):
            assert min(np.linalg.norm(np.subtract(c, rgb)) for c in PALETTE.values()) > 50, backdrop


def test_layout_rules(examples: list[Example]):
    for e in examples:
        groups = e.meta["objects"]
        if len(groups) == 2:
            assert groups[0]["kind"] != groups[1]["kind"] and groups[0]["colour"] != groups[1]["colour"]
        for g in groups:
            assert len(g["instances"]) == g["count"] in (1, 2, 3)
            for x, y, _r, _a in g["instances"]:
                position = g["position"]
                assert {"left": x < 0.5, "right": x > 0.5, "top": y < 0.5, "bottom": y > 0.5}.get(position, True)
        instances = [i for g in groups for i in g["instances"]]
        for a, b in itertools.combinations(instances, 2):
            assert math.hypot(a[0] - b[0], a[1] - b[1]) >= a[2] + b[2]


def test_generate_returns_at_once_when_the_world_is_there(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = generate(tmp_path, seed=1, n_train=4, n_val=1, n_test=1)
    written = path.stat().st_mtime_ns
    drawn: list[Any] = []
    real_make_image = world_module._make_image
    monkeypatch.setattr(world_module, "_make_image", lambda task: drawn.append(task) or real_make_image(task))
    assert generate(tmp_path, seed=1, n_train=4, n_val=1, n_test=1) == path
    assert drawn == [] and path.stat().st_mtime_ns == written  # nothing drawn, nothing written
    assert json.loads(path.read_text())["generator"]["n_train"] == 4

    generate(tmp_path, seed=1, n_train=5, n_val=1, n_test=1)  # other arguments: made again
    assert len(drawn) == 7 and len(load_karpathy(path)) == 7
    (tmp_path / "images" / "val" / "val_000000.png").unlink()  # an image lost: made again
    generate(tmp_path, seed=1, n_train=5, n_val=1, n_test=1)
    assert (tmp_path / "images" / "val" / "val_000000.png").is_file()


def test_generate_checks_its_arguments(tmp_path: Path):
    with pytest.raises(ValueError):
        generate(tmp_path, n_train=-1, n_val=0, n_test=0)
    with pytest.raises(ValueError):
        generate(tmp_path, n_train=1, n_val=0, n_test=0, two_groups=1.5)


TWO = {
    "objects": [
        {"kind": "circle", "colour": "red", "count": 2, "size": "small", "position": "left"},
        {"kind": "star", "colour": "blue", "count": 1, "size": "large", "position": "right"},
    ],
    "background": "striped",
}


@pytest.mark.parametrize(
    ("sentence", "named"),
    [
        ("two small red circles and a big blue star", True),
        ("A pair of red discs to the left of a huge blue star.", True),
        ("bright red round dots with a blue star", True),
        ("red small circles next to a blue star on a striped background", True),
        ("a blue star", False),  # the red circles are not named
        ("two red circles", False),
        ("a blue circle and a red star", False),  # colours swapped
        ("red circles, a blue star and a green heart", False),  # a pair that is not there
        ("red circles and a blue crescent moon", False),
        ("red and blue circles and stars", False),  # no colour next to its kind
        ("circles and stars on a striped background", False),
    ],
)
def test_attributes_named(sentence: str, named: bool):
    assert attributes_named(sentence, TWO) is named


def test_named_pairs_reads_every_synonym():
    assert named_pairs("a white plus sign and two black crescent moons") == {("white", "cross"), ("black", "crescent")}
    assert named_pairs("orange boxes, a purple hoop, green rhombuses, tiny yellow donuts") == {
        ("orange", "square"),
        ("purple", "ring"),
        ("green", "diamond"),
        ("yellow", "ring"),
    }


def test_describe_gives_one_canonical_sentence(examples: list[Example]):
    canonical = "two small red circles on the left and a large blue star on the right, on a striped background"
    assert describe(TWO) == canonical
    assert describe(TWO, size=False, position=False, background=False) == "two red circles and a blue star"
    one = {"objects": [{"kind": "ring", "colour": "orange", "count": 1, "size": "large", "position": "top"}]}
    assert describe({**one, "background": "dark"}) == "a large orange ring at the top of a dark background"
    assert describe({**one, "background": "dark"}, background=False) == "a large orange ring at the top"
    for e in examples:
        assert attributes_named(describe(e.meta), e.meta)
    assert len(KINDS) == 10 and len(COLOURS) == 8
