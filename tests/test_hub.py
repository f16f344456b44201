"""Pulling models with the real huggingface_hub code from a local Hub stand-in, then using them
through the normal commands: index, search, caption. Nothing is downloaded from the internet."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import socket
from pathlib import Path

import pytest

pytest.importorskip("torch")

from engine import paths
from engine.cli import main
from engine.models.catalogue import CATALOGUE, catalogue
from engine.models.encoder_decoder import EncoderDecoderCaptioner
from engine.models.manifest import load_manifest
from engine.models.runtime import SessionFactory
from tests.hub_models import catalogue_file, make_hf_captioner, make_immich_clip
from tests.hub_server import FakeHub

CLIP_REPO = "immich-app/tiny-clip"
CAPTIONER_REPO = "Xenova/tiny-captioner"
CLIP_FILES = ["visual/model.onnx", "textual/model.onnx", "textual/tokenizer.json"]
SMALL_CLIP_FILES = ["config.json", "visual/preprocess_cfg.json"]
OPTIONAL_CLIP_FILES = ["textual/tokenizer_config.json", "textual/special_tokens_map.json"]


def _pin(folder: Path, name: str) -> dict:
    data = (folder / name).read_bytes()
    return {"path": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


@pytest.fixture(scope="module")
def repos(tmp_path_factory) -> dict[str, Path]:
    """The two repositories as they would be on the Hub (captioner in Xenova's onnx/ layout)."""
    base = tmp_path_factory.mktemp("repos")
    clip = make_immich_clip(base / "tiny-clip")
    captioner, _, _ = make_hf_captioner(base / "tiny-captioner", forms=("merged",))
    (captioner / "onnx").mkdir()
    for name in ("encoder_model", "decoder_model_merged"):
        shutil.move(captioner / f"{name}.onnx", captioner / "onnx" / f"{name}_quantized.onnx")
    return {"clip": clip, "captioner": captioner}


def _entries(repos: dict[str, Path], clip_revision: str | None) -> list[dict]:
    clip, captioner = repos["clip"], repos["captioner"]
    return [
        {
            "name": "tiny-clip",
            "title": "Tiny CLIP (test)",
            "repo": CLIP_REPO,
            "revision": clip_revision,
            "layout": "immich-clip",
            "license": "MIT",
            "languages": ["en"],
            "embedding_size": 16,
            "files": [_pin(clip, f) for f in CLIP_FILES]
            + [{"path": f} for f in SMALL_CLIP_FILES]
            + [{"path": f, "required": False} for f in OPTIONAL_CLIP_FILES],
        },
        {
            "name": "tiny-captioner",
            "title": "Tiny captioner (test)",
            "repo": CAPTIONER_REPO,
            "revision": None,
            "layout": "hf-captioner",
            "variant": "quantized",
            "license": "Apache-2.0",
            "languages": ["en"],
            "files": [
                _pin(captioner, "onnx/encoder_model_quantized.onnx"),
                {"path": "onnx/decoder_model_merged_quantized.onnx"},  # checked against the Hub's LFS SHA-256
                _pin(captioner, "tokenizer.json"),
                {"path": "config.json"},
                {"path": "generation_config.json", "required": False},
                {"path": "preprocessor_config.json"},
            ],
        },
    ]


@pytest.fixture
def hub(repos, tmp_path, monkeypatch):
    with FakeHub(lifetime=120) as server:
        commit = server.add_repo(CLIP_REPO, repos["clip"])
        server.add_repo(CAPTIONER_REPO, repos["captioner"])
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # no user token or cache is read
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setenv(
            "PHOTOSEEK_CATALOGUE", str(catalogue_file(tmp_path / "catalogue.json", _entries(repos, commit)))
        )
        server.commit = commit  # type: ignore[attr-defined]
        yield server


def _installed(name: str) -> bool:
    return (paths.models_dir() / name / "model.json").is_file()


def test_pull_then_index_search_and_caption_with_the_normal_commands(hub, tmp_path, capsys, rgb_folder):
    assert main(["models", "pull", "tiny-clip"]) == 0
    assert main(["models", "pull", "tiny-captioner"]) == 0
    out = capsys.readouterr().out
    assert "installed tiny-clip@" in out and "installed tiny-captioner@" in out

    clip = load_manifest(paths.models_dir() / "tiny-clip", verify=True)
    assert clip.version == hub.commit[:12]
    provenance = clip.raw["provenance"]
    assert provenance["revision"] == hub.commit and provenance["hub"] == CLIP_REPO
    assert provenance["checked"]["visual/model.onnx"] == "catalogue"
    assert provenance["checked"]["config.json"] == "recorded"  # a small git file: nothing to check against
    captioner = load_manifest(paths.models_dir() / "tiny-captioner", verify=True)
    assert captioner.raw["provenance"]["checked"]["onnx/decoder_model_merged_quantized.onnx"] == "hub-lfs"
    # Every file was fetched at the pinned commit, never at a moving branch name.
    resolves = [r.path for r in hub.requests if "/resolve/" in r.path and r.path.startswith(f"/{CLIP_REPO}/")]
    assert resolves and all(f"/resolve/{hub.commit}/" in p for p in resolves)

    db = str(tmp_path / "lib.sqlite3")
    assert main(["models", "use", "tiny-clip", "--db", db, "--device", "cpu"]) == 0
    assert main(["models", "use", "tiny-captioner", "--db", db, "--device", "cpu", "--later"]) == 0
    assert main(["index", str(rgb_folder), "--db", db, "--device", "cpu"]) == 0
    capsys.readouterr()
    assert main(["search", "red", "--db", db, "--json", "--device", "cpu"]) == 0
    hits = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert Path(hits[0]["path"]).name == "red.jpg"

    from PIL import Image

    direct = EncoderDecoderCaptioner(captioner, SessionFactory("cpu"))
    with Image.open(rgb_folder / "red.jpg") as photo:
        expected = direct.caption([photo.convert("RGB")])[0]
    assert expected and hits[0]["caption"] == expected
    assert main(["caption", str(rgb_folder / "red.jpg"), "--db", db, "--device", "cpu"]) == 0
    assert capsys.readouterr().out.strip() == expected

    assert main(["models", "list", "--db", db]) == 0
    listing = capsys.readouterr().out
    assert re.search(r"tiny-clip .*\[active\]", listing) and re.search(r"tiny-captioner .*\[captions\]", listing)
    assert "clip-vit-b32" in listing  # the built-in catalogue is offered too


def test_pulling_an_installed_model_again_downloads_nothing(hub, capsys):
    assert main(["models", "pull", "tiny-clip"]) == 0
    downloads = len([r for r in hub.requests if r.method == "GET" and "/resolve/" in r.path])
    assert main(["models", "pull", "tiny-clip"]) == 0
    assert len([r for r in hub.requests if r.method == "GET" and "/resolve/" in r.path]) == downloads
    out = capsys.readouterr().out
    assert out.count("installed tiny-clip@") == 1 and "is installed already" in out


def test_a_damaged_install_is_repaired_by_pulling_it_again(hub, capsys):
    assert main(["models", "pull", "tiny-clip"]) == 0
    graph = paths.models_dir() / "tiny-clip" / "textual" / "model.onnx"
    graph.write_bytes(graph.read_bytes()[:500])
    assert main(["models", "pull", "tiny-clip"]) == 0
    assert load_manifest(paths.models_dir() / "tiny-clip", verify=True).id == "tiny-clip"
    assert len(hub.downloads("/textual/model.onnx")) == 2


def test_a_second_pull_of_the_same_model_at_once_is_refused_clearly(hub, capsys):
    import filelock

    # As another window or command holds it while it downloads.
    lock = filelock.FileLock(str(paths.models_dir() / ".staging" / "pull-tiny-clip.lock"), thread_local=False)
    with lock.acquire(timeout=0):
        assert main(["models", "pull", "tiny-clip"]) == 1
    assert "tiny-clip is being downloaded already" in capsys.readouterr().err
    assert not _installed("tiny-clip")
    assert main(["models", "pull", "tiny-clip"]) == 0


def test_a_corrupted_file_is_refused_and_nothing_is_installed(hub, capsys):
    hub.corrupt.add((CLIP_REPO, "textual/model.onnx"))
    assert main(["models", "pull", "tiny-clip"]) == 1
    err = capsys.readouterr().err
    assert "textual/model.onnx does not match its SHA-256" in err and "nothing was installed" in err
    assert not _installed("tiny-clip")
    staged = list((paths.models_dir() / ".staging").glob("pull-tiny-clip-*/files"))
    assert staged and not (staged[0] / "textual" / "model.onnx").exists()

    # Once the Hub serves the right bytes, a new pull fetches only what is still missing.
    hub.corrupt.clear()
    assert main(["models", "pull", "tiny-clip"]) == 0
    assert _installed("tiny-clip")
    assert len(hub.downloads("/visual/model.onnx")) == 1
    assert len(hub.downloads("/textual/model.onnx")) == 2
    # Nothing but the (empty) file that keeps two pulls of the model apart.
    assert [p.name for p in (paths.models_dir() / ".staging").iterdir()] == ["pull-tiny-clip.lock"]


def test_a_file_the_catalogue_does_not_pin_is_checked_against_the_hubs_sha256(hub, capsys):
    hub.corrupt.add((CAPTIONER_REPO, "onnx/decoder_model_merged_quantized.onnx"))
    assert main(["models", "pull", "tiny-captioner"]) == 1
    assert "from the Hub" in capsys.readouterr().err
    assert not _installed("tiny-captioner")


def test_a_dropped_connection_resumes_where_it_stopped(hub, repos, monkeypatch):
    from huggingface_hub import constants

    # huggingface_hub resumes from the last whole chunk it wrote (10 MB); the test files are
    # smaller, so the chunks are made smaller here.
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 4096)
    hub.drop_once.add((CLIP_REPO, "visual/model.onnx"))
    assert main(["models", "pull", "tiny-clip"]) == 0
    gets = hub.downloads("/visual/model.onnx")
    assert len(gets) == 2 and gets[0].range is None
    assert gets[1].range is not None and int(gets[1].range.split("=")[1].split("-")[0]) > 0
    installed = (paths.models_dir() / "tiny-clip" / "visual" / "model.onnx").read_bytes()
    assert installed == (repos["clip"] / "visual" / "model.onnx").read_bytes()


