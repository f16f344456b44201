"""Pretrained models Photoseek knows how to pull from the Hugging Face Hub.

Every value here was found in public material, never guessed: where a revision, a size or a
SHA-256 could not be found it is ``None``, and the downloader says so and falls back honestly
(see :mod:`engine.models.hub`): a ``None`` revision pulls the repository's main branch and the
commit actually downloaded is recorded in the installed bundle; a ``None`` SHA-256 is checked
against the SHA-256 the Hub announces for the file (Git LFS files), and the hash of what was
downloaded is recorded in the bundle's ``model.json`` either way.

``PHOTOSEEK_CATALOGUE`` may name a JSON file with more entries (a list of objects with the
fields of :class:`CatalogueModel`); they are added to, or replace, the built-in ones by name.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import paths
from engine.errors import ModelError, ModelNotFoundError


@dataclass(frozen=True)
class CatalogueFile:
    """One file of a model repository."""

    path: str
    size: int | None = None
    sha256: str | None = None
    #: Optional files are fetched when the repository has them (small configs some exports lack).
    required: bool = True


@dataclass(frozen=True)
class CatalogueModel:
    """A model that ``photoseek models pull NAME`` can install."""

    name: str
    title: str
    repo: str
    revision: str | None
    layout: str  # "immich-clip" or "hf-captioner" (see engine.models.importers)
    kind: str  # "joint-embedding" or "captioner"
    license: str
    languages: tuple[str, ...]
    embedding_size: int | None
    files: tuple[CatalogueFile, ...]
    description: str = ""
    variant: str = "auto"  # which ONNX files of a captioner export: auto, fp32 or quantized
    #: Where the pinned values were found (shown by `photoseek models list` and docs/models.md).
    provenance: str = ""
    tags: tuple[str, ...] = field(default=())

    @property
    def download_size(self) -> int | None:
        """Bytes to download, when every file's size is known."""
        sizes = [f.size for f in self.files]
        return None if any(s is None for s in sizes) else sum(s for s in sizes if s is not None)

    @property
    def known_size(self) -> int:
        """Bytes of the files whose size is known (a lower bound of the download)."""
        return sum(f.size or 0 for f in self.files)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CatalogueModel:
        try:
            files = tuple(
                CatalogueFile(
                    path=str(f["path"]),
                    size=None if f.get("size") is None else int(f["size"]),
                    sha256=f.get("sha256"),
                    required=bool(f.get("required", True)),
                )
                for f in data["files"]
            )
            return cls(
                name=str(data["name"]),
                title=str(data.get("title", data["name"])),
                repo=str(data["repo"]),
                revision=data.get("revision"),
                layout=str(data["layout"]),
                kind=str(data.get("kind", "joint-embedding" if data["layout"] == "immich-clip" else "captioner")),
                license=str(data.get("license", "unknown")),
                languages=tuple(data.get("languages", ())),
                embedding_size=data.get("embedding_size"),
                files=files,
                description=str(data.get("description", "")),
                variant=str(data.get("variant", "auto")),
                provenance=str(data.get("provenance", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"malformed catalogue entry {data.get('name', '?')!r}: {exc!r}") from exc


_IMMICH_SMALL_FILES = (
    CatalogueFile("config.json"),
    CatalogueFile("visual/preprocess_cfg.json"),
    CatalogueFile("textual/tokenizer_config.json", required=False),
    CatalogueFile("textual/special_tokens_map.json", required=False),
)

#: Three unrelated public projects that download this repository pin the same sizes and SHA-256
#: for its three large files; one of them pins them at this commit.
_VIT_B_32_PROVENANCE = (
    "Revision, sizes and SHA-256 of visual/model.onnx, textual/model.onnx and textual/tokenizer.json as "
    "pinned in public code that downloads immich-app/ViT-B-32__openai: a Karakeep fork's CLIP_FILES pins all "
    "three at commit a857c8de2c07; a Rust photo manager's bundle catalogue pins the same three hashes, and a "
    "Python photo tool the same two ONNX sizes and hashes. Small JSON files: not found, recorded at download."
)

#: The languages M-CLIP's text encoders were trained on (M-CLIP's translation/data/fine_tune_languages.csv:
#: 48 target languages, Chinese in two scripts).
_MCLIP_CODES = (
    "af am ar az bg bn bs ca cs da de el en es et fr hi hr hu id is it ja mk ml mr nl pl pt ro ru sl sq sr sv sw te "
    "tk tl tr ug uk ur uz vi xh zh"
)
_MCLIP_LANGUAGES: tuple[str, ...] = tuple(_MCLIP_CODES.split())

CATALOGUE: tuple[CatalogueModel, ...] = (
    CatalogueModel(
        name="clip-vit-b32",
        title="OpenAI CLIP ViT-B/32 (Immich export)",
        repo="immich-app/ViT-B-32__openai",
        revision="a857c8de2c07bbcfa6646adfcf31b798845afa1e",
        layout="immich-clip",
        kind="joint-embedding",
        license="MIT",
        languages=("en",),
        embedding_size=512,
        files=(
            CatalogueFile(
                "visual/model.onnx", 351_613_724, "33a3df41ceef21acdf371af00f6dd0456ec1f9eba24d03a7720f9c3734e40859"
            ),
            CatalogueFile(
                "textual/model.onnx", 254_193_396, "b80cf0af751533a6712d92247f0ddc0c95208748bc59a1a27f33e67be6864e3b"
            ),
            CatalogueFile(
                "textual/tokenizer.json", 3_642_073, "6d9109cc838977f3ca94a379eec36aecc7c807e1785cd729660ca2fc0171fb35"
            ),
            *_IMMICH_SMALL_FILES,
        ),
        description="The original CLIP: fast, English only. Immich's default smart-search model.",
        provenance=_VIT_B_32_PROVENANCE,
    ),
    CatalogueModel(
        name="siglip-b16",
        title="Google SigLIP ViT-B/16, 224 px (Immich export)",
        repo="immich-app/ViT-B-16-SigLIP__webli",
        revision=None,
        layout="immich-clip",
        kind="joint-embedding",
        license="Apache-2.0",
        languages=("en",),
        embedding_size=768,
        files=(
            CatalogueFile("visual/model.onnx"),
            CatalogueFile("textual/model.onnx"),
            CatalogueFile("textual/tokenizer.json"),
            *_IMMICH_SMALL_FILES,
        ),
        description="Sigmoid-loss CLIP: better English search than ViT-B/32 at about 4x its image cost.",
        provenance="No pinned revision, sizes or SHA-256 found; LFS files are checked against the Hub's own SHA-256.",
    ),
    CatalogueModel(
        name="mclip-xlmr-b16plus",
        title="M-CLIP XLM-RoBERTa-Large + OpenCLIP ViT-B/16+ (Immich export)",
        repo="immich-app/XLM-Roberta-Large-Vit-B-16Plus",
        revision=None,
        layout="immich-clip",
        kind="joint-embedding",
        license="MIT",
        # The 48 languages its text encoder was trained on (M-CLIP's translation/data/fine_tune_languages.csv).
        languages=_MCLIP_LANGUAGES,
        embedding_size=640,
        files=(
            CatalogueFile("visual/model.onnx"),
            CatalogueFile("textual/model.onnx"),
            CatalogueFile("textual/tokenizer.json"),
            *_IMMICH_SMALL_FILES,
        ),
        description="Search in 48 languages; the text encoder is large (slow queries, large download).",
        provenance="No pinned revision, sizes or SHA-256 found; LFS files are checked against the Hub's own SHA-256.",
    ),
    CatalogueModel(
        name="vit-gpt2-captioner",
        title="ViT-GPT2 image captioning (nlpconnect, int8 ONNX by Xenova)",
        repo="Xenova/vit-gpt2-image-captioning",
        revision=None,
        layout="hf-captioner",
        kind="captioner",
        license="Apache-2.0",
        languages=("en",),
        embedding_size=None,
        files=(
            CatalogueFile(
                "onnx/encoder_model_quantized.onnx",
                None,
                "6f6e2e27c11303cf533682184543333e7ecb930a734197a0272a1e408aba2766",
            ),
            CatalogueFile(
                "onnx/decoder_model_merged_quantized.onnx",
                None,
                "1f3ec53b5fc3614c0b54ee786755a7ec3007841f57543f8e241499edfadfa98f",
            ),
            CatalogueFile("tokenizer.json", None, "6e785cd4f004c9291dadeba7d8d1c2871318d368a1cfcd416c0571dcd8f11413"),
            CatalogueFile("config.json"),
            CatalogueFile("generation_config.json", required=False),
            CatalogueFile("preprocessor_config.json"),
        ),
        description="Writes a short English sentence for every photo (COCO-style captions).",
        variant="quantized",
        provenance=(
            "SHA-256 of onnx/encoder_model_quantized.onnx as pinned by two unrelated public projects (a Flutter "
            "photo app's model catalogue and a Java VLM manifest); onnx/decoder_model_merged_quantized.onnx as "
            "pinned by the first, tokenizer.json by the second. No revision or exact sizes found."
        ),
    ),
)


def catalogue() -> dict[str, CatalogueModel]:
    """Known models by name: the built-in list plus ``PHOTOSEEK_CATALOGUE``'s entries."""
    models = {m.name: m for m in CATALOGUE}
    extra = os.environ.get("PHOTOSEEK_CATALOGUE")
    if extra:
        path = Path(extra).expanduser()
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelError(f"cannot read PHOTOSEEK_CATALOGUE {path}: {exc}") from exc
        if not isinstance(entries, list):
            raise ModelError(f"PHOTOSEEK_CATALOGUE {path} must hold a JSON list of models")
        for entry in entries:
            model = CatalogueModel.from_json(entry)
            models[model.name] = model
    return models


def find(name: str) -> CatalogueModel:
    """The catalogue entry called ``name`` (or whose Hub repository is ``name``)."""
    models = catalogue()
    if name in models:
        return models[name]
    for model in models.values():
        if name == model.repo:
            return model
    raise ModelNotFoundError(f"no model called {name!r} in the catalogue (see `photoseek models list`)")


def _measured(name: str) -> dict[str, float]:
    """This project's measurements of a catalogue model with same-shaped graphs
    (resources/models/speed.json)."""
    speed_file = paths.RESOURCES_DIR / "models" / "speed.json"
    try:
        return dict(json.loads(speed_file.read_text(encoding="utf-8"))["models"].get(name, {}))
    except (OSError, ValueError, KeyError):
        return {}


def download_estimate(name: str) -> tuple[float | None, bool]:
    """Megabytes a pull of ``name`` downloads, and whether that is exact (every file's size is
    pinned). Otherwise the measured size of its ONNX graphs, never less than the files whose
    size is pinned; None when neither is known."""
    return _download_mb(find(name), _measured(name))


def _download_mb(entry: CatalogueModel, speeds: dict[str, float]) -> tuple[float | None, bool]:
    if entry.download_size:
        return entry.download_size / 1e6, True
    measured = speeds.get("onnx_mb")
    if measured is None:
        return (entry.known_size / 1e6 or None), False
    return max(float(measured), entry.known_size / 1e6), False


def measured_cost(name: str) -> str:
    """What a catalogue model costs in size and speed, in words (for `models list` and the GUI)."""
    speeds = _measured(name)
    size, exact = _download_mb(find(name), speeds)
    if size is None:
        parts = ["download size shown when it starts"]
    elif exact:
        parts = [f"{size:,.0f} MB download"]
    else:
        parts = [f"about {size:,.0f} MB download"]
    if "photos_per_s" in speeds:
        parts.append(f"about {speeds['photos_per_s']:.0f} photos/s to index on 2 CPU cores")
    if "query_ms" in speeds:
        parts.append(f"{speeds['query_ms']:.0f} ms per query")
    if "seconds_per_caption" in speeds:
        parts.append(f"{speeds['seconds_per_caption']:.1f} s per caption on 2 CPU cores")
    return ", ".join(parts)
