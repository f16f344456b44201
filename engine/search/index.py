"""The in-memory vector index.

Small libraries keep float32 vectors and rank exactly with one matrix product. Large ones keep
4-bit vectors (one scale per block of 128 numbers; an eighth of the memory), score them all
with ONNX Runtime's ``MatMulNBits``, the kernel made for 4-bit language-model weights, and
re-rank the best candidates exactly with float32 vectors fetched on demand, so the results equal
brute force whenever the true top results are among the candidates, which
``benchmarks/bench_search.py`` measures (recall).

The 4-bit matrix is a constant of the scoring graph, handed to ONNX Runtime from memory (no
copy through a serialised model), so that the kernel packs it once when the session is made;
fed as an input instead, it is unpacked on every query and 150 times slower. Scoring 100,000
vectors takes 0.8 ms on two cores and a million 8-10 ms, against 3.9 and 36 ms for the 8-bit
``MatMulInteger`` path this replaced (``docs/performance.md``). Vectors added while the app runs
go to a small float32 tail that is scored exactly beside it; when the tail grows past a few
percent of the whole, it is quantized into the constant and the session is made again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

import numpy as np
import onnxruntime as ort

FetchExact = Callable[[np.ndarray], np.ndarray]

#: Above this many vectors the index stores 4-bit vectors and re-ranks exactly.
QUANTIZE_ABOVE = 50_000
#: Vectors added later are scored exactly until there are this many (or 1/32 of the index).
TAIL_LIMIT = 8192


def block_size(dim: int) -> int:
    """Numbers per 4-bit block: 128 (one scale per 128 numbers), less for short vectors."""
    size = 16
    while size < min(dim, 128):
        size *= 2
    return size


def quantize_4bit(vectors: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """``MatMulNBits``'s layout: uint8 [n, blocks, block / 2], two numbers a byte (the first in
    the low half), value = (q - 8) * scale, one float scale per block [n, blocks]. Vectors are
    padded with zeros to a whole number of blocks."""
    n, dim = vectors.shape
    blocks = -(-dim // block)
    padded = np.zeros((n, blocks * block), dtype=np.float32)
    padded[:, :dim] = vectors
    grouped = padded.reshape(n, blocks, block)
    scale = np.maximum(np.abs(grouped).max(axis=2), 1e-12) / 7.0
    q = np.clip(np.rint(grouped / scale[..., None]) + 8.0, 0, 15).astype(np.uint8)
    return (q[..., 0::2] | (q[..., 1::2] << 4)).astype(np.uint8), scale.astype(np.float32)


def _top_k_session(
    packed: np.ndarray, scales: np.ndarray, dim: int, threads: int
) -> tuple[ort.InferenceSession, tuple[ort.OrtValue, ...]]:
    """The ``k`` best of ``query . dequantized(vector) + bias``, all in ONNX Runtime.

    ``bias`` is 0, or -inf for a removed vector. The 4-bit vectors are initializers supplied
    from memory (``add_external_initializers``); the returned OrtValues must outlive the
    session. ``accuracy_level=4`` lets the kernel quantize the query to int8 as well, its fastest
    path (the candidates are re-ranked exactly anyway)."""
    # Imported here: the onnx package takes ~0.6 s to import (ml_dtypes), and only libraries
    # above QUANTIZE_ABOVE photos need this graph; every start of `photoseek` paid it before.
    from onnx import TensorProto, helper

    n, blocks, half = packed.shape

    def in_memory(name: str, dtype: int, shape: list[int]) -> TensorProto:
        tensor = TensorProto(name=name, data_type=dtype, dims=shape)
        tensor.data_location = TensorProto.EXTERNAL
        tensor.external_data.add(key="location", value=f"in-memory-{name}")
        return tensor

    inputs = [
        helper.make_tensor_value_info("query", TensorProto.FLOAT, [1, dim]),
        helper.make_tensor_value_info("bias", TensorProto.FLOAT, [n]),
        helper.make_tensor_value_info("k", TensorProto.INT64, [1]),
    ]
    outputs = [
        helper.make_tensor_value_info("values", TensorProto.FLOAT, [1, None]),
        helper.make_tensor_value_info("positions", TensorProto.INT64, [1, None]),
    ]
    nodes = [
        helper.make_node(
            "MatMulNBits",
            ["query", "vectors", "scales"],
            ["dots"],
            domain="com.microsoft",
            K=dim,
            N=n,
            bits=4,
            block_size=2 * half,
            accuracy_level=4,
        ),
        helper.make_node("Add", ["dots", "bias"], ["scores"]),
        helper.make_node("TopK", ["scores", "k"], ["values", "positions"], axis=-1, largest=1, sorted=1),
    ]
    initializers = [
        in_memory("vectors", TensorProto.UINT8, [n, blocks, half]),
        in_memory("scales", TensorProto.FLOAT, [n * blocks]),
    ]
    model = helper.make_model(
        helper.make_graph(nodes, "top_k", inputs, outputs, initializer=initializers),
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)],
    )
    model.ir_version = 8
    values = (ort.OrtValue.ortvalue_from_numpy(packed), ort.OrtValue.ortvalue_from_numpy(scales.reshape(-1)))
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_external_initializers(["vectors", "scales"], list(values))
    # Its threads must not spin-wait after a query: they would take the cores from the text
    # encoder's session, which runs right before the next query (7 ms instead of 2 ms).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session, values


class VectorIndex:
    """Unit vectors keyed by integer ids, searched by cosine similarity.

    Positions ``[0, base)`` are the 4-bit constant of the scoring graph when the index is
    quantized; later positions are the float32 tail. An exact index keeps everything in the
    tail. ``_bias`` holds 0 for a live position and -inf for a removed one, for both parts.

    An id's position is found in ``_sorted_ids`` / ``_sorted_pos`` (the live positions when the
    index was last laid out, by id) or, for one added since, in the small dict ``_recent``. A
    dict of every id took 106 MB at a million vectors, half as much again as the 4-bit vectors;
    the sorted arrays take 12 MB."""

    def __init__(
        self,
        dim: int,
        *,
        quantize_above: int = QUANTIZE_ABOVE,
        fetch_exact: FetchExact | None = None,
        threads: int = 2,
        tail_limit: int = TAIL_LIMIT,
    ) -> None:
        self.dim = dim
        self.quantize_above = quantize_above
        self.fetch_exact = fetch_exact
        self.threads = threads
        self.tail_limit = tail_limit
        self.block = block_size(dim)
        self._lock = threading.RLock()
        self._ids = np.zeros(0, dtype=np.int64)
        self._packed: np.ndarray | None = None  # uint8 [base, blocks, block / 2] when quantized
        self._scales = np.zeros((0, 1), dtype=np.float32)
        self._tail = np.zeros((0, dim), dtype=np.float32)
        self._bias = np.zeros(0, dtype=np.float32)
        self._sorted_ids = np.zeros(0, dtype=np.int64)
        self._sorted_pos = np.zeros(0, dtype=np.int32)
        self._recent: dict[int, int] = {}
        self._live = 0
        self._session: tuple[ort.InferenceSession, tuple[ort.OrtValue, ...]] | None = None

    def __len__(self) -> int:
        return self._live

    @property
    def quantized(self) -> bool:
        return self._packed is not None

    @property
    def _base(self) -> int:
        return 0 if self._packed is None else len(self._packed)

    @property
    def nbytes(self) -> int:
        """Memory held by the vectors themselves (ONNX Runtime keeps its own packed copy of the
        4-bit matrix besides: ``benchmarks/bench_search.py`` measures the whole)."""
        arrays: list[np.ndarray] = [self._ids, self._scales, self._bias, self._tail, self._sorted_ids, self._sorted_pos]
        if self._packed is not None:
            arrays.append(self._packed)
        return int(sum(a.nbytes for a in arrays))

    def _set_all(self, ids: np.ndarray, packed: np.ndarray | None, scales: np.ndarray, tail: np.ndarray) -> None:
        self._ids = ids
        self._packed, self._scales, self._tail = packed, scales, tail
        self._bias = np.zeros(len(ids), dtype=np.float32)
        self._lay_out()
        self._session = None

    def _lay_out(self) -> None:
        """Sort the live positions by id again, taking in those added since."""
        live = np.flatnonzero(np.isfinite(self._bias))
        order = np.argsort(self._ids[live], kind="stable")
        self._sorted_ids = self._ids[live][order]
        self._sorted_pos = live[order].astype(np.int32)
        self._recent = {}
        self._live = len(live)

    def _find(self, ids: np.ndarray) -> np.ndarray:
        """The live position of each of ``ids``, or -1 where it has none."""
        found = np.full(len(ids), -1, dtype=np.int64)
        if len(self._sorted_ids):
            at = np.minimum(np.searchsorted(self._sorted_ids, ids), len(self._sorted_ids) - 1)
            hit = self._sorted_ids[at] == ids
            found[hit] = self._sorted_pos[at[hit]]
        for n, i in enumerate(ids.tolist()):
            found[n] = self._recent.get(i, found[n])
        known = found >= 0
        found[known] = np.where(np.isfinite(self._bias[found[known]]), found[known], -1)  # removed since
        return found

    def set(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Replace the whole index."""
        ids = np.asarray(ids, dtype=np.int64)
        self.set_chunks(len(ids), [(ids, np.asarray(vectors, dtype=np.float32).reshape(-1, self.dim))])

    def set_chunks(self, count: int, chunks: Iterable[tuple[np.ndarray, np.ndarray]]) -> None:
        """Replace the whole index from ``count`` vectors arriving in chunks, without ever holding
        all of them as float32 when the index is quantized (a million vectors: 200 MB, not 1.5 GB)."""
        quantize = count > self.quantize_above and self.fetch_exact is not None
        blocks = -(-self.dim // self.block)
        ids = np.zeros(count, dtype=np.int64)
        tail = np.zeros((0 if quantize else count, self.dim), dtype=np.float32)
        packed = np.zeros((count if quantize else 0, blocks, self.block // 2), dtype=np.uint8)
        scales = np.zeros((count if quantize else 0, blocks), dtype=np.float32)
        filled = 0
        for chunk_ids, chunk in chunks:
            n = min(len(chunk_ids), count - filled)
            if n <= 0:
                break
            ids[filled : filled + n] = chunk_ids[:n]
            if quantize:
                packed[filled : filled + n], scales[filled : filled + n] = quantize_4bit(chunk[:n], self.block)
            else:
                tail[filled : filled + n] = chunk[:n]
            filled += n
        with self._lock:
            if quantize:
                self._set_all(ids[:filled], packed[:filled], scales[:filled], np.zeros((0, self.dim), np.float32))
            else:
                self._set_all(ids[:filled], None, np.zeros((0, 1), dtype=np.float32), tail[:filled])

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add or replace vectors (a photo indexed while the app runs): they join the float32
        tail, which a quantized index folds into its 4-bit matrix once it grows too long."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        if len(np.unique(ids)) < len(ids):  # an id given twice: its last vector stands
            _, last = np.unique(ids[::-1], return_index=True)
            keep = np.sort(len(ids) - 1 - last)
            ids, vectors = ids[keep], vectors[keep]
        with self._lock:
            self.remove(ids)
            start = len(self._ids)
            self._ids = np.concatenate([self._ids, ids])
            self._bias = np.concatenate([self._bias, np.zeros(len(ids), dtype=np.float32)])
            self._tail = np.concatenate([self._tail, vectors])
            self._recent.update(zip(ids.tolist(), range(start, start + len(ids)), strict=True))
            self._live += len(ids)
            if len(self._recent) > max(self.tail_limit, len(self._sorted_ids) // 32):
                self._lay_out()
            if len(self._ids) > 2 * max(self._live, 1024):
                self._compact()
            elif self._packed is not None and len(self._tail) > max(self.tail_limit, self._base // 32):
                self._fold_tail()
                self.prepare()  # here, in the thread that adds, rather than in the next search

    def remove(self, ids: np.ndarray) -> None:
        ids = np.unique(np.asarray(ids, dtype=np.int64).reshape(-1))
        with self._lock:
            found = self._find(ids)
            found = found[found >= 0]
            self._bias[found] = -np.inf
            self._live -= len(found)
            for i in ids.tolist():
                self._recent.pop(i, None)

    def _fold_tail(self) -> None:
        assert self._packed is not None
        packed, scales = quantize_4bit(self._tail, self.block)
        self._packed = np.concatenate([self._packed, packed])
        self._scales = np.concatenate([self._scales, scales])
        self._tail = np.zeros((0, self.dim), dtype=np.float32)
        self._session = None

    def _compact(self) -> None:
        keep = np.isfinite(self._bias)
        base = self._base
        ids = self._ids[keep]
        tail = self._tail[keep[base:]]
        if self._packed is not None:
            self._set_all(ids, self._packed[keep[:base]], self._scales[keep[:base]], tail)
            if len(tail):
                self._fold_tail()
        else:
            self._set_all(ids, None, self._scales, tail)

    def vector(self, id_: int) -> np.ndarray | None:
        """The stored vector of one id (exact where available)."""
        with self._lock:
            pos = int(self._find(np.asarray([id_], dtype=np.int64))[0])
            if pos < 0:
                return None
            if pos >= self._base:
                return self._tail[pos - self._base].copy()
        assert self.fetch_exact is not None
        return self.fetch_exact(np.asarray([id_], dtype=np.int64))[0]

    def prepare(self) -> None:
        """Make the scoring session now (0.05 s at 100,000 vectors, ~0.5 s at a million), not
        on the first search."""
        with self._lock:
            if self._packed is not None and len(self._packed) and self._session is None:
                self._session = _top_k_session(self._packed, self._scales, self.dim, self.threads)

    def _candidates(self, query: np.ndarray, want: int) -> tuple[np.ndarray, np.ndarray]:
        """Positions and scores (4-bit approximations in the quantized part) of the ``want``
        best live vectors, best first."""
        base = self._base
        positions = [np.zeros(0, dtype=np.int64)]
        scores = [np.zeros(0, dtype=np.float32)]
        if base:
            self.prepare()
            assert self._session is not None
            feeds = {
                "query": query.reshape(1, self.dim),
                "bias": self._bias[:base],
                "k": np.array([min(want, base)], dtype=np.int64),
            }
            values, top = self._session[0].run(None, feeds)
            positions.append(top[0])
            scores.append(values[0])
        if len(self._tail):
            tail_scores = self._tail @ query + self._bias[base:]
            n = len(tail_scores)
            top = np.argpartition(-tail_scores, want - 1)[:want] if want < n else np.arange(n)
            positions.append(top + base)
            scores.append(tail_scores[top])
        all_positions, all_scores = np.concatenate(positions), np.concatenate(scores)
        order = np.argsort(-all_scores, kind="stable")[:want]
        all_positions, all_scores = all_positions[order], all_scores[order]
        live = np.isfinite(all_scores)
        return all_positions[live], all_scores[live]

    def search(self, query: np.ndarray, k: int, *, rerank: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """The ids and cosine scores of the ``k`` best vectors, best first.

        A quantized index re-ranks its ``rerank * k + 64`` best candidates exactly. Fetching the
        float32 vectors costs ~14 us each, so the candidates are few: with 4-bit vectors,
        recall@10 was 0.998 / 0.996 with 47 candidates at 100,000 / 1,000,000 vectors and
        1.000 with 74 (``benchmarks/bench_search.py`` measures recall)."""
        query = np.asarray(query, dtype=np.float32).reshape(self.dim)
        with self._lock:
            n = len(self._ids)
            if n == 0 or k <= 0:
                return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
            quantized = self._packed is not None
            want = min(n, int(k * rerank) + 64 if quantized else k)
            top, cand_scores = self._candidates(query, want)
            ids = self._ids[top]
            from_base = top < self._base
        if quantized and self.fetch_exact is not None and from_base.any():
            cand_scores = cand_scores.copy()
            cand_scores[from_base] = self.fetch_exact(ids[from_base]) @ query
        order = np.argsort(-cand_scores, kind="stable")[:k]
        return ids[order], cand_scores[order].astype(np.float32)
