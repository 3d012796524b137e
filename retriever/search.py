"""Searchers over a loaded index. Each one has the same verb: `search(query, k) -> list[Hit]`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Protocol

import numpy as np
from cite.core.config import SearchSettings
from cite.core.embedder import Embedder
from cite.core.errors import BadQuestion, IndexIncompatible
from cite.core.lexical import K1, QueryWeights, tokenize
from cite.core.ranking import best_first
from cite.core.store import StoredIndex, incompatibility, read_index
from cite.core.types import Hit, Passage
from cite.retriever.fusion import convex_fusion, reciprocal_rank_fusion
from cite.retriever.rerank import TokenReranker

MAX_QUESTION_CHARS = 2000  # a question to answer (`ask`)
# A search query may be a pasted paragraph (a citation lookup) or a whole argument: ArguAna's
# test queries run to 5,500 characters. The dense model reads only its first 256 word pieces;
# BM25 scores every word (with `long_query_bm25_k1`), as `cite eval --beir` does.
MAX_QUERY_CHARS = 20_000


def check_question(question: str, limit: int = MAX_QUESTION_CHARS) -> str:
    """The question, stripped of control characters and outer space, cut at `limit` characters.

    Raises:
        BadQuestion: when nothing is left.
    """
    cleaned = "".join(ch if ch.isprintable() else " " for ch in question).strip()
    if not cleaned:
        raise BadQuestion("The question is empty; type what you want to find in the documents.")
    return cleaned[:limit]


def check_query(query: str) -> str:
    """`check_question` for a search query: cut at MAX_QUERY_CHARS instead."""
    return check_question(query, MAX_QUERY_CHARS)


def load_index(root: Path, embedder: Embedder) -> StoredIndex:
    """Reads the index and checks it was built with this embedder (else the vectors lie)."""
    index = read_index(root)
    mismatch = incompatibility(index.manifest, embedder)
    if mismatch == "model":
        raise IndexIncompatible(
            f"The index at {root} was built with {index.manifest.model} "
            f"(weights {index.manifest.model_fingerprint[:12]}), but this cite embeds with "
            f"{embedder.name} (weights {embedder.fingerprint[:12]}); run `cite index` to rebuild it."
        )
    if mismatch:
        raise IndexIncompatible(f"The index at {root} uses another BM25 tokenizer; run `cite index` to rebuild it.")
    return index


@dataclass
class DenseSearcher:
    index: StoredIndex
    embedder: Embedder

    def __post_init__(self) -> None:
        import faiss

        # One thread per query: for a single query vector OpenMP's fan-out costs more than it
        # saves (10x slower here when the other core is busy), and concurrent users already
        # run in parallel.
        faiss.omp_set_num_threads(1)

    def search(self, query: str, k: int) -> list[Hit]:
        vector = self.embedder.encode([query])
        return self.search_vector(vector, k)

    def search_vector(self, vector: np.ndarray, k: int) -> list[Hit]:
        return [Hit(self.index.passages[row], score, {"dense": score}) for score, row in self.search_rows(vector, k)]

    def search_rows(self, vector: np.ndarray, k: int) -> list[tuple[float, int]]:
        """(score, row) of the k nearest passages, best first, without building the passages."""
        k = min(k, self.index.passage_count)
        scores, rows = self.index.dense.search(np.ascontiguousarray(vector, dtype=np.float32), k)
        return [(float(score), int(row)) for score, row in zip(scores[0], rows[0], strict=True) if row >= 0]


@dataclass
class LexicalSearcher:
    index: StoredIndex

    def scores(self, query: str, k1: float = K1) -> np.ndarray:
        """BM25 score of every passage (zeros when no query word is in the index)."""
        return self.index.lexical.scores(tokenize(query), k1)

    def top(self, query: str, n: int, k1: float = K1) -> tuple[QueryWeights, np.ndarray, np.ndarray]:
        """The query as BM25 weighs it, and its `n` best rows with their scores (above 0), best first."""
        weighed = QueryWeights.of(self.index.lexical, query, k1)
        rows, scores = self.index.lexical.top_scored(weighed.weights, weighed.mean_length, k1, n)
        return weighed, rows, scores

    def scores_of(self, weighed: QueryWeights, rows: np.ndarray) -> np.ndarray:
        """BM25 scores of ascending `rows` for a query `top` weighed."""
        return self.index.lexical.scores_of(weighed.weights, weighed.mean_length, weighed.k1, rows)

    def search(self, query: str, k: int) -> list[Hit]:
        _, rows, scores = self.top(query, k)
        return [
            Hit(self.index.passages[int(row)], float(score), {"bm25": float(score)})
            for row, score in zip(rows, scores, strict=True)
        ]


def top_rows(scores: np.ndarray, k: int) -> np.ndarray:
    """Rows of the k highest scores, best first (ties by row, for determinism)."""
    k = min(k, len(scores))
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    # argpartition keeps an arbitrary few of the rows tied at the k-th score: keep the first ones.
    cut = scores[np.argpartition(-scores, k - 1)[k - 1]]
    above = np.flatnonzero(scores > cut)
    chosen = np.concatenate([above, np.flatnonzero(scores == cut)[: k - len(above)]])
    return chosen[np.lexsort((chosen, -scores[chosen]))]


@dataclass(frozen=True)
class Candidates:
    """One query's candidate passages, scored by every channel: what fusion combines."""

    scores: dict[str, dict[str, float]]  # channel ("dense", "bm25", "sentence") -> {passage id: score}
    sentences: dict[str, tuple[int, int] | None]  # passage id -> span of its best-matching sentence
    query_words: int
    rows: dict[str, int] = field(default_factory=dict)  # passage id -> index row (saves looking it up)
    query: str = ""  # what was asked (the token re-ranking reads it)


