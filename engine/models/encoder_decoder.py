"""Image captioning with an exported Hugging Face vision encoder-decoder (e.g. ViT + GPT-2).

The graphs are the ONNX layout that ``optimum`` writes for image-to-text models: an encoder
(``pixel_values`` -> ``last_hidden_state``) and a decoder that maps ``input_ids`` and
``encoder_hidden_states`` to ``logits``. The decoder comes in three forms, all supported:

* ``none`` — ``decoder_model.onnx`` alone: every step re-reads the whole sequence so far;
* ``separate`` — ``decoder_model.onnx`` for the first step, ``decoder_with_past_model.onnx``
  after it, threading ``past_key_values.*`` / ``present.*`` between steps;
* ``merged`` — ``decoder_model_merged.onnx``: both in one graph, chosen by ``use_cache_branch``.

Decoding (greedy or beam search) runs in NumPy; text comes from the model's own
``tokenizer.json``. The manifest's ``captioner`` section says which files and token ids to use::

    {"type": "encoder-decoder",
     "encoder": {"file": "encoder_model.onnx", "input": "pixel_values", "output": "last_hidden_state",
                 "preprocess": {"size": 224, "resize": "squash", "crop": "none", "mean": [..], "std": [..]}},
     "decoder": {"file": "decoder_model_merged.onnx", "cache": "merged" | "separate" | "none",
                 "with_past_file": "decoder_with_past_model.onnx"},
     "tokenizer": "tokenizer.json",
     "decoder_start_token_id": 50256, "eos_token_id": 50256, "pad_token_id": 50256,
     "max_length": 20, "num_beams": 1, "length_penalty": 1.0,
     "past": {"heads": 12, "head_dim": 64}}
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnxruntime as ort
from PIL import Image
from tokenizers import Tokenizer

from engine.errors import ModelError
from engine.models.encoders import EncodedImages, LazySession, feed_for, fixed_batch_of_one
from engine.models.manifest import Manifest, Preprocess
from engine.models.preprocess import to_tensor
from engine.models.runtime import SessionFactory

log = logging.getLogger(__name__)

PAST_PREFIX = "past_key_values"
PRESENT_PREFIX = "present"
CACHE_MODES = ("none", "separate", "merged")


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax in float64 (beam scores add up many small numbers)."""
    x = logits.astype(np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


@dataclass
class _State:
    """What a decoder needs to take the next step for every row (image x beam)."""

    encoder_states: np.ndarray
    tokens: np.ndarray  # [rows, length so far], starting with the start token
    past: dict[str, np.ndarray] = field(default_factory=dict)

    def take(self, rows: np.ndarray) -> _State:
        return _State(
            self.encoder_states[rows],
            self.tokens[rows],
            {name: value[rows] for name, value in self.past.items()},
        )


class _Decoder:
    """Runs the decoder graph(s) one step at a time, with or without a key/value cache."""

    def __init__(self, first: LazySession, later: LazySession | None, cache: str, past_dims: dict[str, int]) -> None:
        self._first = first
        self._later = later
        self.cache = cache
        self._past_dims = past_dims

    def _feeds(self, session: ort.InferenceSession, state: _State, ids: np.ndarray, use_cache: bool) -> dict:
        rows = len(ids)
        feeds: dict[str, np.ndarray] = {}
        for arg in session.get_inputs():
            name = arg.name
            if name == "input_ids":
                value = ids
            elif name == "encoder_hidden_states":
                value = state.encoder_states
            elif name == "encoder_attention_mask":
                value = np.ones(state.encoder_states.shape[:2], dtype=np.int64)
            elif name == "attention_mask":  # the decoder's own mask covers cache + new tokens
                value = np.ones((rows, state.tokens.shape[1]), dtype=np.int64)
            elif name == "use_cache_branch":
                value = np.array([use_cache], dtype=np.bool_)
            elif name.startswith(PAST_PREFIX):
                value = state.past[name] if use_cache else self._empty_past(arg, rows)
            else:
                raise ModelError(f"the caption decoder has an input Photoseek does not know: {name!r}")
            feeds[name] = feed_for(arg, value)
        return feeds

    def _empty_past(self, arg: ort.NodeArg, rows: int) -> np.ndarray:
        """A zero-length cache for the first step (the merged graph's no-cache branch ignores it)."""
        shape = []
        for axis, dim in enumerate(arg.shape):
            if axis == 0:
                shape.append(rows)
            elif axis == 2:
                shape.append(0)
            elif isinstance(dim, int):
                shape.append(dim)
            else:
                key = "heads" if axis == 1 else "head_dim"
                if key not in self._past_dims:
                    raise ModelError(f"the caption decoder's {arg.name} has a symbolic {key}; set captioner.past.{key}")
                shape.append(self._past_dims[key])
        return np.zeros(shape, dtype=np.float32)

    def _run(self, session: ort.InferenceSession, feeds: dict, state: _State) -> np.ndarray:
        names = [o.name for o in session.get_outputs()]
        outputs = dict(zip(names, session.run(names, feeds), strict=True))
        if self.cache != "none":
            for name, value in outputs.items():
                if name.startswith(PRESENT_PREFIX):
                    # Cross-attention caches are not re-emitted by some with-past graphs: keep the old one.
                    state.past[PAST_PREFIX + name[len(PRESENT_PREFIX) :]] = value
        return np.asarray(outputs["logits"])[:, -1, :]

    def start(self, state: _State) -> np.ndarray:
        """Logits for the token after the start token."""
        session = self._first.get()
        return self._run(session, self._feeds(session, state, state.tokens, use_cache=False), state)

    def step(self, state: _State, new_tokens: np.ndarray) -> np.ndarray:
        """Append ``new_tokens`` (one per row) and return the logits for the token after them."""
        state.tokens = np.concatenate([state.tokens, new_tokens[:, None]], axis=1)
        if self.cache == "none":
            session = self._first.get()
            return self._run(session, self._feeds(session, state, state.tokens, use_cache=False), state)
        session = (self._later or self._first).get()
        return self._run(session, self._feeds(session, state, new_tokens[:, None], use_cache=True), state)


class EncoderDecoderCaptioner:
    """Photo -> sentence with an encoder-decoder bundle (greedy or beam search in NumPy)."""

    needs_images = True  # it preprocesses photos itself, by its own config

    def __init__(self, manifest: Manifest, factory: SessionFactory) -> None:
        spec: dict[str, Any] = manifest.captioner or {}
        try:
            encoder = spec["encoder"]
            decoder = spec["decoder"]
            self.cache = decoder.get("cache", "none")
            if self.cache not in CACHE_MODES:
                raise ModelError(f"model {manifest.id}: unknown decoder cache mode {self.cache!r}")
            self.preprocess = Preprocess.from_json(encoder.get("preprocess", {}))
            self._encoder_input = encoder.get("input", "pixel_values")
            self._encoder_output = encoder.get("output", "last_hidden_state")
            # The encoder is the bundle's own image graph: reuse the vectors indexing computed.
            self._same_as_image = bool(encoder.get("same_as_image", False))
            self.needs_images = not self._same_as_image  # then indexing need not keep the photos
            self.eos_id = int(spec["eos_token_id"])
            self.start_id = int(spec.get("decoder_start_token_id", spec.get("bos_token_id", self.eos_id)))
            self.pad_id = int(spec.get("pad_token_id", self.eos_id))
            self.max_length = int(spec.get("max_length", 20))
            self.num_beams = int(spec.get("num_beams", 1))
            self.length_penalty = float(spec.get("length_penalty", 1.0))
            past_dims = {k: int(v) for k, v in spec.get("past", {}).items()}
            tokenizer_file = manifest.path(spec["tokenizer"])
            self._encoder = LazySession(factory, manifest, encoder["file"])
            first = LazySession(factory, manifest, decoder["file"])
            later = LazySession(factory, manifest, decoder["with_past_file"]) if self.cache == "separate" else None
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"model {manifest.id}: malformed encoder-decoder captioner section: {exc!r}") from exc
        if self.max_length < 2 or self.num_beams < 1:
            raise ModelError(f"model {manifest.id}: max_length must be at least 2 and num_beams at least 1")
        try:
            self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        except Exception as exc:  # tokenizers raises a plain Exception on bad files
            raise ModelError(f"cannot read tokenizer {tokenizer_file}: {exc}") from exc
        self._decoder = _Decoder(first, later, self.cache, past_dims)
        self.id = f"{manifest.label}:encoder-decoder"
        log.info("captioner %s: %s decoder cache, %d beam(s)", self.id, self.cache, self.num_beams)

    # -- the encoder -------------------------------------------------------------------------

    def encode(self, images: list[Image.Image]) -> np.ndarray:
        """The encoder's hidden states for a batch of photos."""
        session = self._encoder.get()
        arg = next((i for i in session.get_inputs() if i.name == self._encoder_input), None)
        if arg is None:
            raise ModelError(f"captioner {self.id}: the encoder has no input {self._encoder_input!r}")
        batch = feed_for(arg, to_tensor(images, self.preprocess))
        if fixed_batch_of_one(arg) and len(batch) > 1:
            parts = [session.run([self._encoder_output], {arg.name: batch[i : i + 1]})[0] for i in range(len(batch))]
            return np.concatenate(parts).astype(np.float32)
        return np.asarray(session.run([self._encoder_output], {arg.name: batch})[0], dtype=np.float32)

    # -- decoding ----------------------------------------------------------------------------

    def greedy(self, encoder_states: np.ndarray) -> list[list[int]]:
        """The most likely next token at every step, until end-of-sentence or ``max_length``."""
        rows = len(encoder_states)
        state = _State(encoder_states, np.full((rows, 1), self.start_id, dtype=np.int64))
        logits = self._decoder.start(state)
        out: list[list[int]] = [[] for _ in range(rows)]
        done = np.zeros(rows, dtype=bool)
        for step in range(self.max_length - 1):
            chosen = np.argmax(logits, axis=-1).astype(np.int64)
            chosen[done] = self.pad_id
            for row in np.flatnonzero(~done):
                out[row].append(int(chosen[row]))
            done |= chosen == self.eos_id
            if done.all() or step == self.max_length - 2:
                break
            logits = self._decoder.step(state, chosen)
        return out

    def beam_search(self, encoder_states: np.ndarray, beams: int | None = None) -> list[list[int]]:
        """Beam search: keep the ``beams`` best partial sentences by summed log-probability and
        return, per photo, the finished sentence with the best length-normalised score
        (``sum log p / length ** length_penalty``)."""
        k = beams or self.num_beams
        n = len(encoder_states)
        state = _State(np.repeat(encoder_states, k, axis=0), np.full((n * k, 1), self.start_id, dtype=np.int64))
        scores = np.zeros((n, k), dtype=np.float64)
        scores[:, 1:] = -np.inf  # all beams start identical: expand only the first
        generated: list[list[int]] = [[] for _ in range(n * k)]
        finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(n)]
        done = np.zeros(n, dtype=bool)
        logits = self._decoder.start(state)
        for step in range(self.max_length - 1):
            length = step + 1  # generated tokens once this step's token is added
            vocab = logits.shape[-1]
            candidates = (scores.reshape(-1, 1) + log_softmax(logits)).reshape(n, k * vocab)
            next_rows = np.zeros(n * k, dtype=np.int64)
            next_tokens = np.full(n * k, self.pad_id, dtype=np.int64)
            next_scores = np.full((n, k), -np.inf)
            for i in range(n):
                if done[i]:
                    next_rows[i * k : (i + 1) * k] = np.arange(i * k, (i + 1) * k)
                    continue
                top = np.argsort(-candidates[i], kind="stable")[: 2 * k]
                kept = 0
                for rank, flat in enumerate(top):
                    score = float(candidates[i, flat])
                    if not np.isfinite(score):
                        break
                    beam, token = divmod(int(flat), vocab)
                    source = i * k + beam
                    if token == self.eos_id:
                        if rank < k:
                            normalised = score / (length**self.length_penalty)
                            finished[i].append((normalised, [*generated[source], token]))
                        continue
                    next_rows[i * k + kept] = source
                    next_tokens[i * k + kept] = token
                    next_scores[i, kept] = score
                    kept += 1
                    if kept == k:
                        break
                finished[i] = sorted(finished[i], key=lambda h: -h[0])[:k]
                if len(finished[i]) >= k:
                    best_running = float(next_scores[i].max()) / (length**self.length_penalty)
                    done[i] = best_running <= finished[i][-1][0]
            generated = [[*generated[r], int(t)] for r, t in zip(next_rows, next_tokens, strict=True)]
            scores = next_scores
            if done.all() or step == self.max_length - 2:
                break
            state = state.take(next_rows)
            logits = self._decoder.step(state, next_tokens)
        results = []
        for i in range(n):
            pool = list(finished[i])
            if not done[i]:  # sentences cut off by max_length compete too
                for b in range(k):
                    tokens = generated[i * k + b]
                    if np.isfinite(scores[i, b]):
                        pool.append((float(scores[i, b]) / (len(tokens) ** self.length_penalty), tokens))
            results.append(max(pool, key=lambda h: h[0])[1] if pool else [])
        return results

    def decode_tokens(self, tokens: list[int]) -> str:
        """Token ids -> a sentence: special tokens dropped, first letter capitalised, a full stop."""
        text = self.tokenizer.decode(tokens, skip_special_tokens=True).strip()
        text = " ".join(text.split())
        if not text:
            return ""
        text = text[0].upper() + text[1:]
        return text if text[-1] in ".!?" else text + "."

    def generate(self, images: list[Image.Image], *, beams: int | None = None) -> list[list[int]]:
        """Token ids of the caption of each photo."""
        states = self.encode(images)
        k = beams or self.num_beams
        return self.greedy(states) if k == 1 else self.beam_search(states, k)

    def caption(self, images: list[Image.Image], encoded: EncodedImages | None = None) -> list[str]:
        """One caption per photo. ``encoded`` (the image graph's outputs for the same photos) is
        used instead of running the encoder when the manifest says the encoder *is* the image
        graph (``same_as_image``): its ``output`` is then the image graph's embedding or one of
        its extra outputs."""
        if self._same_as_image and encoded is not None:
            states = encoded.extras.get(self._encoder_output, encoded.embeddings)
            if not len(states):
                return []
            tokens = self.greedy(states) if self.num_beams == 1 else self.beam_search(states, self.num_beams)
        else:
            if not images:
                return []
            tokens = self.generate(images)
        return [self.decode_tokens(t) for t in tokens]
