"""Importing Immich CLIP folders and Hugging Face image-to-text exports as bundles."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image
from tokenizers import Tokenizer

pytest.importorskip("torch")

from engine import paths
from engine.errors import ModelError
from engine.models.importers import BundleInfo, detect_layout, import_folder
from engine.models.manifest import MANIFEST_NAME
from engine.models.registry import installed, load_captioner_bundle, load_model
from engine.models.runtime import SessionFactory
from tests.hub_models import TINY_MCLIP, TINY_SIGLIP, make_hf_captioner, make_immich_clip


def _tree_digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*")
            if p.is_file()}  # fmt: skip


def _immich_reference_pixels(image: Image.Image, cfg: dict) -> np.ndarray:
    """Immich's preprocessing, written out from its preprocess_cfg.json (for sizes that divide evenly)."""
    size = cfg["size"][0]
    resample = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}[cfg["interpolation"]]
    if cfg.get("resize_mode", "shortest") == "squash":
        image = image.resize((size, size), resample)
    else:
        w, h = image.size
        image = image.resize((size, h * size // w) if w < h else (w * size // h, size), resample)
        left, top = (image.width - size) // 2, (image.height - size) // 2
        image = image.crop((left, top, left + size, top + size))
    x = np.asarray(image, dtype=np.float32) / 255.0
    x = (x - np.array(cfg["mean"], dtype=np.float32)) / np.array(cfg["std"], dtype=np.float32)
    return x.transpose(2, 0, 1)[None]


@pytest.mark.parametrize("shape", [None, TINY_SIGLIP, TINY_MCLIP], ids=["clip", "siglip", "mclip"])
def test_immich_clip_import_follows_the_models_own_preprocessing_and_tokenizer(tmp_path, shape):
    source = make_immich_clip(tmp_path / "src" / "model", *(() if shape is None else (shape,)))
    before = _tree_digest(source)
    manifest = import_folder(source)
    assert _tree_digest(source) == before, "the source folder must only be read"
    assert manifest.root == paths.models_dir() / "model" and manifest.kind == "joint-embedding"
    assert not (manifest.root / "README.md").exists()  # files the model does not use are not kept
    cfg = json.loads((source / "visual" / "preprocess_cfg.json").read_text())
    config = json.loads((source / "config.json").read_text())
    assert manifest.embedding_size == config["embed_dim"]

    model = load_model(manifest.id, device="cpu")
    photo = Image.fromarray((np.random.default_rng(1).random((48, 96, 3)) * 255).astype(np.uint8))
    expected_pixels = _immich_reference_pixels(photo, cfg)
    np.testing.assert_allclose(model.image.preprocess_batch([photo]), expected_pixels, atol=1e-5)

    visual = ort.InferenceSession(str(source / "visual" / "model.onnx"), providers=["CPUExecutionProvider"])
    expected = visual.run(None, {"image": expected_pixels})[0][0]
    np.testing.assert_allclose(
        model.image.encode([photo]).embeddings[0], expected / np.linalg.norm(expected), atol=1e-5
    )

    # Text: cleaned as the config says, tokenised by the model's tokenizer, padded with its pad token
    # to the graph's fixed length, as int32.
    query = "  A  photo of a RED   dog!! "
    tokenizer = Tokenizer.from_file(str(source / "textual" / "tokenizer.json"))
    pad = json.loads((source / "textual" / "tokenizer_config.json").read_text())["pad_token"]
    text = " ".join(query.split())
    if config["text_cfg"].get("tokenizer_kwargs", {}).get("clean") == "canonicalize":
        text = text.replace("!", "").lower()
    ids = tokenizer.encode(text).ids
    context = config["text_cfg"]["context_length"]
    padded = np.array([ids + [tokenizer.token_to_id(pad)] * (context - len(ids))], dtype=np.int32)
    textual = ort.InferenceSession(str(source / "textual" / "model.onnx"), providers=["CPUExecutionProvider"])
    feeds = {"text": padded} if shape is not TINY_MCLIP else {
        "input_ids": padded, "attention_mask": (np.arange(context) < len(ids)).astype(np.int32)[None]}  # fmt: skip
    expected_text = textual.run(None, feeds)[0][0]
    np.testing.assert_allclose(model.text.encode_query(query), expected_text / np.linalg.norm(expected_text), atol=1e-5)


def test_several_photos_go_through_a_batch_of_one_graph(tmp_path):
    manifest = import_folder(make_immich_clip(tmp_path / "src" / "clip"))
    model = load_model(manifest.id, device="cpu")
    photos = [Image.new("RGB", (40, 30), c) for c in [(220, 20, 20), (20, 200, 30), (20, 30, 220)]]
    together = model.image.encode(photos).embeddings
    alone = np.stack([model.image.encode([p]).embeddings[0] for p in photos])
    np.testing.assert_allclose(together, alone, atol=1e-6)
    scores = together @ np.stack([model.text.encode_query(w) for w in ("red", "green", "blue")]).T
    assert list(scores.argmax(axis=0)) == [0, 1, 2]  # each colour word finds its photo


def test_captioner_export_in_the_onnx_subfolder_with_quantized_names(tmp_path):
    source, _, _ = make_hf_captioner(tmp_path / "src" / "xenova-style")
    (source / "onnx").mkdir()
    for name in ("encoder_model", "decoder_model_merged"):
        shutil.move(source / f"{name}.onnx", source / "onnx" / f"{name}_quantized.onnx")
    for name in ("decoder_model.onnx", "decoder_with_past_model.onnx"):
        (source / name).unlink()
    assert detect_layout(source) == "hf-captioner"
    manifest = import_folder(source, BundleInfo("vit-gpt2-tiny", license="Apache-2.0", languages=("en",)))
    spec = manifest.captioner or {}
    assert spec["encoder"]["file"] == "onnx/encoder_model_quantized.onnx"
    assert spec["decoder"] == {"file": "onnx/decoder_model_merged_quantized.onnx", "cache": "merged"}
    assert spec["eos_token_id"] == 0 and spec["max_length"] == 12
    assert spec["encoder"]["preprocess"]["resize"] == "squash"
    assert manifest.license == "Apache-2.0" and manifest.languages == ("en",)
    captions = load_captioner_bundle(manifest.id, SessionFactory("cpu")).caption([Image.new("RGB", (30, 30))])
    assert len(captions) == 1 and isinstance(captions[0], str)


def test_plain_decoder_only_export_is_imported_without_a_cache(tmp_path):
    source, _, _ = make_hf_captioner(tmp_path / "src" / "plain", forms=("plain",))
    manifest = import_folder(source)
    assert (manifest.captioner or {})["decoder"] == {"file": "decoder_model.onnx", "cache": "none"}


def test_incomplete_or_unknown_folders_are_refused_and_nothing_is_installed(tmp_path):
    source = make_immich_clip(tmp_path / "src" / "clip")
    (source / "visual" / "preprocess_cfg.json").unlink()
    with pytest.raises(ModelError, match=r"preprocess_cfg\.json is missing") as refused:
        import_folder(source)
    # The folder the user named, not the temporary copy that was being converted.
    assert str(source) in str(refused.value) and ".staging" not in str(refused.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no layout Photoseek knows"):
        import_folder(tmp_path / "empty")
    broken = make_immich_clip(tmp_path / "src" / "broken")
    (broken / "config.json").write_text("{not json")
    with pytest.raises(ModelError, match="cannot read") as refused:
        import_folder(broken)
    assert str(broken / "config.json") in str(refused.value)
    assert installed() == []
    assert list((paths.models_dir() / ".staging").iterdir()) == []


def test_an_installed_id_is_not_replaced_without_asking(tmp_path):
    first = import_folder(make_immich_clip(tmp_path / "a" / "clip"))
    with pytest.raises(ModelError, match="already holds"):
        import_folder(make_immich_clip(tmp_path / "b" / "clip", seed=1))
    assert (first.root / MANIFEST_NAME).is_file()
    replaced = import_folder(make_immich_clip(tmp_path / "c" / "clip", seed=2), replace=True)
    assert replaced.files["visual/model.onnx"]["sha256"] != first.files["visual/model.onnx"]["sha256"]


def test_a_model_the_library_uses_is_not_replaced_unasked(tmp_path, rgb_folder, capsys):
    from engine.cli import main

    db = ["--db", str(tmp_path / "lib.sqlite3")]
    assert main(["models", "import", str(make_immich_clip(tmp_path / "a" / "clip")), "--id", "myclip"]) == 0
    assert main(["index", str(rgb_folder), "--no-text", "--model", "myclip", *db]) == 0
    assert main(["models", "use", "myclip", *db]) == 0
    before = next(m for m in installed() if m.id == "myclip").files["visual/model.onnx"]["sha256"]
    capsys.readouterr()
    newer = str(make_immich_clip(tmp_path / "b" / "clip", seed=1))
    # Its photos' vectors were made by these files: new ones would not match them.
    assert main(["models", "import", newer, "--id", "myclip", "--replace", *db]) == 2
    assert "myclip is in use by" in capsys.readouterr().err
    assert next(m for m in installed() if m.id == "myclip").files["visual/model.onnx"]["sha256"] == before
    assert main(["models", "import", newer, "--id", "myclip", "--replace", "--force", *db]) == 0
    assert next(m for m in installed() if m.id == "myclip").files["visual/model.onnx"]["sha256"] != before


def test_a_damaged_bundle_is_listed_named_and_removable(tmp_path, capsys):
    from engine.cli import main

    assert main(["models", "import", str(make_immich_clip(tmp_path / "a" / "clip")), "--id", "myclip"]) == 0
    graph = paths.models_dir() / "myclip" / "visual" / "model.onnx"
    graph.write_bytes(graph.read_bytes()[:1000])  # cut short (a full disk, a copy stopped halfway)
    capsys.readouterr()
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "Damaged" in out and "myclip" in out and "visual/model.onnx has the wrong size" in out
    Image.new("RGB", (64, 64), (200, 30, 30)).save(tmp_path / "red.png")
    assert main(["caption", str(tmp_path / "red.png"), "--model", "myclip"]) == 1
    err = capsys.readouterr().err
    assert "the model 'myclip' is damaged" in err and "photoseek models remove myclip" in err
    assert main(["models", "remove", "myclip"]) == 0
    assert "removed myclip (damaged)" in capsys.readouterr().out
    assert not (paths.models_dir() / "myclip").exists()


def test_a_half_built_bundle_in_a_hidden_folder_is_not_installed(tmp_path):
    # What a build or import stopped by a crash leaves beside the bundles.
    source = make_immich_clip(tmp_path / "src" / "clip")
    manifest = import_folder(source)
    shutil.copytree(manifest.root, paths.models_dir() / ".clip-x1y2")
    assert [m.root.name for m in installed()] == ["clip"]


def test_searching_with_a_model_the_photos_are_not_embedded_with_says_so(tmp_path, rgb_folder, capsys):
    from engine.cli import main

    db = ["--db", str(tmp_path / "lib.sqlite3")]
    assert main(["models", "import", str(make_immich_clip(tmp_path / "a" / "clip")), "--id", "myclip"]) == 0
    assert main(["models", "import", str(make_immich_clip(tmp_path / "b" / "clip", seed=1)), "--id", "other"]) == 0
    assert main(["index", str(rgb_folder), "--no-text", "--model", "myclip", *db]) == 0
    capsys.readouterr()
    assert main(["search", "red", "--model", "other", *db]) == 0
    out = capsys.readouterr().err
    assert "no photo of the library is embedded with other@" in out and "embedded with myclip@" in out
    assert "photoseek models use other" in out
