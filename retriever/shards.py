"""An index served by Ray actors, each holding some of its segments; queries fan out to all.

Each shard actor loads a contiguous run of the live version's segments (their FAISS indexes,
vectors, sentence vectors, passages and BM25 postings). BM25's collection-wide statistics
(IDF, mean passage length) come from the driver, which sums them over every segment's
postings as the one-box `LexicalIndex` does, and sends each query's token weights with it:
so a shard's BM25 scores equal the one-box scores of its rows. For a query each shard returns its own top candidates
of both channels, every one scored by every channel; the driver keeps the global top of each
channel, exactly as `HybridSearcher.candidates` picks them on one box, and fuses and answers
as today (`ShardedEngine` is an `Engine` over a view of the shards). A query sent while a
shard is down fails with `ShardUnavailable` (or, with `partial=True`, is answered from the
other shards with a `ShardWarning`); Ray restarts the actor, which reloads from the folder.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from cite.core.config import SearchSettings, Settings
from cite.core.embedder import Embedder
from cite.core.errors import IndexMissing
from cite.core.lexical import LexicalIndex, Postings, QueryWeights
from cite.core.store import Manifest, current_version, read_manifest, segment_folder
from cite.core.types import Document, Hit, Passage
from cite.retriever.engine import Engine, Snapshot
from cite.retriever.rerank import TokenReranker
from cite.retriever.search import Candidates, fuse_and_rerank
from cite.retriever.shard_actors import (
    QUERY_TIMEOUT_S,
    ShardCandidates,
    ShardSet,
    ShardUnavailable,
    assign_shards,
    connect,
)


def merge_candidates(
    found: Sequence[ShardCandidates | None], query: str, n: int
) -> tuple[Candidates, dict[int, Passage]]:
    """The shards' candidates cut to what one box would pick: the global top `n` of the dense
    search (faiss score, then segment and rank order, as SegmentedDense merges) and of BM25
    (score, then row, as `top_rows`), each scored by every channel. Returns the candidates
    (keyed by passage id, as HybridSearcher's) and the passage of each kept row."""
    shards = [f for f in found if f is not None]
    dense = sorted((entry for f in shards for entry in f.dense), key=lambda e: (-e[0], e[1], e[2]))[:n]
    bm25 = sorted((entry for f in shards for entry in f.bm25_top), key=lambda e: (-e[0], e[1]))[:n]
    rows = sorted({row for *_, row in dense} | {row for _, row in bm25})
    merged = {key: value for f in shards for key, value in f.passages.items()}
    of = {attr: {k: v for f in shards for k, v in getattr(f, attr).items()} for attr in ("cosine", "bm25", "sentence")}
    ids = [merged[row].id for row in rows]
    scores = {
        "dense": {pid: of["cosine"][row] for pid, row in zip(ids, rows, strict=True)},
        "bm25": {pid: of["bm25"][row] for pid, row in zip(ids, rows, strict=True) if row in of["bm25"]},
        "sentence": {pid: of["sentence"][row][0] for pid, row in zip(ids, rows, strict=True)},
    }
    spans = {pid: of["sentence"][row][1] for pid, row in zip(ids, rows, strict=True)}
    return Candidates(scores, spans, len(query.split()), dict(zip(ids, rows, strict=True)), query), {
        row: merged[row] for row in rows
    }


class _Documents(Mapping[str, Document]):
    """The index's documents, fetched from the shards that hold them when asked for."""

    def __init__(self, shards: ShardSet, version: str, manifest: Manifest) -> None:
        # Not the ShardedIndex itself: a cycle would keep it, and the shard actors its handles
        # hold, alive until the garbage collector's next full pass.
        self._shards, self._version, self._names, self._cache = shards, version, manifest.documents, {}

    def __getitem__(self, name: str) -> Document:
        if name not in self._cache:
            found = [d for d in self._shards.call("document", self._version, name) if d is not None]
            if not found:
                raise KeyError(name)
            self._cache[name] = found[0]
        return self._cache[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


class ShardedIndex:
    """What the answering code reads of an index (`path`, `manifest`, `lexical`, `documents`,
    `passages`, `row_of`, `sentences_of`, `mentioned`), served by the shards: rows are global rows, and
    only the passages of recent candidates are known here."""

    MAX_CACHED = 200_000

    def __init__(self, root: Path, shards: ShardSet) -> None:
        version = current_version(root)
        if version is None:
            raise IndexMissing(f"No index at {root}; build one with `cite index PATH --index {root}`.")
        self.path, self.shards = version, shards
        self.version = version.name
        self.manifest = read_manifest(root)
        # Every segment's BM25 postings (memory-mapped): the global statistics, for the shards'
        # query weights and the abstention signal.
        self.lexical = LexicalIndex([Postings.load(segment_folder(root, s.name)) for s in self.manifest.segments])
        self.documents = _Documents(shards, self.version, self.manifest)
        self.passages: dict[int, Passage] = {}
        self.row_of: dict[str, int] = {}
        self._lock = threading.Lock()
        runs = assign_shards(self.manifest.segments, shards.shards)
        sizes = [s.passages for s in self.manifest.segments]
        self._first_rows = [sum(sizes[:first]) for first, _ in runs]

    def remember(self, passages: Mapping[int, Passage]) -> None:
        with self._lock:
            if len(self.passages) > self.MAX_CACHED:
                self.passages, self.row_of = {}, {}
            self.passages.update(passages)
            self.row_of.update({p.id: row for row, p in passages.items()})

    def mentioned(self, tokens: set[str], docs: set[str]) -> set[str]:
        """`StoredIndex.mentioned`, asked of every shard."""
        return set().union(*self.shards.call("mentioned", self.version, tokens, docs))

    def sentences_of(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        import ray

        shard = int(np.searchsorted(self._first_rows, row, side="right") - 1)
        try:
            return ray.get(self.shards.actors[shard].sentences_of.remote(self.version, row), timeout=QUERY_TIMEOUT_S)
        except ray.exceptions.RayError as error:
            raise ShardUnavailable(
                f"Shard {shard + 1} of {self.shards.shards} did not answer ({type(error).__name__}); try again."
            ) from None


@dataclass
class ShardedSearcher:
    """`HybridSearcher`'s verbs over the shards: fan out, keep the global candidates, fuse."""

    index: ShardedIndex
    embedder: Embedder
    settings: SearchSettings
    partial: bool = False

    def search(self, query: str, k: int) -> list[Hit]:
        return self.search_with_vector(query, self.embedder.encode([query]), k)

    def search_with_vector(self, query: str, vector: np.ndarray, k: int) -> list[Hit]:
        return self.fuse(self.candidates(query, vector, k), k)

    def candidates(self, query: str, vector: np.ndarray, k: int) -> Candidates:
        n = max(self.settings.candidates, k)
        vector = np.ascontiguousarray(vector, dtype=np.float32)
        weights = QueryWeights.of(self.index.lexical, query, self.settings.bm25_k1_for(query))
        found = self.index.shards.call("candidates", self.index.version, weights, vector, n, partial=self.partial)
        candidates, passages = merge_candidates(found, query, n)
        self.index.remember(passages)
        return candidates

    def fuse(self, found: Candidates, k: int, settings: SearchSettings | None = None) -> list[Hit]:
        return fuse_and_rerank(found, self.index, k, settings or self.settings, self.reranker)

    @cached_property
    def reranker(self) -> TokenReranker:
        return TokenReranker(self.embedder)


class ShardedEngine(Engine):
    """`Engine` (search, ask, version switching) over shard actors instead of a loaded index."""

    def __init__(
        self,
        root: Path,
        shards: ShardSet,
        embedder: Embedder | None = None,
        settings: Settings | None = None,
        chat_model: Any | None = None,
        partial: bool = False,
    ) -> None:
        self.shards, self.partial = shards, partial
        super().__init__(root, embedder, settings, chat_model)

    def _load(self) -> Snapshot:
        index = ShardedIndex(self.root, self.shards)
        searcher = ShardedSearcher(index, self.embedder, self.settings.search, self.partial)
        return Snapshot(index, searcher, self.settings)  # type: ignore[arg-type]


def sharded_engine(address: str, root: Path, shards: int = 2) -> ShardedEngine:
    """An engine over the shard actors serving `root` on the Ray cluster at `address` (started
    for this process when none are running). Stays connected for the process's life."""

    connect(address)
    from cite.retriever.generate import chat_model_from_env

    return ShardedEngine(root, ShardSet.start(root, shards, detached=False), chat_model=chat_model_from_env())
