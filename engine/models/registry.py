"""Installed model bundles and loading one by name."""

from __future__ import annotations

import logging
import math
import shutil
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from engine import paths
from engine.errors import BundleIntegrityError, ModelError, ModelNotFoundError
from engine.models.builtin import BUILTIN_ID, Progress, ensure_builtin
from engine.models.captioner import Captioner, load_captioner
from engine.models.encoders import ImageEncoder, TextEncoder
from engine.models.manifest import MANIFEST_NAME, Manifest, load_manifest
from engine.models.runtime import SessionFactory

log = logging.getLogger(__name__)

BUILTIN_ALIASES = {None, "", "builtin", "built-in", BUILTIN_ID}


def canonical(name: str | None) -> str:
    """``name`` with the built-in model's aliases ("builtin", as `models use builtin` records it,
    or none at all) given as its id."""
    return BUILTIN_ID if name is None or name in BUILTIN_ALIASES else name


@dataclass(frozen=True)
class DamagedBundle:
    """A bundle folder whose manifest or files cannot be used (a file missing, cut short, or
    changed in size): listed so that it can be named, removed or installed again."""

    root: Path
    reason: str

    def is_named(self, name: str) -> bool:
        return _names_folder(self.root, name)


def _bundles_in(root: Path) -> tuple[list[Manifest], list[DamagedBundle]]:
    """The bundles directly under ``root``: those that can be read, and the damaged ones.
    Hidden folders are skipped: bundles being assembled (``.staging``, a half-built built-in
    model's ``.photoseek-builtin-…``) are not installed yet."""
    found: list[Manifest] = []
    damaged: list[DamagedBundle] = []
    if root.is_dir():
        for folder in sorted(root.iterdir()):
            if folder.name.startswith(".") or not (folder / MANIFEST_NAME).is_file():
                continue
            try:
                found.append(load_manifest(folder))
            except ModelError as exc:
                log.info("model bundle %s cannot be used: %s", folder, exc)  # (said where it is named)
                damaged.append(DamagedBundle(folder, str(exc)))
    return found, damaged


def installed(models_root: Path | None = None) -> list[Manifest]:
    """Every readable bundle under the models folder. Without ``models_root``, the read-only
    bundles shipped with the application follow, unless the user's folder has one of that id."""
    found = _bundles_in(models_root or paths.models_dir())[0]
    if models_root is None:
        ids = {manifest.id for manifest in found}
        found += [m for m in _bundles_in(paths.bundled_models_dir())[0] if m.id not in ids]
    return found


def damaged(models_root: Path | None = None) -> list[DamagedBundle]:
    """The damaged bundles in the user's models folder (see :class:`DamagedBundle`)."""
    return _bundles_in(models_root or paths.models_dir())[1]


def _damaged_message(name: str, bundle: DamagedBundle) -> str:
    return (
        f"the model {name!r} is damaged ({bundle.reason}): install it again (`photoseek models pull "
        f"{bundle.root.name}`, or `models import FOLDER --replace`), or remove it (`photoseek models remove "
        f"{bundle.root.name}`)"
    )


def resolve(name: str | None, models_root: Path | None = None, progress: Progress | None = None) -> Path:
    """The bundle folder for ``name``: the built-in model, an installed id, or a folder path."""
    if name in BUILTIN_ALIASES:
        return ensure_builtin(models_root, progress=progress)
    assert name is not None
    candidate = Path(name).expanduser()
    if (candidate / MANIFEST_NAME).is_file():
        return candidate
    for manifest in installed(models_root):
        if name in (manifest.id, manifest.label, manifest.root.name):
            return manifest.root
    for bundle in damaged(models_root):
        if bundle.is_named(name):
            raise BundleIntegrityError(_damaged_message(name, bundle))
    from engine.models.catalogue import catalogue, download_estimate

    if name in catalogue():  # offered (`models list`: Available), not downloaded yet
        megabytes, exact = download_estimate(name)
        size = "" if megabytes is None else f" ({'' if exact else 'about '}{megabytes:.0f} MB)"
        raise ModelNotFoundError(
            f"the model {name!r} is not installed: `photoseek models pull {name}` downloads it{size}", name
        )
    raise ModelNotFoundError(f"no model named {name!r} (see `photoseek models list`)", name)


