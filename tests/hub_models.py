"""Tiny models in the real Hub layouts (Immich CLIP; Hugging Face ONNX image-to-text), for tests.

The architectures are the same-shaped stand-ins of :mod:`benchmarks.model_shapes` at toy size:
real ViT / text transformers / GPT-2-style decoder with random weights, exported with torch, with
real ``tokenizers`` tokenizers. The CLIP-shaped models also carry the hand-set colour path
(see ``colour_axes``) so that search has a checkable answer: "red" must find the red photo.
"""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from benchmarks.model_shapes import CaptionerShape, ClipShape, export_hf_captioner, export_immich_clip

CLIP_WORDS = ["[UNK]", "a", "photo", "of", "red", "green", "blue", "cat", "dog", "the", "on", "beach"]
SOT, EOT = "<|startoftext|>", "<|endoftext|>"

TINY_CLIP = ClipShape("tiny-clip", 32, 8, 32, 1, 2, 32, 1, 2, 16, len(CLIP_WORDS) + 2, 16, "eot")
TINY_SIGLIP = ClipShape(
    "tiny-siglip", 24, 8, 32, 1, 2, 32, 1, 2, 12, len(CLIP_WORDS) + 2, 12, "last",
    mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), resize_mode="squash", clean="canonicalize",
)  # fmt: skip
TINY_MCLIP = ClipShape("tiny-mclip", 32, 8, 32, 1, 2, 32, 1, 2, 16, len(CLIP_WORDS) + 2, 8, "mean")

CAPTION_CORPUS = [
    "a cat sitting on a red chair",
    "a dog running on the beach",
    "a man riding a bicycle down the street",
    "two people standing next to a blue car",
    "a plate of food on a wooden table",
]


def clip_tokenizer(path: Path) -> Path:
    """A CLIP-style word tokenizer: lowercases, wraps text in start/end tokens; end has the highest id."""
    vocab = {w: i for i, w in enumerate([*CLIP_WORDS, SOT, EOT])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single=f"{SOT} $A {EOT}", special_tokens=[(SOT, vocab[SOT]), (EOT, vocab[EOT])]
    )
    tok.add_special_tokens([SOT, EOT])
    path.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(path))
    return path


def caption_tokenizer(path: Path) -> Path:
    """A GPT-2-style byte-level BPE tokenizer trained on a few captions; <|endoftext|> is id 0."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320, special_tokens=[EOT], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CAPTION_CORPUS * 20, trainer)
    path.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(path))
    return path


def colour_tokens() -> dict[int, int]:
    return {CLIP_WORDS.index(word): axis for axis, word in enumerate(("red", "green", "blue"))}


def make_immich_clip(folder: Path, shape: ClipShape = TINY_CLIP, *, seed: int = 0, colour: float = 10.0) -> Path:
    """An Immich-layout CLIP repository folder (visual/, textual/, config.json)."""
    tokenizer = clip_tokenizer(folder.parent / f"{folder.name}-tokenizer.json")
    export_immich_clip(
        folder, shape, tokenizer, pad_token=EOT, colour_axes=colour, colour_tokens=colour_tokens(), seed=seed
    )
    (folder / "README.md").write_text("tiny test model\n")
    return folder


def make_hf_captioner(
    folder: Path, *, seed: int = 0, forms: tuple[str, ...] = ("plain", "with_past", "merged"), max_length: int = 12
) -> tuple[Path, object, object]:
    """An optimum-layout image-to-text folder; returns it with the torch encoder and decoder."""
    tokenizer = caption_tokenizer(folder.parent / f"{folder.name}-tokenizer.json")
    vocab = Tokenizer.from_file(str(tokenizer)).get_vocab_size()
    shape = CaptionerShape("tiny-captioner", 32, 8, 32, 1, 2, 32, 2, 2, vocab, positions=32, tied=False)
    eos = Tokenizer.from_file(str(tokenizer)).token_to_id(EOT)
    encoder, decoder = export_hf_captioner(
        folder, shape, tokenizer, eos_token_id=eos, max_length=max_length, seed=seed, forms=forms
    )
    return folder, encoder, decoder


def catalogue_file(path: Path, entries: list[dict]) -> Path:
    path.write_text(json.dumps(entries, indent=2))
    return path
