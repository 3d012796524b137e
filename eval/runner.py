"""Runs dense, BM25 and hybrid retrieval over an index for a set of queries and scores them."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
from cite.core.config import SearchSettings
from cite.core.embedder import Embedder
from cite.core.ranking import best_first
from cite.core.store import StoredIndex
from cite.core.types import Hit
from cite.eval.metrics import evaluate
from cite.retriever.search import DenseSearcher, HybridSearcher, LexicalSearcher

METHODS = ("dense", "bm25", "hybrid")


@dataclass(frozen=True)
class MethodResult:
    method: str
    metrics: dict[str, float]
    seconds: float  # wall time for all queries, embedding included
    curve: dict[int, float] = field(default_factory=dict)  # recall (or hit rate) at k, for plots
    run: dict[str, dict[str, float]] = field(default_factory=dict, repr=False)


def searchers(
    index: StoredIndex, embedder: Embedder, settings: SearchSettings
) -> dict[str, Callable[[str, np.ndarray, int], list[Hit]]]:
    """One `(query, query_vector, k) -> hits` function per method, sharing the loaded index."""
    dense = DenseSearcher(index, embedder)
    lexical = LexicalSearcher(index)
    hybrid = HybridSearcher(dense, lexical, settings)
    return {
        "dense": lambda query, vector, k: dense.search_vector(vector, k),
        "bm25": lambda query, vector, k: lexical.search(query, k),
        "hybrid": hybrid.search_with_vector,
    }


def embed_queries(embedder: Embedder, queries: Mapping[str, str]) -> dict[str, np.ndarray]:
    """Each query's vector (a 1-row matrix), embedded in one batch."""
    ids = list(queries)
    matrix = embedder.encode([queries[qid] for qid in ids]) if ids else np.zeros((0, embedder.dim))
    return {qid: matrix[i : i + 1] for i, qid in enumerate(ids)}


def run_queries(
    search: Callable[[str, np.ndarray, int], list[Hit]],
    queries: Mapping[str, str],
    vectors: Mapping[str, np.ndarray],
    k: int,
    by_document: bool = False,
    drop_self: bool = False,
) -> dict[str, dict[str, float]]:
    """TREC run of one method. `by_document` scores a document by its best passage (MaxP);
    `drop_self` removes a result whose id is the query's (ArguAna, as BEIR does)."""
    run: dict[str, dict[str, float]] = {}
    passages_needed = k * 3 if by_document else k
    for qid, query in queries.items():
        scores: dict[str, float] = {}
        for hit in search(query, vectors[qid], passages_needed):
            key = hit.passage.doc if by_document else hit.passage.id
            scores[key] = max(scores.get(key, float("-inf")), hit.score)
        if drop_self:
            scores.pop(qid, None)
        run[qid] = dict(best_first(scores)[:k])
    return run


def evaluate_methods(
    index: StoredIndex,
    embedder: Embedder,
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    settings: SearchSettings,
    measures: tuple[str, ...],
    curve_metric: str = "recall",
    k: int = 100,
    by_document: bool = False,
    drop_self: bool = False,
    methods: tuple[str, ...] = METHODS,
) -> list[MethodResult]:
    """Scores each method; query embedding time is shared and added to each dense-using method."""
    started = time.perf_counter()
    vectors = embed_queries(embedder, queries)
    embed_seconds = time.perf_counter() - started
    results = []
    for method, search in searchers(index, embedder, settings).items():
        if method not in methods:
            continue
        started = time.perf_counter()
        run = run_queries(search, queries, vectors, k, by_document, drop_self)
        seconds = time.perf_counter() - started + (embed_seconds if method != "bm25" else 0.0)
        curve_ks = [1, 2, 3, 5, 10, 20, 50, 100]
        curve = evaluate(run, qrels, tuple(f"{curve_metric}@{c}" for c in curve_ks if c <= k))
        results.append(
            MethodResult(
                method,
                evaluate(run, qrels, measures),
                seconds,
                {int(name.split("@")[1]): value for name, value in curve.items()},
                run,
            )
        )
    return results
