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
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from cite.core.cluster import init_ray
from cite.core.config import SearchSettings, Settings
from cite.core.embedder import Embedder
from cite.core.errors import CiteError, IndexMissing
from cite.core.lexical import LexicalIndex, Postings, QueryWeights
from cite.core.store import Manifest, SegmentRecord, StoredIndex, current_version, read_manifest, segment_folder
from cite.core.types import Document, Hit, Passage
from cite.retriever.engine import Engine, Snapshot
from cite.retriever.search import Candidates, HybridSearcher, best_sentences

NAMESPACE = "cite"
QUERY_TIMEOUT_S = 30.0


class ShardUnavailable(CiteError):
    """A shard did not answer (it died, and Ray is restarting it)."""


class ShardWarning(UserWarning):
    """An answer came from fewer shards than the index has."""


def assign_shards(segments: Sequence[SegmentRecord], shards: int) -> list[tuple[int, int]]:
    """Splits the segments, in manifest order, into at most `shards` contiguous runs of about
    equal passages: (first, end) segment positions per shard. Contiguous runs keep each
    shard's rows one range of the global rows.

    Raises:
        ValueError: when `shards` < 1.
    """
    if shards < 1:
        raise ValueError(f"shards must be at least 1, got {shards}.")
    sizes = [s.passages for s in segments]
    count = min(shards, len(sizes)) or 1
    total, runs, first, done = sum(sizes), [], 0, 0
    for position, size in enumerate(sizes):
        done += size
        left = len(sizes) - position - 1  # segments after this one
        wanted = count - len(runs) - 1  # runs still to start after this one
        if wanted and (done >= total * (len(runs) + 1) / count or left == wanted):
            runs.append((first, position + 1))
            first = position + 1
    runs.append((first, len(sizes)))
    return runs


@dataclass(frozen=True)
class ShardCandidates:
    """One shard's answer to a query. Rows are global (the one-box index's rows)."""

    dense: list[tuple[float, int, int, int]]  # (faiss score, segment position, rank in its segment, row)
    bm25_top: list[tuple[float, int]]  # its top BM25 rows: (score, row)
    passages: dict[int, Passage]  # every candidate row
    cosine: dict[int, float]
    bm25: dict[int, float]  # candidate rows with a BM25 score above 0
    sentence: dict[int, tuple[float, tuple[int, int] | None]]


class Shard:
    """A shard actor's state: shard `number` of `shards` of the index at `root`, loaded for the
    version a query names (a restarted actor reloads from the folder on its first query)."""

    def __init__(self, root: str, number: int, shards: int) -> None:
        import faiss

        faiss.omp_set_num_threads(1)  # as DenseSearcher: one query, one thread
        self.root, self.number, self.shards = Path(root), number, shards
        self.version = ""
        self._load()

    def _load(self) -> None:
        version = current_version(self.root)
        if version is None:
            raise IndexMissing(f"No index at {self.root}; build one with `cite index PATH --index {self.root}`.")
        manifest = read_manifest(self.root)
        runs = assign_shards(manifest.segments, self.shards)
        first, end = runs[self.number] if self.number < len(runs) else (0, 0)
        segments = _read_segments(self.root, manifest.segments[first:end])
        self.first_segment = first
        self.first_row = sum(s.passages for s in manifest.segments[:first])
        lexical = LexicalIndex([segment.postings for segment in segments])  # scored with global weights
        self.index = StoredIndex(version, manifest, segments, lexical)
        self.version = version.name

    def _at(self, version: str) -> StoredIndex:
        if version != self.version:
            self._load()
        if version != self.version:
            raise ShardUnavailable(f"Shard {self.number} holds index version {self.version}, not {version}.")
        return self.index

    def pid(self) -> int:
        import os

        return os.getpid()

    def candidates(self, version: str, weights: QueryWeights, vector: np.ndarray, n: int) -> ShardCandidates:
        """This shard's share of `HybridSearcher.candidates` for a query of BM25 `weights` and `vector`."""
        index = self._at(version)
        query_vector = np.ascontiguousarray(vector, np.float32)
        dense = []
        for position, (segment, start) in enumerate(_with_starts(index.segments)):
            if not segment.dense.ntotal:
                continue
            scores, rows = segment.dense.search(query_vector, min(n, segment.dense.ntotal))
            dense += [
                (float(score), self.first_segment + position, rank, self.first_row + start + int(row))
                for rank, (score, row) in enumerate(zip(scores[0], rows[0], strict=True))
                if row >= 0
            ]
        top, top_scores = index.lexical.top_scored(weights.weights, weights.mean_length, weights.k1, n)
        local = sorted({row - self.first_row for *_, row in dense} | set(top.tolist()))
        bm25 = index.lexical.scores_of(weights.weights, weights.mean_length, weights.k1, np.asarray(local, np.int64))
        cosines = index.vectors(local) @ vector[0] if local else []
        best = best_sentences(index, local, vector[0]) if local else []
        rows = [self.first_row + r for r in local]
        return ShardCandidates(
            dense=dense,
            bm25_top=[(float(score), self.first_row + int(r)) for r, score in zip(top, top_scores, strict=True)],
            passages={row: index.passages[r] for row, r in zip(rows, local, strict=True)},
            cosine={row: float(c) for row, c in zip(rows, cosines, strict=True)},
            bm25={row: float(score) for row, score in zip(rows, bm25, strict=True) if score > 0},
            sentence=dict(zip(rows, best, strict=True)),
        )

    def sentences_of(self, version: str, row: int) -> tuple[np.ndarray, np.ndarray]:
        return self._at(version).sentences_of(row - self.first_row)

    def document(self, version: str, name: str) -> Document | None:
        return self._at(version).documents.get(name)

    def mentioned(self, version: str, tokens: set[str], docs: set[str]) -> set[str]:
        return self._at(version).mentioned(tokens, docs)