def test_offline_gives_a_clear_error_and_touches_no_network(hub, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["models", "pull", "tiny-clip"]) == 1
    err = capsys.readouterr().err
    assert "HF_HUB_OFFLINE" in err and "photoseek models import" in err
    assert hub.requests == []


def test_an_unreachable_hub_gives_a_clear_error(hub, monkeypatch, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port}")
    assert main(["models", "pull", "tiny-clip"]) == 1
    assert "cannot reach the Hugging Face Hub" in capsys.readouterr().err
    assert not _installed("tiny-clip")


def test_a_revision_or_file_the_hub_does_not_have_is_reported(hub, repos, tmp_path, monkeypatch, capsys):
    entries = _entries(repos, "0" * 40)
    entries[1]["files"].append({"path": "onnx/vision_tower.onnx"})
    monkeypatch.setenv("PHOTOSEEK_CATALOGUE", str(catalogue_file(tmp_path / "bad.json", entries)))
    assert main(["models", "pull", "tiny-clip"]) == 1
    assert f"has no revision {'0' * 40}" in capsys.readouterr().err
    assert main(["models", "pull", "tiny-captioner"]) == 1
    assert "has no onnx/vision_tower.onnx" in capsys.readouterr().err


def test_remove_refuses_a_model_the_library_uses(hub, tmp_path, capsys):
    assert main(["models", "pull", "tiny-clip"]) == 0
    db = str(tmp_path / "lib.sqlite3")
    assert main(["models", "use", "tiny-clip", "--db", db, "--device", "cpu"]) == 0
    assert main(["models", "remove", "tiny-clip", "--db", db]) == 2
    assert _installed("tiny-clip")
    assert main(["models", "remove", "tiny-clip", "--db", db, "--force"]) == 0
    assert not _installed("tiny-clip")


def test_the_catalogue_holds_the_promised_models_with_honest_pins():
    models = catalogue()
    joint = [m for m in CATALOGUE if m.kind == "joint-embedding"]
    assert {m.layout for m in joint} == {"immich-clip"}
    assert any("ViT-B-32__openai" in m.repo for m in joint)
    assert any("SigLIP" in m.repo for m in joint)
    assert any(len(m.languages) > 10 for m in joint)
    assert any(m.kind == "captioner" and m.layout == "hf-captioner" for m in CATALOGUE)
    for model in models.values():
        assert model.license and model.languages and model.provenance
        assert model.revision is None or re.fullmatch(r"[0-9a-f]{40}", model.revision)
        for file in model.files:
            assert file.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", file.sha256)
            assert file.size is None or file.size > 0
