"""Image and text encoders over ONNX Runtime sessions, driven by a bundle's manifest.

Sessions are created lazily, once, on first use.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort
from PIL import Image

from engine.errors import ModelError
from engine.models.manifest import Manifest
from engine.models.preprocess import to_tensor
from engine.models.runtime import SessionFactory
from engine.models.tokenizer import TextTokenizer

log = logging.getLogger(__name__)


_ONNX_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
}


def feed_for(arg: ort.NodeArg, value: np.ndarray) -> np.ndarray:
    """``value`` cast to the element type the graph input declares (Immich's exports take int32 ids)."""
    dtype = _ONNX_DTYPES.get(arg.type)
    return value if dtype is None or value.dtype == dtype else value.astype(dtype)


def fixed_batch_of_one(arg: ort.NodeArg) -> bool:
    """Whether an input was exported with its batch dimension fixed to 1 (Immich's exports are)."""
    return bool(arg.shape) and isinstance(arg.shape[0], int) and arg.shape[0] == 1


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


@dataclass
class EncodedImages:
    """Unit embeddings of a batch, plus any extra outputs the graph names (e.g. class probabilities)."""

    embeddings: np.ndarray
    extras: dict[str, np.ndarray]
    #: Unit photo-to-photo vectors, for a model that names an output for them (``similar_output``).
    similar: np.ndarray | None = None


class LazySession:
    """An ONNX Runtime session created on first use, once, by the bundle's session factory.

    With a ``cpu_file`` (the same graph, 8-bit), a session that runs on the CPU loads that one:
    at once when there is no GPU provider to try, or instead of ``file`` when the GPU session
    could not be made and fell back to the CPU."""

    def __init__(self, factory: SessionFactory, manifest: Manifest, file: str, cpu_file: str | None = None) -> None:
        self._factory = factory
        self._manifest = manifest
        self._file = file
        self._cpu_file = cpu_file
        self._session: ort.InferenceSession | None = None
        self._lock = threading.Lock()
        self.file: str | None = None  # the file the session was made from, once it is

    def _create(self, file: str) -> ort.InferenceSession:
        self.file = file
        return self._factory.create(self._manifest.path(file), name=f"{self._manifest.id}/{file}")

    def get(self) -> ort.InferenceSession:
        if self._session is None:
            with self._lock:
                if self._session is None:
                    if self._cpu_file and self._factory.cpu_only:
                        session = self._create(self._cpu_file)
                    else:
                        session = self._create(self._file)
                        if self._cpu_file and session.get_providers() == ["CPUExecutionProvider"]:
                            session = self._create(self._cpu_file)
                    self._session = session
        return self._session


class ImageEncoder:
    """Photo -> unit vector in the model's joint space."""

    def __init__(self, manifest: Manifest, factory: SessionFactory) -> None:
        if manifest.image is None:
            raise ModelError(f"model {manifest.id} has no image graph")
        self.manifest = manifest
        self.graph = manifest.image
        self.preprocess = manifest.image.preprocess
        self._session = LazySession(factory, manifest, manifest.image.file, manifest.image.cpu_file)
        self.calls = 0  # inference calls made (tests count them)

    @property
    def graph_file(self) -> str | None:
        """The graph file the session runs (the 8-bit CPU copy or the float graph); None before
        the first use."""
        return self._session.file

    def preprocess_batch(self, images: list[Image.Image]) -> np.ndarray:
        return to_tensor(images, self.preprocess)

    def encode_tensor(self, batch: np.ndarray) -> EncodedImages:
        session = self._session.get()
        names = [self.graph.output, *self.graph.extra_outputs]
        arg = next((i for i in session.get_inputs() if i.name == self.graph.input), None)
        if arg is None:
            raise ModelError(f"model {self.manifest.id}: the image graph has no input {self.graph.input!r}")
        batch = feed_for(arg, batch)
        self.calls += 1
        if fixed_batch_of_one(arg) and len(batch) > 1:
            runs = [session.run(names, {self.graph.input: batch[i : i + 1]}) for i in range(len(batch))]
            outputs = [np.concatenate([run[k] for run in runs]) for k in range(len(names))]
        else:
            outputs = session.run(names, {self.graph.input: batch})
        extras = {name: np.asarray(out) for name, out in zip(names[1:], outputs[1:], strict=True)}
        similar = self.graph.similar_output
        return EncodedImages(
            embeddings=normalize(np.asarray(outputs[0], dtype=np.float32)),
            extras=extras,
            similar=None if similar is None else normalize(np.asarray(extras[similar], dtype=np.float32)),
        )

    def encode(self, images: list[Image.Image]) -> EncodedImages:
        return self.encode_tensor(self.preprocess_batch(images))


class TextEncoder:
    """Text -> unit vector in the model's joint space, with a cache for repeated queries."""

    def __init__(self, manifest: Manifest, factory: SessionFactory, cache_size: int = 1024) -> None:
        if manifest.text is None:
            raise ModelError(f"model {manifest.id} has no text graph")
        self.manifest = manifest
        self.graph = manifest.text
        self._session = LazySession(factory, manifest, manifest.text.file)
        self._tokenizer: TextTokenizer | None = None
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self.calls = 0

    @property
    def tokenizer(self) -> TextTokenizer:
        if self._tokenizer is None:
            self._tokenizer = TextTokenizer(
                self.manifest.path(self.graph.tokenizer),
                self.graph.context_length,
                lowercase=self.graph.lowercase,
                fixed_length=self.graph.fixed_length,
                pad_token=self.graph.pad_token,
                clean=self.graph.clean,
            )
        return self._tokenizer

    def _run(self, texts: list[str]) -> np.ndarray:
        session = self._session.get()
        tokens = self.tokenizer([self.graph.prompt.format(t) for t in texts])
        args = {i.name: i for i in session.get_inputs()}
        feeds = {
            graph_name: feed_for(args[graph_name], tokens[key])
            for key, graph_name in self.graph.inputs.items()
            if graph_name in args
        }
        # Fixed-length graphs (batch dimension 1) are fed one text at a time.
        if fixed_batch_of_one(session.get_inputs()[0]) and len(texts) > 1:
            return np.concatenate([self._run([t]) for t in texts])
        self.calls += 1
        out = np.asarray(session.run([self.graph.output], feeds)[0], dtype=np.float32)
        if self.graph.pooling == "mean":
            mask = tokens["attention_mask"][..., None].astype(np.float32)
            out = (out * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1.0)
        elif self.graph.pooling == "cls":
            out = out[:, 0]
        return normalize(out)

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Unit vectors for ``texts`` (not cached: for building and bulk work)."""
        if not texts:
            return np.zeros((0, self.manifest.embedding_size), dtype=np.float32)
        return np.concatenate([self._run(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)])

    def encode_query(self, text: str) -> np.ndarray:
        """The unit vector of one query, cached (least recently used)."""
        with self._lock:
            hit = self._cache.get(text)
            if hit is not None:
                self._cache.move_to_end(text)
                return hit
        vector = self._run([text])[0]
        with self._lock:
            self._cache[text] = vector
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return vector
