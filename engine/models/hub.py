"""Pulling catalogue models from the Hugging Face Hub with ``huggingface_hub``.

A pull asks the Hub for the repository at the catalogue's revision (``/api/models/{repo}/revision/
{rev}`` with file metadata: the commit, every file's size and, for Git LFS files, its SHA-256),
then downloads each file at that exact commit with :func:`huggingface_hub.hf_hub_download`
(``/{repo}/resolve/{commit}/{file}``) into a staging folder beside the models folder.

* **Pinned**: files are fetched by commit hash, so a repository that moves on cannot change
  what a pull installs; a catalogue revision of ``None`` means the main branch, and the commit
  it resolved to becomes the bundle's version.
* **Checked**: every file is checked against the catalogue's SHA-256 (when the catalogue has
  one), else against the SHA-256 the Hub announces for LFS files, and always against its size;
  a mismatch deletes the file and refuses the pull. The hashes of what was installed are
  recorded in the bundle's ``model.json``.
* **Resumed**: a connection that drops mid-file is resumed with a Range request by
  huggingface_hub; files completed by an interrupted pull stay in the staging folder and are
  not downloaded again by the next pull of the same model.
* **Atomic**: the bundle is assembled in staging and moved into the models folder in one
  rename, only once every file is complete and verified.
"""

from __future__ import annotations

import inspect
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import filelock

from engine import paths
from engine.errors import BundleIntegrityError, DownloadError, ModelError
from engine.models.catalogue import CatalogueModel
from engine.models.importers import BundleInfo, convert, install, shown_as, staging_root
from engine.models.manifest import MANIFEST_NAME, Manifest, load_manifest, sha256_file

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://huggingface.co"
_TRUE = {"1", "ON", "YES", "TRUE"}


@dataclass
class PullProgress:
    """Reported while a model downloads."""

    model: str
    file: str
    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int | None  # None while some file's size is unknown
    started: float = field(default_factory=time.monotonic)

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = self.bytes_done / elapsed / 1e6
        total = f"/{self.bytes_total / 1e6:.1f}" if self.bytes_total else ""
        return (
            f"{self.model}: file {min(self.files_done + 1, self.files_total)}/{self.files_total} ({self.file}), "
            f"{self.bytes_done / 1e6:.1f}{total} MB, {rate:.1f} MB/s"
        )


PullCallback = Callable[[PullProgress], None]


def offline() -> bool:
    """Whether the Hub is switched off (``HF_HUB_OFFLINE``, as huggingface_hub reads it)."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.upper() in _TRUE


def endpoint() -> str:
    """The Hub to talk to: ``HF_ENDPOINT`` (a mirror) or huggingface.co."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def _offline_message(entry: CatalogueModel) -> str:
    return (
        f"cannot pull {entry.name}: the Hugging Face Hub is switched off on this machine (HF_HUB_OFFLINE is set). "
        f"Unset it, or download the repository {entry.repo} on a machine with a network connection and bring it "
        "here with `photoseek models import DIR`."
    )


def _explain(exc: Exception, entry: CatalogueModel, hub: str, what: str) -> DownloadError:
    """A clear DownloadError for whatever huggingface_hub or the network raised."""
    from huggingface_hub import errors as hf_errors

    if isinstance(exc, hf_errors.OfflineModeIsEnabled):
        return DownloadError(_offline_message(entry))
    if isinstance(exc, hf_errors.RevisionNotFoundError):
        return DownloadError(f"{entry.repo} on {hub} has no revision {entry.revision}")
    if isinstance(exc, hf_errors.RepositoryNotFoundError):
        return DownloadError(f"{entry.repo} is not on {hub} (or is private)")
    if isinstance(exc, hf_errors.EntryNotFoundError):
        return DownloadError(f"{entry.repo} on {hub} has no {what}")
    if isinstance(exc, hf_errors.HfHubHTTPError):
        return DownloadError(f"the Hub at {hub} refused {what}: {exc}")
    if isinstance(exc, hf_errors.LocalEntryNotFoundError) or _is_connection_error(exc):
        cause = exc.__cause__ if isinstance(exc, hf_errors.LocalEntryNotFoundError) and exc.__cause__ else exc
        return DownloadError(
            f"cannot reach the Hugging Face Hub at {hub} ({type(cause).__name__}: {cause}); "
            "check the network connection, or set HF_ENDPOINT to a mirror"
        )
    return DownloadError(f"cannot download {what} from {hub}: {exc}")