def _actor_name(root: Path, number: int, count: int) -> str:
    return f"cite-shard-{number}-of-{count}:{root}"


def _running_shards(root: Path) -> int:
    """How many shards serve `root` on the cluster now (0: none)."""
    import ray

    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a.get("namespace") == NAMESPACE]
    counts = {int(name.split("-of-")[1].split(":")[0]) for name in names if name.endswith(f":{root}")}
    return max(counts, default=0)


def connect(address: str) -> None:
    """Connects this process to the Ray cluster at `address`, in cite's namespace, unless it is
    connected already.

    Raises:
        CiteError: when no cluster answers there.
    """
    import ray

    if ray.is_initialized():
        return
    init_ray(address, "start one with `ray start --head`", namespace=NAMESPACE)


def sharded_engine(address: str, root: Path, shards: int = 2) -> ShardedEngine:
    """An engine over the shard actors serving `root` on the Ray cluster at `address` (started
    for this process when none are running). Stays connected for the process's life."""

    connect(address)
    from cite.retriever.generate import chat_model_from_env

    return ShardedEngine(root, ShardSet.start(root, shards, detached=False), chat_model=chat_model_from_env())


def _with_starts(segments: Sequence[Any]) -> Iterator[tuple[Any, int]]:
    start = 0
    for segment in segments:
        yield segment, start
        start += segment.record.passages


def _read_segments(root: Path, records: Sequence[SegmentRecord]) -> list[Any]:
    """The one place that loads single segments (core.store loads whole versions)."""
    from cite.core.store import _read_segment, _verify, writer_crashed

    check = "full" if writer_crashed(root) else "stamps"  # as read_index checks
    for record in records:
        _verify(segment_folder(root, record.name), record, check)
    return [_read_segment(segment_folder(root, record.name), record) for record in records]


@dataclass
class ShardSet:
    """Handles to the shard actors of one index, created (or found by name) on a Ray cluster.

    Actors are named `cite-shard-<n>-of-<N>:<root>` in namespace NAMESPACE, so every process
    of a deployment (the UI, Ray Serve replicas, `cite search --ray`) talks to the same ones."""

    root: Path
    shards: int
    actors: list[Any] = field(default_factory=list)
    owned: bool = False  # started by this process, not detached: `release` stops them

    @classmethod
    def start(cls, root: Path, shards: int = 2, cpus: float = 0.0, detached: bool = True) -> ShardSet:
        """The shard actors for the index at `root`: the running ones if there are, else `shards`
        new ones (at most one per segment), spread over the nodes, each reserving `cpus` (none by
        default: they hold memory and answer in milliseconds, and must not starve indexing).
        Detached actors outlive this process until `stop`; others end with it. Needs `ray.init`.

        Raises:
            IndexMissing: when there is no index at `root`.
        """
        import ray

        root = Path(root).resolve()
        if current_version(root) is None:
            raise IndexMissing(f"No index at {root}; build one with `cite index PATH --index {root}`.")
        running = _running_shards(root)
        count = running or len(assign_shards(read_manifest(root).segments, shards))
        remote = ray.remote(max_restarts=-1, max_task_retries=0)(Shard)
        lifetime = {"lifetime": "detached"} if detached else {}
        actors = [
            remote.options(
                name=_actor_name(root, n, count),
                namespace=NAMESPACE,
                get_if_exists=True,
                num_cpus=cpus,
                scheduling_strategy="SPREAD",
                **lifetime,
            ).remote(str(root), n, count)
            for n in range(count)
        ]
        ray.get([actor.pid.remote() for actor in actors], timeout=300)  # loaded, or fail here
        return cls(root, count, actors, owned=not running and not detached)

    def stop(self) -> None:
        import ray

        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self.actors = []

    def release(self) -> None:
        """Stops the actors this process started for itself (a `cite search --ray` run's), now
        rather than whenever its handles are garbage-collected; leaves ones it found running."""
        if self.owned:
            self.stop()

    def call(self, method: str, *args: Any, partial: bool = False) -> list[Any]:
        """`method(*args)` on every shard; None for a shard that failed when `partial`.

        Raises:
            ShardUnavailable: when a shard failed and not `partial` (or every shard failed).
        """
        import ray

        refs = [getattr(actor, method).remote(*args) for actor in self.actors]
        results, down = [], []
        for number, ref in enumerate(refs):
            try:
                results.append(ray.get(ref, timeout=QUERY_TIMEOUT_S))
            except (ray.exceptions.RayError, ShardUnavailable) as error:
                results.append(None)
                down.append((number, error))
        if down and (not partial or len(down) == len(refs)):
            number, error = down[0]
            raise ShardUnavailable(
                f"Shard {number + 1} of {len(refs)} of {self.root} did not answer ({type(error).__name__}); "
                "Ray restarts it: try again in a few seconds."
            )
        if down:
            warnings.warn(
                f"answered from {len(refs) - len(down)} of {len(refs)} shards; shard(s) "
                f"{', '.join(str(n + 1) for n, _ in down)} did not answer and are being restarted",
                ShardWarning,
                stacklevel=3,
            )
        return results


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
    return Candidates(scores, spans, len(query.split()), dict(zip(ids, rows, strict=True))), {
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
        # The one-box fusion itself: it reads only `dense.index` (passages, row_of) and the settings.
        one_box = HybridSearcher(SimpleNamespace(index=self.index), None, self.settings)  # type: ignore[arg-type]
        return one_box.fuse(found, k, settings)


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
