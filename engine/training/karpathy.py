"""Reading captioned image sets in the Karpathy split format.

Karpathy and Fei-Fei (2015) published one JSON file per data set that fixes the train /
val / test split everyone reports on: ``dataset_flickr8k.json``, ``dataset_flickr30k.json``
and ``dataset_coco.json``. The generated world (``world.py``) writes the same format. Shape::

    {"dataset": "coco",
     "images": [{"filepath": "val2014",              # COCO only
                 "filename": "COCO_val2014_000000391895.jpg",
                 "split": "test",                    # train | val | test | restval
                 "imgid": 0, "cocoid": 391895, "sentids": [0, 1, 2, 3, 4],
                 "sentences": [{"raw": "A man riding a bike.", "tokens": ["a", "man", ...],
                                "imgid": 0, "sentid": 0}, ...]},
                ...]}

"restval" (the COCO validation images outside the 5,000 val + 5,000 test) is training data.
An entry may also carry ``"phrases": ["a brown dog", "a red frisbee", ...]`` (noun phrases of
what the image shows, e.g. from Flickr30k Entities); training pairs them with the image
(``TrainConfig.phrase_weight``). Other keys are kept in ``Example.meta``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.errors import DatasetError
from engine.training.data import Example

#: Split names in the files, and the split each one is read as.
_SPLIT_OF = {"train": "train", "restval": "train", "val": "val", "test": "test"}
#: Keys that become fields of Example; every other key of an entry is kept in Example.meta.
_USED_KEYS = {"filename", "filepath", "split", "sentences"}


def load_karpathy(json_path: Path, image_root: Path | None = None, *, check_images: bool = True) -> list[Example]:
    """All images of a Karpathy split file, in file order.

    The image of an entry is ``image_root / filepath / filename``, or ``image_root / filename``
    when the entry has no ``filepath`` (the Flickr files) or the file is only found there.
    ``image_root`` defaults to the folder that holds the JSON file. With ``check_images`` every
    image must exist. The image id is the COCO id where there is one, else the file name
    without its extension. Raises DatasetError, saying what is wrong and where.
    """
    json_path = Path(json_path)
    root = Path(image_root) if image_root is not None else json_path.parent
    images = _read_images(json_path)

    examples: list[Example] = []
    seen: dict[str, int] = {}
    missing: list[Path] = []
    for index, entry in enumerate(images):
        where = f"{json_path}: images[{index}]"
        if not isinstance(entry, dict):
            raise DatasetError(f"{where} is a {type(entry).__name__}, not an object")
        filename = entry.get("filename")
        if not isinstance(filename, str) or not filename:
            raise DatasetError(f"{where} has no 'filename'")
        where = f"{where} ({filename})"

        split = _SPLIT_OF.get(str(entry.get("split")))
        if split is None:
            known = ", ".join(sorted(_SPLIT_OF))
            raise DatasetError(f"{where} has split {entry.get('split')!r}; expected one of {known}")

        sentences = _sentences(entry.get("sentences"), where)
        image_id = str(entry["cocoid"]) if "cocoid" in entry else Path(filename).stem
        if image_id in seen:
            raise DatasetError(f"{where} has the same image id {image_id!r} as images[{seen[image_id]}]")
        seen[image_id] = index

        path = _image_path(root, entry.get("filepath"), filename)
        if check_images and not path.is_file():
            missing.append(path)
        meta = {k: v for k, v in entry.items() if k not in _USED_KEYS}
        examples.append(Example(image_id, path, sentences, split, meta))

    if missing:
        first = ", ".join(str(p) for p in missing[:3])
        raise DatasetError(
            f"{len(missing)} of {len(examples)} images listed in {json_path} are missing under {root} "
            f"(first: {first}); pass image_root= if the images are elsewhere"
        )
    return examples


def _read_images(json_path: Path) -> list[Any]:
    """The "images" list of a Karpathy file, after checking the file and its top-level shape."""
    try:
        with json_path.open("rb") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise DatasetError(f"{json_path}: no such file") from None
    except IsADirectoryError:
        raise DatasetError(f"{json_path} is a folder; expected a Karpathy split JSON file") from None
    except json.JSONDecodeError as e:
        raise DatasetError(f"{json_path} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    except UnicodeDecodeError as e:
        raise DatasetError(f"{json_path} is not valid JSON text ({e.reason})") from None
    except OSError as e:
        raise DatasetError(f"{json_path} cannot be read: {e.strerror or e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        shape = type(data).__name__ if not isinstance(data, dict) else "an object without an 'images' list"
        raise DatasetError(f"{json_path}: expected an object with an 'images' list (Karpathy format), found {shape}")
    return data["images"]


def _sentences(raw_sentences: Any, where: str) -> tuple[str, ...]:
    """The reference sentences of one entry: each one's "raw" text, else its tokens joined."""
    if not isinstance(raw_sentences, list) or not raw_sentences:
        raise DatasetError(f"{where} has no sentences")
    sentences = []
    for number, s in enumerate(raw_sentences):
        text = ""
        if isinstance(s, dict):
            raw, tokens = s.get("raw"), s.get("tokens")
            if isinstance(raw, str) and raw.strip():
                text = raw.strip()
            elif isinstance(tokens, list) and tokens:
                text = " ".join(str(t) for t in tokens)
        elif isinstance(s, str):
            text = s.strip()
        if not text:
            raise DatasetError(f"{where}: sentence {number} has neither 'raw' text nor 'tokens'")
        sentences.append(text)
    return tuple(sentences)


def _image_path(root: Path, filepath: Any, filename: str) -> Path:
    """``root/filepath/filename`` if it exists or there is no filepath to fall back from, else ``root/filename``."""
    if isinstance(filepath, str) and filepath:
        path = root / filepath / filename
        if path.is_file() or not (root / filename).is_file():
            return path
    return root / filename