def _is_connection_error(exc: BaseException) -> bool:
    """Connection refused, DNS failure, timeout: whichever HTTP client huggingface_hub uses."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    return isinstance(exc, (ConnectionError, TimeoutError)) or bool(
        names & {"ConnectError", "ConnectTimeout", "TimeoutException", "ConnectionError", "Timeout", "NetworkError"}
    )


class _Bytes:
    """A stand-in for tqdm that huggingface_hub drives; it forwards byte counts."""

    sink: Callable[[int], None] = staticmethod(lambda n: None)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.n = int(kwargs.get("initial") or 0)
        if self.n:
            type(self).sink(self.n)

    def __enter__(self) -> _Bytes:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: float = 1) -> None:
        self.n += int(n)
        type(self).sink(int(n))

    def close(self) -> None:
        return None


@dataclass
class _Planned:
    path: str
    size: int | None
    sha256: str | None
    checked_by: str  # "catalogue", "hub-lfs" or "recorded"


def _plan(entry: CatalogueModel, siblings: dict[str, Any], commit: str) -> list[_Planned]:
    plan = []
    for file in entry.files:
        sibling = siblings.get(file.path)
        if sibling is None:
            if file.required:
                raise DownloadError(f"{entry.repo} at {commit[:12]} has no {file.path}")
            continue
        lfs = getattr(sibling, "lfs", None)
        hub_sha = (lfs.get("sha256") if isinstance(lfs, dict) else getattr(lfs, "sha256", None)) if lfs else None
        hub_size = getattr(sibling, "size", None)
        if file.sha256 and hub_sha and file.sha256 != hub_sha:
            raise BundleIntegrityError(
                f"{entry.repo}: the Hub's {file.path} (SHA-256 {hub_sha[:16]}…) is not the file the catalogue pins "
                f"({file.sha256[:16]}…); refusing to download it"
            )
        if file.size is not None and hub_size is not None and file.size != hub_size:
            raise BundleIntegrityError(
                f"{entry.repo}: the Hub's {file.path} has {hub_size} bytes, the catalogue pins {file.size}; "
                "refusing to download it"
            )
        sha = file.sha256 or hub_sha
        checked_by = "catalogue" if file.sha256 else "hub-lfs" if hub_sha else "recorded"
        plan.append(_Planned(file.path, file.size if file.size is not None else hub_size, sha, checked_by))
    return plan


def _verify(local: Path, item: _Planned, entry: CatalogueModel) -> str:
    """Check a downloaded file's size and SHA-256; delete it and raise if it does not match."""
    size = local.stat().st_size
    if item.size is not None and size != item.size:
        local.unlink(missing_ok=True)
        raise BundleIntegrityError(
            f"{entry.name}: {item.path} has {size} bytes but should have {item.size}; "
            "the download was refused and nothing was installed"
        )
    digest = sha256_file(local)
    if item.sha256 and digest != item.sha256:
        local.unlink(missing_ok=True)
        source = "the catalogue" if item.checked_by == "catalogue" else "the Hub"
        raise BundleIntegrityError(
            f"{entry.name}: {item.path} does not match its SHA-256 (expected {item.sha256} from {source}, "
            f"got {digest}); the download was refused and nothing was installed"
        )
    return digest


def _forget_partial(files: Path, path: str) -> None:
    """Drop huggingface_hub's record of a file so that the next pull downloads it afresh."""
    meta = files / ".cache" / "huggingface" / "download" / f"{path}.metadata"
    meta.unlink(missing_ok=True)


def pull(
    entry: CatalogueModel,
    *,
    models_root: Path | None = None,
    hub: str | None = None,
    progress: PullCallback | None = None,
    replace: bool = False,
) -> Manifest:
    """Download ``entry`` from the Hub, verify it, convert it and install it as a bundle."""
    if offline():
        raise DownloadError(_offline_message(entry))
    from huggingface_hub import HfApi

    hub = (hub or endpoint()).rstrip("/")
    revision = entry.revision or "main"
    try:
        info = HfApi(endpoint=hub).model_info(entry.repo, revision=revision, files_metadata=True)
    except Exception as exc:  # huggingface_hub and its HTTP client raise many types; all mean "no"
        raise _explain(exc, entry, hub, f"revision {revision}") from exc
    commit = info.sha or ""
    if len(commit) != 40:
        raise DownloadError(f"{hub} did not say which commit {entry.repo}@{revision} is")
    if entry.revision and len(entry.revision) == 40 and commit != entry.revision:
        raise DownloadError(f"{hub} answered commit {commit} for pinned revision {entry.revision}")
    target = (models_root or paths.models_dir()) / entry.name
    if (target / MANIFEST_NAME).is_file() and not replace:
        try:
            existing = load_manifest(target)
        except ModelError as exc:  # damaged: its files are of no use, so the pull repairs it
            log.warning("%s is damaged (%s); it is installed again", entry.name, exc)
            replace = True
        else:
            if existing.version == commit[:12]:
                log.info("%s is already installed at %s", entry.name, existing.version)
                return existing
            raise ModelError(
                f"{entry.name} {existing.version} is installed; pull with --replace to install {commit[:12]} instead"
            )
    # One pull of a model at a time (two windows, a window and a command): they would share
    # the staging folder, and the first to finish would delete it under the other.
    lock = filelock.FileLock(str(staging_root(models_root) / f"pull-{entry.name}.lock"), thread_local=False)
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        raise ModelError(
            f"{entry.name} is being downloaded already (by another window or command); wait for it to finish"
        ) from None
    try:
        return _download(entry, info, commit, hub, models_root, progress, replace)
    finally:
        lock.release()


