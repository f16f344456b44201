"""The model bundle manifest (``model.json``): the single truth about a model.

A bundle is a folder with ``model.json`` beside its files. Nothing outside this module knows a
bundle's file names; encoders and captioners receive the parsed :class:`Manifest`.

Layout of ``model.json`` (format 1)::

    {
      "format": 1,
      "id": "photoseek-builtin", "version": "1.0.0",
      "kind": "joint-embedding" | "captioner",
      "name": "...", "description": "...", "license": "Apache-2.0", "source": "...",
      "embedding_size": 384,
      "files": {"visual.onnx": {"sha256": "...", "size": 123}, ...},
      "image": {"file": "visual.onnx", "input": "pixels", "output": "embedding",
                "cpu_file": "visual-int8.onnx",
                "extra_outputs": ["probs", "colours", "similar"], "similar_output": "similar",
                "preprocess": {"size": 224, "resize": "shortest", "crop": "center",
                               "mean": [..], "std": [..], "layout": "NCHW"}},
      "text": {"file": "textual.onnx", "tokenizer": "tokenizer.json", "context_length": 64,
               "inputs": {"input_ids": "input_ids", "attention_mask": "attention_mask"},
               "output": "last_hidden_state", "pooling": "mean" | "none" | "cls",
               "prompt": "{}", "pad_token": "<pad>", "clean": "none" | "whitespace" | "canonicalize"},
      "captioner": {"type": "labels" | "encoder-decoder", ...} | {"bundle": "<captioner bundle id>"},
      "languages": ["en"],
      "search": {"cutoff": 0.3, "negative_weight": 0.5, "text_in_photo_weight": 0.6,
                 "people_in_photo_weight": 0.5, "reference": "reference.npy",
                 "relevance_lift": 0.05, "similar_cutoff": 0.2},
      "metrics": {...}
    }

``image.cpu_file`` (optional) is the same graph with 8-bit weights and activations, used when
it runs on the CPU (faster there; ``file`` on a GPU, where an 8-bit graph gains nothing).

``image.similar_output`` (optional) names an extra output that is a unit vector for
photo-to-photo search ("find similar"), for a model whose embedding is made for comparing
photos with descriptions rather than with each other (the built-in model's); without it,
photos are compared by their embeddings. ``search.similar_cutoff`` (optional) is the least score
with those vectors a photo must reach to be shown by a ``like:`` search alone.

``search.text_in_photo_weight`` and ``search.people_in_photo_weight`` (default 0: off) mix into
each photo's vector the text vector of what was read in it and of a sentence about the people
whose faces were found ("a photo of a person"), for a model that does not see these itself.

``search.reference`` (optional) names a file holding one vector, a reference photo (the built-in
model's: the mean of its sample photos' embeddings). A description's results then score at
least ``search.relevance_lift`` above the description's score with it, as well as
``search.cutoff``: for a model whose vectors share a large common part, an unrelated photo
scores close to the reference, whatever the description.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from engine.errors import BundleIntegrityError, ModelError

MANIFEST_NAME = "model.json"
FORMAT = 1
Kind = Literal["joint-embedding", "captioner"]


@dataclass(frozen=True)
class Preprocess:
    """How a photo becomes the image graph's input tensor."""

    size: int = 224
    resize: Literal["shortest", "squash"] = "shortest"
    crop: Literal["center", "none"] = "center"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    interpolation: Literal["bicubic", "bilinear", "nearest", "lanczos"] = "bicubic"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Preprocess:
        spec = cls(
            size=int(data.get("size", 224)),
            resize=data.get("resize", "shortest"),
            crop=data.get("crop", "center"),
            mean=tuple(float(v) for v in data.get("mean", (0.0, 0.0, 0.0))),  # type: ignore[arg-type]
            std=tuple(float(v) for v in data.get("std", (1.0, 1.0, 1.0))),  # type: ignore[arg-type]
            layout=data.get("layout", "NCHW"),
            interpolation=data.get("interpolation", "bicubic"),
        )
        allowed = {
            "resize": ("shortest", "squash"),
            "crop": ("center", "none"),
            "layout": ("NCHW", "NHWC"),
            "interpolation": ("bicubic", "bilinear", "nearest", "lanczos"),
        }
        for key, values in allowed.items():
            if getattr(spec, key) not in values:
                raise ValueError(f"preprocess {key} {getattr(spec, key)!r} is not one of {', '.join(values)}")
        if len(spec.mean) != 3 or len(spec.std) != 3 or spec.size <= 0:
            raise ValueError("preprocess needs a positive size and three means and standard deviations")
        return spec


