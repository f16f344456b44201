"""The in-memory vector index.

Small libraries keep float32 vectors and rank exactly with one matrix product. Large ones keep
8-bit vectors (one scale per vector; a quarter of the memory), score them all with ONNX
Runtime's integer matrix product, and re-rank the best candidates exactly with float32 vectors
fetched on demand, so the results equal brute force whenever the true top results are among
the candidates, which ``benchmarks/bench_search.py`` measures (recall).

The 8-bit vectors are the columns of one int8 [dim, N] matrix and the query, shifted to uint8
with zero point 128, is the product's first operand: that is ONNX Runtime's fast u8 x s8 path
(3 ms for 100,000 vectors on two cores, against 8-13 ms with the vectors as the first operand
and 19 ms for int8 x int8, measured side by side).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

import numpy as np
import onnxruntime as ort

FetchExact = Callable[[np.ndarray], np.ndarray]

#: Above this many vectors the index stores 8-bit vectors and re-ranks exactly.
QUANTIZE_ABOVE = 50_000


def _top_k_session(dim: int, threads: int) -> ort.InferenceSession:
    """The ``k`` best of ``(query - 128) . columns * scale + bias``, all in ONNX Runtime.

    The query is uint8 with zero point 128 (so the product is the exact signed one), the
    vectors int8 columns, ``scale`` each vector's scale and ``bias`` 0, or -inf for a removed
    vector. Doing the scaling and the top-k in the graph saves converting, masking and
    partitioning every score in NumPy (about 1.5 ms at 100,000 vectors here)."""
    # Imported here: the onnx package takes ~0.6 s to import (ml_dtypes), and only libraries
    # above QUANTIZE_ABOVE photos need this graph; every start of `photoseek` paid it before.
    from onnx import TensorProto, helper, numpy_helper

    inputs = [
        helper.make_tensor_value_info("query", TensorProto.UINT8, [1, dim]),
        helper.make_tensor_value_info("columns", TensorProto.INT8, [dim, None]),
        helper.make_tensor_value_info("scale", TensorProto.FLOAT, [None]),
        helper.make_tensor_value_info("bias", TensorProto.FLOAT, [None]),
        helper.make_tensor_value_info("k", TensorProto.INT64, [1]),
    ]
    outputs = [
        helper.make_tensor_value_info("values", TensorProto.FLOAT, [1, None]),
        helper.make_tensor_value_info("positions", TensorProto.INT64, [1, None]),
    ]
    zero = numpy_helper.from_array(np.array(128, dtype=np.uint8), "query_zero_point")
    nodes = [
        helper.make_node("MatMulInteger", ["query", "columns", "query_zero_point"], ["dots"]),
        helper.make_node("Cast", ["dots"], ["dots_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["dots_f", "scale"], ["scaled"]),
        helper.make_node("Add", ["scaled", "bias"], ["scores"]),
        helper.make_node("TopK", ["scores", "k"], ["values", "positions"], axis=-1, largest=1, sorted=1),
    ]
    model = helper.make_model(
        helper.make_graph(nodes, "top_k", inputs, outputs, initializer=[zero]),
        opset_imports=[helper.make_opsetid("", 17)],
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
        self._columns: np.ndarray | None = None  # int8 [dim, N] when quantized
        self._scale = np.zeros(0, dtype=np.float32)
        # 0 for a live slot, -inf for a removed one: added to the scores, it masks removed vectors
        self._bias = np.zeros(0, dtype=np.float32)
        self._position: dict[int, int] = {}
        self._session: ort.InferenceSession | None = None

    def __len__(self) -> int:
        return len(self._position)

    @property
    def quantized(self) -> bool:
        return self._columns is not None

    @property
    def nbytes(self) -> int:
        """Memory held by the vectors themselves."""
        arrays: list[np.ndarray] = [self._ids, self._scale, self._bias, self._f32]
        if self._columns is not None:
            arrays.append(self._columns)
        return int(sum(a.nbytes for a in arrays))

    @staticmethod
    def _quantize(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """int8 columns [dim, n] and one scale per vector."""
        scale = np.maximum(np.abs(vectors).max(axis=1), 1e-12).astype(np.float32)
        q = np.rint(vectors / scale[:, None] * 127.0).astype(np.int8)
        return np.ascontiguousarray(q.T), scale

    def set(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Replace the whole index."""
        ids = np.asarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        with self._lock:
            self._ids = ids.copy()
            self._bias = np.zeros(len(ids), dtype=np.float32)
            self._position = {int(i): n for n, i in enumerate(ids)}
            if len(ids) > self.quantize_above and self.fetch_exact is not None:
                self._columns, self._scale = self._quantize(vectors)
                self._f32 = np.zeros((0, self.dim), dtype=np.float32)
            else:
                self._columns, self._scale = None, np.zeros(0, dtype=np.float32)
                self._f32 = vectors.copy()

    def set_chunks(self, count: int, chunks: Iterable[tuple[np.ndarray, np.ndarray]]) -> None:
        """Replace the whole index from ``count`` vectors arriving in chunks, without ever holding
        all of them as float32 when the index is quantized (a million vectors: 384 MB, not 1.5 GB)."""
        quantize = count > self.quantize_above and self.fetch_exact is not None
        ids = np.zeros(count, dtype=np.int64)
        f32 = np.zeros((0 if quantize else count, self.dim), dtype=np.float32)
        columns = np.zeros((self.dim, count if quantize else 0), dtype=np.int8)
        scale = np.zeros(count if quantize else 0, dtype=np.float32)
        filled = 0
        for chunk_ids, chunk in chunks:
            n = min(len(chunk_ids), count - filled)
            if n <= 0:
                break
            ids[filled : filled + n] = chunk_ids[:n]
            if quantize:
                columns[:, filled : filled + n], scale[filled : filled + n] = self._quantize(chunk[:n])
            else:
                f32[filled : filled + n] = chunk[:n]
            filled += n
        with self._lock:
            self._ids = ids[:filled]
            self._bias = np.zeros(filled, dtype=np.float32)
            self._position = {int(i): n for n, i in enumerate(self._ids)}
            if quantize:
                self._columns = columns if filled == count else np.ascontiguousarray(columns[:, :filled])
                self._scale = scale[:filled]
                self._f32 = np.zeros((0, self.dim), dtype=np.float32)
            else:
                self._columns, self._scale = None, np.zeros(0, dtype=np.float32)
                self._f32 = f32[:filled]

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add or replace vectors (a photo indexed while the app runs)."""
        ids = np.asarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        with self._lock:
            self.remove(ids)
            start = len(self._ids)
            self._ids = np.concatenate([self._ids, ids])
            self._bias = np.concatenate([self._bias, np.zeros(len(ids), dtype=np.float32)])
            for n, i in enumerate(ids):
                self._position[int(i)] = start + n
            if self._columns is not None:
                q, s = self._quantize(vectors)
                self._columns = np.concatenate([self._columns, q], axis=1)
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
                    self._bias[pos] = -np.inf

    def _compact(self) -> None:
        keep = np.isfinite(self._bias)
        self._ids = self._ids[keep]
        if self._columns is not None:
            self._columns, self._scale = np.ascontiguousarray(self._columns[:, keep]), self._scale[keep]
        else:
            self._f32 = self._f32[keep]
        self._bias = np.zeros(len(self._ids), dtype=np.float32)
        self._position = {int(i): n for n, i in enumerate(self._ids)}

    def vector(self, id_: int) -> np.ndarray | None:
        """The stored vector of one id (exact where available)."""
        with self._lock:
            pos = self._position.get(int(id_))
            if pos is None:
                return None
            if self._columns is None:
                return self._f32[pos].copy()
        assert self.fetch_exact is not None
        return self.fetch_exact(np.asarray([id_], dtype=np.int64))[0]

    def _candidates(self, query: np.ndarray, want: int) -> tuple[np.ndarray, np.ndarray]:
        """Positions and scores (8-bit approximations when quantized) of the ``want`` best live
        vectors, best first."""
        if self._columns is None:
            all_scores = self._f32 @ query + self._bias
            top = np.argpartition(-all_scores, want - 1)[:want] if want < len(all_scores) else np.arange(want)
            top = top[np.argsort(-all_scores[top], kind="stable")]
            scores = all_scores[top]
        else:
            if self._session is None:
                self._session = _top_k_session(self.dim, self.threads)
            q_scale = max(float(np.abs(query).max()), 1e-12)
            shifted = (np.rint(query / q_scale * 127.0) + 128.0).astype(np.uint8).reshape(1, self.dim)
            feeds = {
                "query": shifted,
                "columns": self._columns,
                "scale": self._scale,
                "bias": self._bias,
                "k": np.array([want], dtype=np.int64),
            }
            values, positions = self._session.run(None, feeds)
            top, scores = positions[0], values[0] * (q_scale / (127.0 * 127.0))
        live = np.isfinite(scores)
        return top[live], scores[live]

    def search(self, query: np.ndarray, k: int, *, rerank: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
        """The ids and cosine scores of the ``k`` best vectors, best first.

        A quantized index re-ranks its ``rerank * k + 32`` best 8-bit candidates exactly. Fetching
        the float32 vectors costs ~14 us each, so the candidates are few: recall@48 was 1.000 with
        k + 32 at 100,000 and 1,000,000 vectors (``benchmarks/bench_search.py`` measures recall)."""
        query = np.asarray(query, dtype=np.float32).reshape(self.dim)
        with self._lock:
            n = len(self._ids)
            if n == 0 or k <= 0:
                return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
            want = min(n, int(k * rerank) + 32 if self._columns is not None else k)
            top, cand_scores = self._candidates(query, want)
            ids = self._ids[top]
        if self._columns is not None and self.fetch_exact is not None and len(ids):
            cand_scores = self.fetch_exact(ids) @ query
        order = np.argsort(-cand_scores, kind="stable")[:k]
        return ids[order], cand_scores[order].astype(np.float32)