@dataclass
class LoadedModel:
    """A joint-embedding bundle ready to run: encoders, captioner, and where it runs."""

    manifest: Manifest
    image: ImageEncoder
    text: TextEncoder
    captioner: Captioner | None
    sessions: SessionFactory

    @property
    def id(self) -> str:
        """The key stored with every vector: vectors of different ids are never compared."""
        return self.manifest.label

    @property
    def cutoff(self) -> float:
        return self.manifest.search_setting("cutoff", 0.2)

    @property
    def similar_cutoff(self) -> float:
        """The least score a photo must reach to be shown by Find similar on the photo-to-photo
        vectors (``search.similar_cutoff``); every photo where the model sets none."""
        return self.manifest.search_setting("similar_cutoff", -1.0)

    def _moved(self, floor: float, chosen: float | None) -> float:
        """``floor`` moved by a chosen cutoff's difference from the model's cutoff: a cutoff
        chosen above the model's shows fewer photos, one below it more (the model's floors
        share the model's scale); -1, the lowest score, shows every photo."""
        if chosen is None:
            return floor
        if chosen <= -1.0:
            return -math.inf
        return floor + (chosen - self.cutoff)

    def similar_floor(self, chosen: float | None = None) -> float:
        """The floor of Find similar on the photo-to-photo vectors; a chosen cutoff moves it
        (:meth:`_moved`), or applies as it is where the model sets none."""
        if "similar_cutoff" not in self.manifest.search:
            return -1.0 if chosen is None else chosen
        return self._moved(self.similar_cutoff, chosen)

    @cached_property
    def reference(self) -> np.ndarray | None:
        """The reference photo's vector (``search.reference``), or None."""
        name = self.manifest.search.get("reference")
        if name is None:
            return None
        try:
            vector = np.load(self.manifest.path(str(name)), allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ModelError(f"model {self.manifest.id}: cannot read {name}: {exc}") from exc
        if vector.shape != (self.manifest.embedding_size,):
            raise ModelError(f"model {self.manifest.id}: {name} is not one vector of {self.manifest.embedding_size}")
        return vector.astype(np.float32)

    def relevance_floor(self, query: np.ndarray, lift: float | None = None, chosen: float | None = None) -> float:
        """The least score a result of the query vector ``query`` (a unit vector: a
        description, with or without arithmetic) must reach: the model's cutoff and, where the
        model has a reference photo, its score with that photo plus the lift (the model's, or
        ``lift`` where given; docs/quality.md, "The relevance cutoff"). A chosen cutoff moves
        it (:meth:`_moved`)."""
        if self.reference is None:
            return self._moved(self.cutoff, chosen)
        lift = self.manifest.search_setting("relevance_lift", 0.0) if lift is None else lift
        return self._moved(max(self.cutoff, float(query @ self.reference) + lift), chosen)


def load_captioner_bundle(name: str, sessions: SessionFactory, models_root: Path | None = None) -> Captioner:
    """The captioner of bundle ``name`` (a ``captioner`` bundle, or a joint bundle with one)."""
    manifest = load_manifest(resolve(name, models_root))
    captioner = load_captioner(manifest, sessions)
    if captioner is None:
        raise ModelError(f"{manifest.id} has no captioner")
    return captioner


def load_model(
    name: str | None = None,
    *,
    device: str = "auto",
    threads: int | None = None,
    models_root: Path | None = None,
    progress: Progress | None = None,
    captioner: str | None = None,
) -> LoadedModel:
    """Load a joint-embedding model. Its captions come from ``captioner`` (a bundle name) when
    given, else from the captioner the bundle declares (its own, or another bundle it names)."""
    folder = resolve(name, models_root, progress)
    manifest = load_manifest(folder)
    if manifest.kind != "joint-embedding":
        raise ModelError(f"{manifest.id} is a {manifest.kind}, not a joint-embedding model")
    sessions = SessionFactory(device, threads)
    log.info("model %s (%s) from %s", manifest.label, manifest.name, folder)
    named = captioner or (manifest.captioner or {}).get("bundle")
    return LoadedModel(
        manifest=manifest,
        image=ImageEncoder(manifest, sessions),
        text=TextEncoder(manifest, sessions),
        captioner=load_captioner_bundle(named, sessions, models_root) if named else load_captioner(manifest, sessions),
        sessions=sessions,
    )


def _names_folder(folder: Path, name: str) -> bool:
    """Whether ``name`` is the bundle folder's name or a path to it."""
    if name == folder.name:
        return True
    try:
        return Path(name).expanduser().resolve() == folder.resolve()
    except (OSError, ValueError):
        return False


def is_named(manifest: Manifest, name: str) -> bool:
    """Whether ``name`` (an id, an ``id@version`` label, a folder name or path) names this bundle."""
    return name in (manifest.id, manifest.label) or _names_folder(manifest.root, name)


def remove(name: str, models_root: Path | None = None) -> tuple[str, Path]:
    """Delete an installed bundle, or a damaged one (the built-in one is rebuilt on its next
    use). Returns what was removed (a label, or the folder's name with "damaged") and from where."""
    root = models_root or paths.models_dir()
    found, broken = _bundles_in(root)
    removed = next(((m.label, m.root) for m in found if is_named(m, name)), None)
    if removed is None:
        removed = next(((f"{b.root.name} (damaged)", b.root) for b in broken if b.is_named(name)), None)
    if removed is None:
        raise ModelNotFoundError(f"no installed model named {name!r} (see `photoseek models list`)", name)
    label, folder = removed
    if folder.parent.resolve() != root.resolve():
        raise ModelError(f"{folder} is not inside {root}; not removing it")
    shutil.rmtree(folder)
    log.info("removed model bundle %s from %s", label, folder)
    return label, folder