@dataclass(frozen=True)
class ImageGraph:
    file: str
    input: str
    output: str
    preprocess: Preprocess
    extra_outputs: tuple[str, ...] = ()
    #: The same graph, 8-bit, for the CPU execution provider (None: ``file`` everywhere).
    cpu_file: str | None = None
    #: The extra output that compares photos with photos (None: the embedding does).
    similar_output: str | None = None


@dataclass(frozen=True)
class TextGraph:
    file: str
    tokenizer: str
    output: str
    context_length: int = 77
    inputs: dict[str, str] = field(default_factory=lambda: {"input_ids": "input_ids"})
    pooling: Literal["none", "mean", "cls"] = "none"
    prompt: str = "{}"
    lowercase: bool = False
    #: Pad every input to ``context_length`` (graphs exported with a fixed sequence length).
    fixed_length: bool = False
    #: The token used for padding (None: the tokenizer's ``[PAD]`` or ``<pad>``, else id 0).
    pad_token: str | None = None
    #: Text clean-up before tokenising, as the model was trained: collapse whitespace, or also
    #: drop punctuation and lowercase ("canonicalize", as open_clip's SigLIP configs ask).
    clean: Literal["none", "whitespace", "canonicalize"] = "none"


@dataclass(frozen=True)
class Manifest:
    """A parsed, validated ``model.json`` plus the folder it came from."""

    root: Path
    id: str
    version: str
    kind: Kind
    name: str
    license: str
    source: str
    embedding_size: int
    files: dict[str, dict[str, Any]]
    image: ImageGraph | None
    text: TextGraph | None
    captioner: dict[str, Any] | None
    search: dict[str, Any]
    raw: dict[str, Any]
    languages: tuple[str, ...] = ()

    def path(self, name: str) -> Path:
        """The absolute path of a file the manifest names."""
        if name not in self.files:
            raise ModelError(f"model {self.id}: {name} is not listed in {MANIFEST_NAME}")
        return self.root / name

    @property
    def label(self) -> str:
        return f"{self.id}@{self.version}"

    def search_setting(self, key: str, default: float) -> float:
        return float(self.search.get(key, default))


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _parse(root: Path, data: dict[str, Any]) -> Manifest:
    if data.get("format") != FORMAT:
        raise ModelError(f"{root}: unsupported bundle format {data.get('format')!r}")
    try:
        kind = data["kind"]
        if kind not in ("joint-embedding", "captioner"):
            raise ModelError(f"{root}: unknown bundle kind {kind!r}")
        image = None
        if "image" in data:
            img = data["image"]
            image = ImageGraph(
                file=img["file"],
                input=img.get("input", "pixels"),
                output=img.get("output", "embedding"),
                preprocess=Preprocess.from_json(img.get("preprocess", {})),
                extra_outputs=tuple(img.get("extra_outputs", ())),
                cpu_file=img.get("cpu_file"),
                similar_output=img.get("similar_output"),
            )
            if image.similar_output is not None and image.similar_output not in image.extra_outputs:
                raise ModelError(f"{root}: image.similar_output {image.similar_output!r} is not an extra output")
        text = None
        if "text" in data:
            txt = data["text"]
            text = TextGraph(
                file=txt["file"],
                tokenizer=txt["tokenizer"],
                output=txt.get("output", "embedding"),
                context_length=int(txt.get("context_length", 77)),
                inputs=dict(txt.get("inputs", {"input_ids": "input_ids"})),
                pooling=txt.get("pooling", "none"),
                prompt=txt.get("prompt", "{}"),
                lowercase=bool(txt.get("lowercase", False)),
                fixed_length=bool(txt.get("fixed_length", False)),
                pad_token=txt.get("pad_token"),
                clean=txt.get("clean", "none"),
            )
        manifest = Manifest(
            root=root,
            id=str(data["id"]),
            version=str(data.get("version", "0")),
            kind=kind,
            name=str(data.get("name", data["id"])),
            license=str(data.get("license", "unknown")),
            source=str(data.get("source", "")),
            embedding_size=int(data.get("embedding_size", 0)),
            files=dict(data.get("files", {})),
            image=image,
            text=text,
            captioner=data.get("captioner"),
            search=dict(data.get("search", {})),
            raw=data,
            languages=tuple(str(lang) for lang in data.get("languages", ())),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{root}: malformed {MANIFEST_NAME}: {exc!r}") from exc
    if kind == "joint-embedding" and (image is None or text is None or manifest.embedding_size <= 0):
        raise ModelError(f"{root}: a joint-embedding bundle needs image, text and embedding_size")
    if kind == "captioner" and (not manifest.captioner or "type" not in manifest.captioner):
        raise ModelError(f"{root}: a captioner bundle needs a captioner section with a type")
    used = [g.file for g in (image, text) if g] + ([text.tokenizer] if text else [])
    used += [image.cpu_file] if image and image.cpu_file else []
    used += [str(manifest.search["reference"])] if "reference" in manifest.search else []
    for graph_file in used:
        if graph_file not in manifest.files:
            raise ModelError(f"{root}: {graph_file} is used but not listed under files")
    return manifest


def load_manifest(root: Path | str, *, verify: bool = False) -> Manifest:
    """Read ``root/model.json``. With ``verify``, check every file's size and SHA-256."""
    root = Path(root)
    path = root / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelError(f"{root} is not a model bundle (no {MANIFEST_NAME})") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from exc
    manifest = _parse(root, data)
    if verify:
        verify_files(manifest)
    else:
        for name, info in manifest.files.items():
            file = root / name
            if not file.is_file():
                raise BundleIntegrityError(f"model {manifest.id}: {name} is missing")
            if "size" in info and file.stat().st_size != int(info["size"]):
                raise BundleIntegrityError(f"model {manifest.id}: {name} has the wrong size")
    return manifest


def verify_files(manifest: Manifest) -> None:
    """Raise :class:`BundleIntegrityError` unless every file matches its SHA-256."""
    for name, info in manifest.files.items():
        file = manifest.root / name
        if not file.is_file():
            raise BundleIntegrityError(f"model {manifest.id}: {name} is missing")
        expected = info.get("sha256")
        if expected and sha256_file(file) != expected:
            raise BundleIntegrityError(f"model {manifest.id}: {name} does not match its SHA-256")


def write_manifest(root: Path, data: dict[str, Any]) -> Manifest:
    """Fill in sizes and SHA-256s of the listed files, write ``model.json`` and parse it back."""
    data = dict(data)
    data.setdefault("format", FORMAT)
    files = {}
    for name in data.get("files", {}):
        file = root / name
        files[name] = {"sha256": sha256_file(file), "size": file.stat().st_size}
    data["files"] = files
    tmp = root / (MANIFEST_NAME + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    tmp.replace(root / MANIFEST_NAME)
    return load_manifest(root)


@contextmanager
def staged_bundle(target: Path) -> Iterator[Path]:
    """A fresh folder beside ``target`` to write a bundle into. When the block finishes, the
    folder replaces ``target`` (so a half-written bundle is never in place); when it raises,
    the folder is removed and ``target`` is left as it was."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        yield staging
        staging.chmod(0o755)  # mkdtemp makes it private; the bundle is ordinary user data
        if target.exists():
            shutil.rmtree(target)
        staging.replace(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