@dataclass
class HybridSearcher:
    """Dense and lexical searchers composed: candidates from both, each candidate scored by
    both (exact cosine from the stored vectors, BM25 from the lexical index), then fused."""

    dense: DenseSearcher
    lexical: LexicalSearcher
    settings: SearchSettings

    def search(self, query: str, k: int) -> list[Hit]:
        vector = self.dense.embedder.encode([query])
        return self.search_with_vector(query, vector, k)

    def search_with_vector(self, query: str, vector: np.ndarray, k: int) -> list[Hit]:
        return self.fuse(self.candidates(query, vector, k), k)

    def candidates(self, query: str, vector: np.ndarray, k: int) -> Candidates:
        """The top `max(settings.candidates, k)` of each searcher, each scored by every channel."""
        index = self.dense.index
        n = max(self.settings.candidates, k)
        weighed, top, _ = self.lexical.top(query, n, self.settings.bm25_k1_for(query))
        rows = {row for _, row in self.dense.search_rows(vector, n)}
        rows.update(top.tolist())
        ordered = sorted(rows)
        bm25 = self.lexical.scores_of(weighed, np.asarray(ordered, dtype=np.int64))
        ids = index.passage_ids(ordered)
        # Exact cosines with the stored (int8) vectors, whatever the ANN index approximated.
        cosines = index.vectors(ordered) @ vector[0]
        best = dict(zip(ids, best_sentences(index, ordered, vector[0]), strict=True))
        scores = {
            "dense": dict(zip(ids, map(float, cosines), strict=True)),
            # A zero BM25 score means "no query word": no rank at all, not a tie for last.
            "bm25": {pid: float(score) for pid, score in zip(ids, bm25, strict=True) if score > 0},
            "sentence": {pid: cosine for pid, (cosine, _) in best.items()},
        }
        spans = {pid: span for pid, (_, span) in best.items()}
        return Candidates(scores, spans, len(query.split()), dict(zip(ids, ordered, strict=True)), query)

    def fuse(self, found: Candidates, k: int, settings: SearchSettings | None = None) -> list[Hit]:
        return fuse_and_rerank(found, self.dense.index, k, settings or self.settings, self.reranker)

    @cached_property
    def reranker(self) -> TokenReranker:
        return TokenReranker(self.dense.embedder)