def _download(
    entry: CatalogueModel,
    info: Any,
    commit: str,
    hub: str,
    models_root: Path | None,
    progress: PullCallback | None,
    replace: bool,
) -> Manifest:
    """The files of ``entry`` at ``commit``, verified, converted and installed (see :func:`pull`)."""
    from huggingface_hub import hf_hub_download

    plan = _plan(entry, {s.rfilename: s for s in info.siblings or []}, commit)
    sizes = [p.size for p in plan]
    total = None if any(s is None for s in sizes) else sum(s for s in sizes if s is not None)
    log.info("pulling %s: %s at %s, %d files", entry.name, entry.repo, commit[:12], len(plan))

    work = staging_root(models_root) / f"pull-{entry.name}-{commit[:12]}"
    files = work / "files"
    files.mkdir(parents=True, exist_ok=True)
    state = PullProgress(entry.name, "", 0, len(plan), 0, total)
    lock = threading.Lock()
    last = [0.0]

    def add(n: int) -> None:
        with lock:
            state.bytes_done += n
            now = time.monotonic()
            if progress is not None and now - last[0] >= 0.2:
                last[0] = now
                progress(state)

    bar = type("_PullBytes", (_Bytes,), {"sink": staticmethod(add)})
    kwargs: dict[str, Any] = {"local_dir": files, "endpoint": hub, "cache_dir": paths.cache_dir() / "huggingface"}
    if "tqdm_class" in inspect.signature(hf_hub_download).parameters:
        kwargs["tqdm_class"] = bar
    digests: dict[str, str] = {}
    for item in plan:
        state.file = item.path
        counted = state.bytes_done
        try:
            path = Path(hf_hub_download(entry.repo, item.path, revision=commit, **kwargs))
        except Exception as exc:  # see above
            raise _explain(exc, entry, hub, item.path) from exc
        if state.bytes_done == counted:  # finished by an earlier, interrupted pull: count it as done
            add(path.stat().st_size)
        try:
            digests[item.path] = _verify(path, item, entry)
        except BundleIntegrityError:
            _forget_partial(files, item.path)
            raise
        state.files_done += 1
        if progress is not None:
            progress(state)

    bundle = work / "bundle"
    shutil.rmtree(bundle, ignore_errors=True)
    try:
        for item in plan:
            target = bundle / item.path
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(files / item.path, target)
        provenance = {
            "hub": entry.repo,
            "endpoint": hub,
            "revision": commit,
            "catalogue_revision": entry.revision,
            "pulled_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "checked": {p.path: p.checked_by for p in plan},
            "catalogue_provenance": entry.provenance,
        }
        bundle_info = BundleInfo(
            id=entry.name,
            version=commit[:12],
            name=entry.title,
            license=entry.license,
            source=f"{hub}/{entry.repo}/tree/{commit}",
            description=entry.description,
            languages=entry.languages,
            provenance=provenance,
        )
        try:
            manifest = convert(bundle, bundle_info, layout=entry.layout, variant=entry.variant)
        except ModelError as exc:  # name the repository, not the staging folder
            raise shown_as(exc, bundle, f"{entry.repo}@{commit[:12]}") from exc
        for name, digest in digests.items():
            if manifest.files[name]["sha256"] != digest:  # changed on disk between check and conversion
                raise BundleIntegrityError(f"{entry.name}: {name} changed while it was being installed")
        if entry.embedding_size and manifest.embedding_size != entry.embedding_size:
            raise ModelError(
                f"{entry.name}: the files describe {manifest.embedding_size}-d embeddings, "
                f"the catalogue {entry.embedding_size}-d"
            )
        installed = install(bundle, models_root, replace=replace)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    shutil.rmtree(work, ignore_errors=True)
    return installed
