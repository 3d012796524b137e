"""The shard actors of a Ray-served index: which segments each one holds, what it answers for a
query, and the handles a process uses to start, find, call and stop them (retriever/shards.py
puts an `Engine` over them).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from cite.core.cluster import init_ray
from cite.core.errors import CiteError, IndexMissing
from cite.core.lexical import LexicalIndex, QueryWeights
from cite.core.store import SegmentRecord, StoredIndex, current_version, read_manifest, segment_folder
from cite.core.types import Document, Passage
from cite.retriever.search import best_sentences

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