class Searcher(Protocol):
    """What every searcher provides: `HybridSearcher` on one box, `ShardedSearcher` over Ray
    shards. Eval and tuning score candidates once and fuse them under many settings."""

    settings: SearchSettings

    def search(self, query: str, k: int) -> list[Hit]: ...

    def search_with_vector(self, query: str, vector: np.ndarray, k: int) -> list[Hit]: ...

    def candidates(self, query: str, vector: np.ndarray, k: int) -> Candidates: ...

    def fuse(self, found: Candidates, k: int, settings: SearchSettings | None = None) -> list[Hit]: ...


class PassageLookup(Protocol):
    """The passages fusion returns hits of: a stored index, or the shards' view of one."""

    @property
    def passages(self) -> Mapping[int, Passage] | Sequence[Passage]: ...

    @property
    def row_of(self) -> Mapping[str, int]: ...


def fuse_and_rerank(
    found: Candidates, index: PassageLookup, k: int, settings: SearchSettings, reranker: TokenReranker
) -> list[Hit]:
    """The top k by fused score, the top `token_depth` of them re-ordered by token match."""
    hits = fuse(found, index, max(k, settings.token_depth), settings)
    return reranker.rerank(found.query, hits, settings)[:k]


def fuse(found: Candidates, index: PassageLookup, k: int, settings: SearchSettings) -> list[Hit]:
    """The top k candidates by fused score, each text once."""
    scores = found.scores
    sentence_like = found.query_words <= settings.sentence_query_words
    weights = {
        "dense": settings.dense_weight,
        "bm25": settings.bm25_weight,
        "sentence": settings.sentence_weight if sentence_like else 0.0,
    }
    used = [name for name, weight in weights.items() if weight > 0]
    if not used:  # only the sentence channel was weighted, and this query is too long for it
        used, weights["dense"] = ["dense"], 1.0
    if settings.fusion == "rrf":
        fused = reciprocal_rank_fusion([scores[name] for name in used], k=settings.rrf_k)
    else:
        fused = convex_fusion([scores[name] for name in used], [weights[name] for name in used])
    hits: list[Hit] = []
    seen: set[str] = set()
    for pid, score in best_first(fused):
        passage = index.passages[found.rows[pid] if pid in found.rows else index.row_of[pid]]
        if passage.text in seen:
            # The same paragraph again (a site's every page, a file indexed twice): it would fill
            # the top k with copies. The first copy stands for all.
            continue
        seen.add(passage.text)
        channels = {name: scores[name].get(pid, 0.0) for name in scores}
        hits.append(Hit(passage, score, {**channels, "fused": score}, found.sentences[pid]))
        if len(hits) == k:
            break
    return hits


def best_sentences(
    index: StoredIndex, rows: list[int], query_vector: np.ndarray
) -> list[tuple[float, tuple[int, int] | None]]:
    """For each passage row, its best-matching sentence: (cosine, original span), or
    (0, None) for a passage without sentences. One gather and one product for all rows."""
    counts, spans, cosines = index.sentences(rows, query_vector)
    owner = np.repeat(np.arange(len(rows)), counts)
    order = np.lexsort((-cosines, owner))  # by passage, its best sentence first
    firsts = np.cumsum(counts) - counts  # each passage's first entry in `order`
    best: list[tuple[float, tuple[int, int] | None]] = []
    for first, count in zip(firsts.tolist(), counts.tolist(), strict=True):
        if count == 0:
            best.append((0.0, None))
            continue
        top = order[first]
        best.append((float(cosines[top]), (int(spans[top, 0]), int(spans[top, 1]))))
    return best
