"""The read-only model folder shipped with a packaged application (``paths.bundled_models_dir``)."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import numpy as np
import pytest

from engine import paths
from engine.errors import ModelError
from engine.models import registry
from engine.models.builtin import BUILTIN_ID, BUILTIN_VERSION, ensure_builtin
from tests.tiny_model import make_tiny_bundle


@pytest.fixture
def no_build(monkeypatch: pytest.MonkeyPatch) -> None:
    """Building the built-in model fails at once (as in a package without torch)."""
    import engine.models.builtin

    monkeypatch.setitem(sys.modules, "engine.models.builtin.build", None)
    # Once imported (the training code uses its colour naming), the submodule is also an
    # attribute of its package, which `from engine.models.builtin import build` finds first.
    monkeypatch.delattr(engine.models.builtin, "build", raising=False)


@pytest.fixture
def shipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A prebuilt built-in bundle in a read-only shipped models folder."""
    root = tmp_path / "app" / "models"
    folder = make_tiny_bundle(root / BUILTIN_ID, model_id=BUILTIN_ID, version=BUILTIN_VERSION)
    for path in [*folder.iterdir(), folder]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    monkeypatch.setenv("PHOTOSEEK_BUNDLED_MODELS", str(root))
    yield folder
    for path in [folder, *folder.iterdir()]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)


def test_default_bundled_folder_is_in_resources(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PHOTOSEEK_BUNDLED_MODELS", raising=False)
    assert paths.bundled_models_dir() == paths.RESOURCES_DIR / "models"


def test_builtin_comes_from_the_shipped_folder_without_building(shipped: Path, no_build: None) -> None:
    before = sorted((p.name, p.stat().st_mtime_ns) for p in shipped.iterdir())
    assert ensure_builtin() == shipped
    model = registry.load_model()
    assert model.manifest.root == shipped
    red, blue = model.text.encode(["red", "blue"])
    assert np.argmax(red) != np.argmax(blue)
    assert sorted((p.name, p.stat().st_mtime_ns) for p in shipped.iterdir()) == before
    assert not paths.models_dir().exists()  # nothing was copied or built into the user folder


def test_a_bundle_in_the_user_folder_comes_first(shipped: Path, no_build: None) -> None:
    user = make_tiny_bundle(paths.models_dir() / BUILTIN_ID, model_id=BUILTIN_ID, version=BUILTIN_VERSION)
    assert ensure_builtin() == user
    assert [m.root for m in registry.installed()] == [user]


def test_an_outdated_shipped_bundle_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_build: None
) -> None:
    root = tmp_path / "models"
    make_tiny_bundle(root / BUILTIN_ID, model_id=BUILTIN_ID, version="0.0.1")
    monkeypatch.setenv("PHOTOSEEK_BUNDLED_MODELS", str(root))
    with pytest.raises(ModelError, match="builtin"):
        ensure_builtin()


def test_a_bundle_of_an_earlier_build_is_built_again_or_used_where_no_build_can_run(
    shipped: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from engine.models.builtin import build

    user = make_tiny_bundle(paths.models_dir() / BUILTIN_ID, model_id=BUILTIN_ID, version=BUILTIN_VERSION, revision=1)
    for path in [*shipped.iterdir(), shipped]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)
    make_tiny_bundle(shipped, model_id=BUILTIN_ID, version=BUILTIN_VERSION, revision=1)
    built: list[Path] = []

    def fake_build(target: Path, config: object = None, progress: object = None) -> Path:
        built.append(target)
        return make_tiny_bundle(target, model_id=BUILTIN_ID, version=BUILTIN_VERSION)

    monkeypatch.setattr(build, "build_bundle", fake_build)
    assert ensure_builtin() == user and built == [user]  # same version, earlier build: built again
    assert ensure_builtin() == user and built == [user]  # and then current
    make_tiny_bundle(user, model_id=BUILTIN_ID, version=BUILTIN_VERSION, revision=1)

    def failed_build(target: Path, config: object = None, progress: object = None) -> Path:
        raise ModelError("out of disk space")

    monkeypatch.setattr(build, "build_bundle", failed_build)
    assert ensure_builtin() == user  # the build failed: the earlier build's bundle serves
    assert "a new build failed: out of disk space" in caplog.text
    with pytest.raises(ModelError, match="disk space"):
        ensure_builtin(rebuild=True)  # asked for explicitly: the failure is the answer
    monkeypatch.setitem(sys.modules, "engine.models.builtin.build", None)
    monkeypatch.delattr(sys.modules["engine.models.builtin"], "build", raising=False)
    assert ensure_builtin() == user  # no build possible: the earlier build's bundle serves
    assert "earlier build" in caplog.text


def test_rebuild_builds_the_users_copy_again_and_replaces_it_only_when_done(
    shipped: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from engine.cli import main
    from engine.models.builtin import build

    user = make_tiny_bundle(paths.models_dir() / BUILTIN_ID, model_id=BUILTIN_ID, version=BUILTIN_VERSION)
    built: list[Path] = []

    def fake_build(target: Path, config: object = None, progress: object = None) -> Path:
        built.append(target)
        make_tiny_bundle(target, model_id=BUILTIN_ID, version=BUILTIN_VERSION)
        return target

    def failed_build(target: Path, config: object = None, progress: object = None) -> Path:
        raise ModelError("out of disk space")

    monkeypatch.setattr(build, "build_bundle", fake_build)
    assert main(["models", "build"]) == 0 and not built  # current: nothing to do
    assert main(["models", "build", "--rebuild"]) == 0 and built == [user]
    assert capsys.readouterr().out.strip().endswith(str(user))
    monkeypatch.setattr(build, "build_bundle", failed_build)
    with pytest.raises(ModelError, match="disk space"):
        ensure_builtin(rebuild=True)
    assert ensure_builtin() == user  # the old bundle is still there


def test_installed_lists_shipped_bundles_after_the_users(shipped: Path, tiny_bundle: Path) -> None:
    mine = make_tiny_bundle(paths.models_dir() / "tiny-rgb")
    assert [m.root for m in registry.installed()] == [mine, shipped]
    assert registry.resolve(BUILTIN_ID) == shipped
    # An explicit models folder means just that folder.
    assert [m.root for m in registry.installed(paths.models_dir())] == [mine]
