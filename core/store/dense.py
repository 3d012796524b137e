"""A segment's dense index: the FAISS index kind chosen by size, built and trained over int8
codes, set up for search; and the segments' indexes searched as one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

# The dense index of a segment, by its size (bench/scale.py measures each): exact search
# over int8 codes up to HNSW_FROM passages (~20 ms at 100k on one core), an HNSW graph over
# int8 codes up to IVF_FROM, then IVF-PQ (a coarse quantiser and 48-byte codes) whose top
# candidates are re-ranked with the int8 codes. The int8 codes are the vectors cite stores.
HNSW_FROM = 100_000
IVF_FROM = 400_000
HNSW_M = 32  # graph neighbours per vector
HNSW_EF_CONSTRUCTION = 80  # candidates explored per insertion while building
HNSW_EF_SEARCH = 128  # candidates explored per query (recall vs speed); set on load, not stored
IVF_PQ_BYTES = 48  # PQ code bytes per vector (8 dimensions per byte at dim 384)
IVF_NPROBE = 32  # inverted lists searched per query
IVF_REFINE = 4  # k * IVF_REFINE PQ candidates re-ranked with the int8 codes
FLAT_KIND = "flat-sq8"
HNSW_KIND = f"hnsw{HNSW_M}-sq8"
IVF_KIND = f"ivfpq{IVF_PQ_BYTES}-sq8"
DENSE_KINDS = (FLAT_KIND, HNSW_KIND, IVF_KIND)


def dense_index_kind(count: int) -> str:
    """Exact search while it is fast enough; a graph index beyond; IVF-PQ for the largest."""
    if count <= HNSW_FROM:
        return FLAT_KIND
    return HNSW_KIND if count <= IVF_FROM else IVF_KIND


def new_dense_index(kind: str, dim: int, count: int = 0) -> Any:
    """An empty FAISS index of `kind` over unit vectors (inner product = cosine) stored as
    int8 codes, for about `count` vectors; `train_dense_index` it before adding vectors.
    Search settings are not part of the file: see `ready_to_search`."""
    import faiss

    sq8, ip = faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
    if kind == FLAT_KIND:
        return faiss.IndexScalarQuantizer(dim, sq8, ip)
    if kind == HNSW_KIND:
        index = faiss.IndexHNSWSQ(dim, sq8, HNSW_M, ip)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        return index
    if kind == IVF_KIND:
        lists = max(1, min(4096, int(4 * np.sqrt(max(count, 1)))))
        coarse = faiss.IndexFlatIP(dim)
        subquantisers = max(m for m in range(1, IVF_PQ_BYTES + 1) if dim % m == 0)  # PQ needs a divisor of dim
        pq = faiss.IndexIVFPQ(coarse, dim, lists, subquantisers, 8, ip)
        pq.own_fields = True
        coarse.this.disown()
        refine = faiss.IndexScalarQuantizer(dim, sq8, ip)
        index = faiss.IndexRefine(pq, refine)
        index.own_fields = True
        pq.this.disown()
        refine.this.disown()
        return index
    raise ValueError(f"Unknown dense index kind {kind!r}; known: {', '.join(DENSE_KINDS)}.")


def int8_range(dim: int) -> float:
    """The int8 codes' range, the same for every segment: +-7 times the root-mean-square
    component of a unit vector of `dim` dimensions (+-0.357 for MiniLM's 384; the largest
    component over SciFact's 10,776 passages was 0.281), at most 1. Ranges trained on each
    segment's own vectors made a vector's codes depend on its segment mates: a Ray build, an
    incremental one and a fresh one stored the same text a little differently."""
    return min(1.0, 7.0 / float(np.sqrt(dim)))


def train_dense_index(index: Any, vectors: np.ndarray) -> None:
    """Sets the int8 ranges (fixed: see `int8_range`) and trains IVF-PQ's quantisers on `vectors`."""
    dim = index.d
    vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, dim)
    limit = np.full((1, dim), int8_range(dim), dtype=np.float32)
    ranges = np.vstack([limit, -limit])  # a component beyond the range is clipped to it
    if hasattr(index, "refine_index"):  # IVF-PQ: coarse lists and PQ on the vectors, int8 ranges fixed
        import faiss

        sample = vectors
        if len(vectors) > 100_000:  # training on a sample: IVF-PQ's quantisers need no more
            sample = vectors[np.sort(np.random.default_rng(0).permutation(len(vectors))[:100_000])]
        faiss.downcast_index(index.base_index).train(sample)
        faiss.downcast_index(index.refine_index).train(ranges)
        index.is_trained = True
    else:
        index.train(ranges)


def build_dense_index(vectors: np.ndarray, kind: str | None = None) -> tuple[Any, str]:
    """A trained FAISS index of `kind` (default: chosen by size) holding `vectors`, and the kind."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    kind = kind or dense_index_kind(len(vectors))
    index = new_dense_index(kind, vectors.shape[1], len(vectors))
    train_dense_index(index, vectors)
    if len(vectors):
        index.add(vectors)
    return index, kind


def ready_to_search(index: Any) -> Any:
    """`index`, set up for queries: HNSW explores HNSW_EF_SEARCH candidates, IVF-PQ probes
    IVF_NPROBE lists and re-ranks IVF_REFINE times k candidates with the int8 codes."""
    import faiss

    if hasattr(index, "hnsw"):
        index.hnsw.efSearch = HNSW_EF_SEARCH
    if hasattr(index, "refine_index"):
        faiss.extract_index_ivf(index).nprobe = IVF_NPROBE
        index.k_factor = IVF_REFINE
    return index


class SegmentedDense:
    """The segments' FAISS indexes searched as one: the best k over all of them."""

    def __init__(self, indexes: Sequence[Any]) -> None:
        self.indexes = list(indexes)
        self._starts = np.cumsum([0] + [index.ntotal for index in self.indexes])
        self.ntotal = int(self._starts[-1])

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, global rows) like faiss' search; rows are -1 past the end."""
        found = [
            (scores, np.where(rows >= 0, rows + start, -1))
            for index, start in zip(self.indexes, self._starts, strict=False)
            if index.ntotal
            for scores, rows in [index.search(vectors, min(k, index.ntotal))]
        ]
        if len(found) == 1:
            return found[0]
        scores = np.hstack([s for s, _ in found]) if found else np.zeros((len(vectors), 0), np.float32)
        rows = np.hstack([r for _, r in found]) if found else np.zeros((len(vectors), 0), np.int64)
        scores = np.where(rows >= 0, scores, -np.inf)
        best = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(scores, best, axis=1), np.take_along_axis(rows, best, axis=1)
