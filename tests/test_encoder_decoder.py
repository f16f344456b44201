"""The encoder-decoder captioner against its own PyTorch original: same tokens, every decoder form."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from engine.errors import ModelError  # noqa: E402
from engine.models.encoder_decoder import EncoderDecoderCaptioner  # noqa: E402
from engine.models.importers import BundleInfo, convert_hf_captioner  # noqa: E402
from engine.models.manifest import load_manifest, write_manifest  # noqa: E402
from engine.models.preprocess import to_tensor  # noqa: E402
from engine.models.runtime import SessionFactory  # noqa: E402
from tests.hub_models import EOT, make_hf_captioner  # noqa: E402

PHOTOS = [
    Image.new("RGB", (48, 40), (200, 30, 30)),
    Image.new("RGB", (40, 64), (20, 160, 220)),
    Image.fromarray((np.random.default_rng(3).random((50, 50, 3)) * 255).astype(np.uint8)),
]


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    folder, encoder, decoder = make_hf_captioner(tmp_path_factory.mktemp("cap") / "vit-gpt2-tiny", max_length=10)
    return folder, encoder, decoder


def _captioner(folder: Path, cache: str) -> EncoderDecoderCaptioner:
    """A bundle over the same export that uses one decoder form."""
    manifest = convert_hf_captioner(folder, BundleInfo("tiny-captioner"))
    data = json.loads((folder / "model.json").read_text())
    decoder = {
        "none": {"file": "decoder_model.onnx", "cache": "none"},
        "separate": {
            "file": "decoder_model.onnx",
            "cache": "separate",
            "with_past_file": "decoder_with_past_model.onnx",
        },
        "merged": {"file": "decoder_model_merged.onnx", "cache": "merged"},
    }[cache]
    data["captioner"]["decoder"] = decoder
    for name in ("decoder_model.onnx", "decoder_with_past_model.onnx", "decoder_model_merged.onnx"):
        data["files"][name] = {}
    manifest = write_manifest(folder, data)
    return EncoderDecoderCaptioner(load_manifest(manifest.root), SessionFactory("cpu"))


def _torch_greedy(encoder, decoder, pixels: np.ndarray, start: int, eos: int, max_length: int) -> list[list[int]]:
    """Greedy decoding with the original PyTorch modules, no cache: the reference."""
    with torch.no_grad():
        states = encoder(torch.from_numpy(pixels))
        ids = torch.full((len(pixels), 1), start, dtype=torch.long)
        out: list[list[int]] = [[] for _ in range(len(pixels))]
        done = [False] * len(pixels)
        for _ in range(max_length - 1):
            chosen = decoder(ids, states)[0][:, -1].argmax(-1)
            for row, token in enumerate(chosen.tolist()):
                if not done[row]:
                    out[row].append(token)
                    done[row] = token == eos
            if all(done):
                break
            ids = torch.cat([ids, chosen[:, None]], dim=1)
    return out


@pytest.mark.parametrize("cache", ["none", "separate", "merged"])
def test_greedy_tokens_match_pytorch_for_every_decoder_form(export, cache):
    folder, encoder, decoder = export
    captioner = _captioner(folder, cache)
    pixels = to_tensor(PHOTOS, captioner.preprocess)
    expected = _torch_greedy(encoder, decoder, pixels, captioner.start_id, captioner.eos_id, captioner.max_length)
    assert captioner.generate(PHOTOS, beams=1) == expected
    # One photo at a time gives the same as the batch (no leakage between rows).
    assert [captioner.generate([p], beams=1)[0] for p in PHOTOS] == expected


def test_caption_text_is_the_tokenizer_decoding_without_special_tokens(export):
    folder, _, _ = export
    captioner = _captioner(folder, "merged")
    tokens = captioner.generate(PHOTOS[:1], beams=1)[0]
    raw = captioner.tokenizer.decode(tokens, skip_special_tokens=True).strip()
    caption = captioner.caption(PHOTOS[:1])[0]
    assert raw and EOT not in caption
    assert caption.rstrip(".").lower() == " ".join(raw.split()).rstrip(".").lower()


def test_beam_of_one_is_greedy_and_beams_agree_across_decoder_forms(export):
    folder, _, _ = export
    greedy = _captioner(folder, "merged").generate(PHOTOS, beams=1)
    assert _captioner(folder, "merged").beam_search(_captioner(folder, "merged").encode(PHOTOS), 1) == greedy
    beams = {cache: _captioner(folder, cache).generate(PHOTOS, beams=3) for cache in ("none", "separate", "merged")}
    assert beams["none"] == beams["separate"] == beams["merged"]


def test_wide_beam_finds_the_exact_best_sentence(tmp_path):
    """With a 6-word vocabulary and 3 tokens, a beam as wide as all 2-token prefixes prunes
    nothing that could win: it must return the sentence an exhaustive search finds (mean
    log-probability per token, i.e. length_penalty 1)."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    from benchmarks.model_shapes import CaptionerShape, export_hf_captioner

    words = [EOT, "a", "cat", "dog", "on", "mat"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="a"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens([EOT])
    tok.save(str(tmp_path / "tok.json"))
    shape = CaptionerShape("six-words", 32, 8, 32, 1, 2, 32, 2, 2, len(words), positions=8, tied=False)
    folder = tmp_path / "six"
    encoder, decoder = export_hf_captioner(
        folder, shape, tmp_path / "tok.json", eos_token_id=0, max_length=4, seed=1, forms=("merged",)
    )
    manifest = convert_hf_captioner(folder, BundleInfo("six-words"))
    captioner = EncoderDecoderCaptioner(manifest, SessionFactory("cpu"))
    assert captioner.length_penalty == 1.0
    pixels = to_tensor(PHOTOS[:1], captioner.preprocess)
    with torch.no_grad():
        states = encoder(torch.from_numpy(pixels))

        def score(tokens: tuple[int, ...]) -> float:
            ids = torch.tensor([[0, *tokens[:-1]]])
            logp = decoder(ids, states)[0][0].log_softmax(-1).double()
            return float(sum(logp[i, t] for i, t in enumerate(tokens))) / len(tokens)

        candidates = []
        for n in (1, 2, 3):
            for seq in itertools.product(range(len(words)), repeat=n):
                ends = [i for i, t in enumerate(seq) if t == 0]
                if (ends and ends[0] != n - 1) or (not ends and n < 3):
                    continue  # stops at its first end token; only the longest may run without one
                candidates.append(seq)
        best = max(candidates, key=score)
    found = captioner.beam_search(captioner.encode(PHOTOS[:1]), beams=len(words) ** 2)[0]
    assert len(best) > 1  # not the trivial empty sentence
    assert tuple(found) == best
    assert captioner.generate(PHOTOS[:1], beams=1)[0] != found  # and greedy would have missed it


def test_broken_spec_is_refused_clearly(export, tmp_path):
    folder, _, _ = export
    manifest = convert_hf_captioner(folder, BundleInfo("tiny-captioner"))
    data = json.loads((folder / "model.json").read_text())
    data["captioner"]["decoder"]["cache"] = "sideways"
    (folder / "model.json").write_text(json.dumps(data))
    with pytest.raises(ModelError, match="cache mode"):
        EncoderDecoderCaptioner(load_manifest(manifest.root), SessionFactory("cpu"))
