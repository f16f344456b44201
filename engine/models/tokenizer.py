"""Text tokenisation with the model's own ``tokenizer.json`` (Hugging Face ``tokenizers``)."""

from __future__ import annotations

import string
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from engine.errors import ModelError

_PUNCTUATION = str.maketrans("", "", string.punctuation)


def clean_text(text: str, mode: str) -> str:
    """Clean ``text`` the way the model's training pipeline did.

    ``whitespace`` collapses runs of whitespace; ``canonicalize`` (open_clip's SigLIP configs)
    also drops ASCII punctuation and lowercases.
    """
    if mode == "none":
        return text
    text = " ".join(text.split())
    if mode == "canonicalize":
        text = text.translate(_PUNCTUATION).lower()
    return text


def as_unicode(text: str) -> str:
    """``text`` with the bytes that were not UTF-8 (which Python keeps as lone surrogates, e.g.
    from a query file saved as Latin-1) replaced by U+FFFD, which a tokenizer accepts."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return text


class TextTokenizer:
    """Encodes strings to id and mask arrays for a text graph."""

    def __init__(
        self,
        path: Path,
        context_length: int,
        *,
        lowercase: bool = False,
        fixed_length: bool = False,
        pad_token: str | None = None,
        clean: str = "none",
    ) -> None:
        try:
            self._tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises a plain Exception on bad files
            raise ModelError(f"cannot read tokenizer {path}: {exc}") from exc
        self.context_length = context_length
        self.lowercase = lowercase
        self.fixed_length = fixed_length
        self.clean = clean
        self._tokenizer.enable_truncation(max_length=context_length)
        self._tokenizer.no_padding()
        if pad_token is not None:
            pad_id = self._tokenizer.token_to_id(pad_token)
            if pad_id is None:
                raise ModelError(f"tokenizer {path.name} has no pad token {pad_token!r}")
        else:
            pad_id = self._tokenizer.token_to_id("[PAD]")
            if pad_id is None:
                pad_id = self._tokenizer.token_to_id("<pad>")
        self.pad_id = 0 if pad_id is None else pad_id

    def __call__(self, texts: list[str]) -> dict[str, np.ndarray]:
        texts = [clean_text(as_unicode(t), self.clean) for t in texts]
        if self.lowercase:
            texts = [t.lower() for t in texts]
        encodings = self._tokenizer.encode_batch(texts)
        # Pad to the longest in the batch, not to context_length: a short query stays cheap.
        length = self.context_length if self.fixed_length else max(1, max(len(e.ids) for e in encodings))
        ids = np.full((len(texts), length), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(texts), length), dtype=np.int64)
        types = np.zeros((len(texts), length), dtype=np.int64)
        for row, enc in enumerate(encodings):
            n = len(enc.ids)
            ids[row, :n] = enc.ids
            mask[row, :n] = enc.attention_mask
            types[row, :n] = enc.type_ids
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
