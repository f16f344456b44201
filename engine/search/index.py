"""The in-memory vector index.

Small libraries keep float32 vectors and rank exactly with one matrix product. Large ones keep
8-bit vectors (one scale per vector; a quarter of the memory), score them all with ONNX
Runtime's integer matrix product, and re-rank the best candidates exactly with float32 vectors
fetched on demand — so the results equal brute force whenever the true top results are among
the candidates, which ``benchmarks/bench_search.py`` measures (recall).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

import numpy as np
import onnxruntime as ort

FetchExact = Callable[[np.ndarray], np.ndarray]

#: Above this many vectors the index stores 8-bit vectors and re-ranks exactly.
QUANTIZE_ABOVE = 50_000


def _matmul_integer_session(dim: int, threads: int) -> ort.InferenceSession:
    # Imported here: the onnx package takes ~0.6 s to import (ml_dtypes), and only libraries
    # above QUANTIZE_ABOVE photos need this graph; every start of `photoseek` paid it before.
    from onnx import TensorProto, helper

    a = helper.make_tensor_value_info("vectors", TensorProto.UINT8, [None, dim])
    b = helper.make_tensor_value_info("query", TensorProto.INT8, [dim, None])
    y = helper.make_tensor_value_info("scores", TensorProto.INT32, [None, None])
    node = helper.make_node("MatMulInteger", ["vectors", "query"], ["scores"])
    model = helper.make_model(
        helper.make_graph([node], "scores", [a, b], [y]), opset_imports=[helper.make_opsetid("", 17)]
    )
    model.ir_version = 8
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    # Its threads must not spin-wait after a query: they would take the cores from the text
    # encoder's session, which runs right before the next query (7 ms instead of 2 ms).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


class VectorIndex:
    """Unit vectors keyed by integer ids, searched by cosine similarity."""

    def __init__(
        self,
        dim: int,
        *,
        quantize_above: int = QUANTIZE_ABOVE,
        fetch_exact: FetchExact | None = None,
        threads: int = 2,
    ) -> None:
        self.dim = dim
        self.quantize_above = quantize_above
        self.fetch_exact = fetch_exact
        self.threads = threads
        self._lock = threading.RLock()
        self._ids = np.zeros(0, dtype=np.int64)
        self._f32 = np.zeros((0, dim), dtype=np.float32)
        self._u8: np.ndarray | None = None
        self._scale = np.zeros(0, dtype=np.float32)
        self._alive = np.zeros(0, dtype=bool)
        self._position: dict[int, int] = {}
        self._session: ort.InferenceSession | None = None

    def __len__(self) -> int:
        return len(self._position)

    @property
    def quantized(self) -> bool:
        return self._u8 is not None

    @property
    def nbytes(self) -> int:
        """Memory held by the vectors themselves."""
        arrays: list[np.ndarray] = [self._ids, self._scale, self._alive, self._f32]
        if self._u8 is not None:
            arrays.append(self._u8)
        return int(sum(a.nbytes for a in arrays))

    @staticmethod
    def _quantize(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scale = np.maximum(np.abs(vectors).max(axis=1), 1e-12).astype(np.float32)
        q = np.rint(vectors / scale[:, None] * 127.0).astype(np.int16) + 128
        return q.astype(np.uint8), scale

    def set(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Replace the whole index."""
        ids = np.asarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        with self._lock:
            self._ids = ids.copy()
            self._alive = np.ones(len(ids), dtype=bool)
            self._position = {int(i): n for n, i in enumerate(ids)}
            if len(ids) > self.quantize_above and self.fetch_exact is not None:
                self._u8, self._scale = self._quantize(vectors)
                self._f32 = np.zeros((0, self.dim), dtype=np.float32)
            else:
                self._u8, self._scale = None, np.zeros(0, dtype=np.float32)
                self._f32 = vectors.copy()

    def set_chunks(self, count: int, chunks: Iterable[tuple[np.ndarray, np.ndarray]]) -> None:
        """Replace the whole index from ``count`` vectors arriving in chunks, without ever holding
        all of them as float32 when the index is quantized (a million vectors: 384 MB, not 1.5 GB)."""
        quantize = count > self.quantize_above and self.fetch_exact is not None
        ids = np.zeros(count, dtype=np.int64)
        f32 = np.zeros((0 if quantize else count, self.dim), dtype=np.float32)
        u8 = np.zeros((count if quantize else 0, self.dim), dtype=np.uint8)
        scale = np.zeros(count if quantize else 0, dtype=np.float32)
        filled = 0
        for chunk_ids, chunk in chunks:
            n = min(len(chunk_ids), count - filled)
            if n <= 0:
                break
            ids[filled : filled + n] = chunk_ids[:n]
            if quantize:
                u8[filled : filled + n], scale[filled : filled + n] = self._quantize(chunk[:n])
            else:
                f32[filled : filled + n] = chunk[:n]
            filled += n
        with self._lock:
            self._ids = ids[:filled]
            self._alive = np.ones(filled, dtype=bool)
            self._position = {int(i): n for n, i in enumerate(self._ids)}
            if quantize:
                self._u8, self._scale = u8[:filled], scale[:filled]
                self._f32 = np.zeros((0, self.dim), dtype=np.float32)
            else:
                self._u8, self._scale = None, np.zeros(0, dtype=np.float32)
                self._f32 = f32[:filled]

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add or replace vectors (a photo indexed while the app runs)."""
        ids = np.asarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        with self._lock:
            self.remove(ids)
            start = len(self._ids)
            self._ids = np.concatenate([self._ids, ids])
            self._alive = np.concatenate([self._alive, np.ones(len(ids), dtype=bool)])
            for n, i in enumerate(ids):
                self._position[int(i)] = start + n
            if self._u8 is not None:
                q, s = self._quantize(vectors)
                self._u8 = np.concatenate([self._u8, q])
                self._scale = np.concatenate([self._scale, s])
            else:
                self._f32 = np.concatenate([self._f32, vectors])
            if len(self._ids) > 2 * max(len(self._position), 1024):
                self._compact()

    def remove(self, ids: np.ndarray) -> None:
        with self._lock:
            for i in np.asarray(ids, dtype=np.int64):
                pos = self._position.pop(int(i), None)
                if pos is not None:
                    self._alive[pos] = False

    def _compact(self) -> None:
        keep = self._alive
        self._ids = self._ids[keep]
        if self._u8 is not None:
            self._u8, self._scale = self._u8[keep], self._scale[keep]
        else:
            self._f32 = self._f32[keep]
        self._alive = np.ones(len(self._ids), dtype=bool)
        self._position = {int(i): n for n, i in enumerate(self._ids)}

    def vector(self, id_: int) -> np.ndarray | None:
        """The stored vector of one id (exact where available)."""
        with self._lock:
            pos = self._position.get(int(id_))
            if pos is None:
                return None
            if self._u8 is None:
                return self._f32[pos].copy()
        assert self.fetch_exact is not None
        return self.fetch_exact(np.asarray([id_], dtype=np.int64))[0]

    def _scores(self, query: np.ndarray) -> np.ndarray:
        if self._u8 is None:
            return self._f32 @ query
        if self._session is None:
            self._session = _matmul_integer_session(self.dim, self.threads)
        q_scale = max(float(np.abs(query).max()), 1e-12)
        q8 = np.rint(query / q_scale * 127.0).astype(np.int8).reshape(self.dim, 1)
        raw = self._session.run(None, {"vectors": self._u8, "query": q8})[0][:, 0]
        # u8 = i8 + 128, so subtract the zero point's contribution before scaling.
        dots = raw.astype(np.float32) - 128.0 * float(q8.astype(np.int32).sum())
        return dots * self._scale * (q_scale / (127.0 * 127.0))

    def search(self, query: np.ndarray, k: int, *, rerank: int = 4) -> tuple[np.ndarray, np.ndarray]:
        """The ids and cosine scores of the ``k`` best vectors, best first."""
        query = np.asarray(query, dtype=np.float32).reshape(self.dim)
        with self._lock:
            n = len(self._ids)
            if n == 0 or k <= 0:
                return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
            scores = self._scores(query)
            scores = np.where(self._alive, scores, -np.inf)
            want = min(n, k * rerank + 32 if self._u8 is not None else k)
            top = np.argpartition(-scores, want - 1)[:want] if want < n else np.arange(n)
            top = top[np.isfinite(scores[top])]
            ids = self._ids[top]
            cand_scores = scores[top]
        if self._u8 is not None and self.fetch_exact is not None and len(ids):
            cand_scores = self.fetch_exact(ids) @ query
        order = np.argsort(-cand_scores, kind="stable")[:k]
        return ids[order], cand_scores[order].astype(np.float32)
