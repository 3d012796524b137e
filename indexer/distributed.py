"""`cite index --ray`: the same index as `build_index`, its embedding spread over a Ray cluster.

The driver loads and plans exactly as the local build does (`plan_index`); Ray Data carries
only the new and changed documents to a pool of actors, each of which loads the model once,
splits and embeds one batch and writes it as a segment of the usual format straight into the
index folder (shared storage on a cluster: no vector passes through the driver). The driver
then writes what it carries over from retired segments and the manifest (BM25 statistics
live in each segment), under the writer lock and atomically, as the local build does. A worker killed
mid-batch is restarted by Ray and its batch retried; if the run fails anyway, the previous
version stays live and the segments already written are swept by the next write.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from cite.core.cluster import init_ray
from cite.core.config import SplitSettings
from cite.core.embedder import Embedder
from cite.core.errors import CiteError, DocumentError
from cite.core.store import (
    SegmentRecord,
    StoredIndex,
    document_from_json,
    write_version,
    writer_lock,
)
from cite.core.types import Document
from cite.indexer.build import IndexReport, planned_report
from cite.indexer.plan import plan_against_index
from cite.indexer.splitter import split_document

LOCAL = "local"  # `--ray` without an address: start a Ray on this machine for the run


@dataclass(frozen=True)
class RaySettings:
    """How a Ray build spreads its work.

    Attributes:
        address: a running cluster ("auto", "ray://host:10001", "host:6379"), or None for a
            Ray started on this machine for the run (and stopped after it).
        workers: embedding actors; 0 is one per `cpus_per_worker` CPUs of the cluster.
        cpus_per_worker: CPUs each actor reserves; its ONNX runtime runs that many threads.
        gpus_per_worker: GPUs each actor reserves (the embedder then runs on CUDA).
        docs_per_segment: the most documents one batch, and so one segment, holds.
        retries: how often a dead actor is restarted and its batch retried before the run fails.
    """

    address: str | None = None
    workers: int = 0
    cpus_per_worker: int = 1
    gpus_per_worker: float = 0.0
    docs_per_segment: int = 20_000
    retries: int = 3

    def __post_init__(self) -> None:
        if self.workers < 0 or self.cpus_per_worker < 1 or self.docs_per_segment < 1 or self.retries < 0:
            raise ValueError(
                "RaySettings: workers must be >= 0, cpus_per_worker and docs_per_segment >= 1, retries >= 0; "
                f"got {self.workers}, {self.cpus_per_worker}, {self.docs_per_segment}, {self.retries}."
            )


@contextmanager
def ray_session(address: str | None) -> Iterator[None]:
    """Connected to Ray for the block: to the cluster at `address`, or to a Ray started here
    (no dashboard) when it is None. A connection made before is used as it is and left open."""
    import ray

    if ray.is_initialized():
        yield
        return
    init_ray(
        address,
        "start one with `ray start --head` or drop the address to run a local Ray",
        include_dashboard=False,
    )
    try:
        yield
    finally:
        ray.shutdown()


def ray_builder(address: str | None, settings: RaySettings | None = None) -> Callable[..., IndexReport]:
    """`build_index`'s signature, done on Ray at `address` (LOCAL or None: a Ray on this machine)."""
    settings = replace(settings or RaySettings(), address=None if address in (None, LOCAL) else address)

    def build(
        documents: Sequence[Document],
        root: Path,
        embedder: Embedder,
        split: SplitSettings,
        progress: Any = None,  # accepted for build_index's signature; batches finish as a whole
        *,
        scope: Collection[str] | None = None,
        remove: Collection[str] = (),
    ) -> IndexReport:
        return build_index_on_ray(documents, root, embedder, split, settings, scope=scope, remove=remove)

    return build


def build_index_on_ray(
    documents: Sequence[Document],
    root: Path,
    embedder: Embedder,
    split: SplitSettings,
    settings: RaySettings | None = None,
    *,
    scope: Collection[str] | None = None,
    remove: Collection[str] = (),
) -> IndexReport:
    """`build_index` with the new and changed documents embedded by Ray actors, a segment per batch.

    `embedder` must pickle (OnnxEmbedder pickles without its loaded session): each actor gets a
    copy and loads the model once. There is no progress callback: batches finish as a whole.

    Raises:
        DocumentError: when `documents` is empty (an empty index answers nothing).
        IndexBusy: when another writer holds the index.
        CiteError: when Ray cannot be reached or the embedding failed after its retries.
    """
    settings = settings or RaySettings()
    started = time.perf_counter()
    root = Path(root)
    with writer_lock(root):
        old, why_rebuild, plan = plan_against_index(root, documents, embedder, split, scope=scope, remove=remove)
        if old and plan.up_to_date:
            report = IndexReport(root, unchanged=list(plan.unchanged), passages=old.passage_count)
            return replace(report, seconds=time.perf_counter() - started)
        given = {d.doc: d for d in documents}
        fresh = [given[name] for name in plan.embed]
        with ray_session(settings.address):
            results = _embed_on_ray(fresh, root, embedder, split, settings)
        report = _commit(plan, old, given, results, root, embedder, split)
        return replace(report, rebuilt_because=why_rebuild, seconds=time.perf_counter() - started)


@dataclass(frozen=True)
class BatchResult:
    """What an actor reports of one batch: the segment it wrote (None when the batch held no
    text) and the passages of each of its documents."""

    segment: SegmentRecord | None
    passages: dict[str, int]
    texts_embedded: int


def embed_batch(documents: Sequence[Document], root: Path, embedder: Embedder, split: SplitSettings) -> BatchResult:
    """Splits, embeds and writes `documents` as one segment of the index at `root`, as the
    local build would write them (the one place that calls the local build's embedding step)."""
    from cite.indexer.embedding import embed_documents
    from cite.indexer.rows import write_rows

    documents = sorted(documents, key=lambda d: d.doc)
    rows, texts = embed_documents([(d, split_document(d, split)) for d in documents], embedder, None, split)
    counts = {d.doc: len(rows.get(d.doc, [])) for d in documents}
    if not any(counts.values()):
        return BatchResult(None, counts, texts)
    return BatchResult(write_rows(root, documents, rows, embedder.dim), counts, texts)


class SegmentWriter:
    """A Ray Data actor: the model loaded once, then `embed_batch` per batch of documents."""

    def __init__(self, root: str, embedder: Embedder, split: dict[str, Any]) -> None:
        import ray

        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
        with_threads = getattr(embedder, "with_threads", None)
        self.embedder = with_threads(max(1, int(cpus))) if with_threads and cpus else embedder
        self.root = Path(root)
        self.split = SplitSettings(**split)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        documents = [document_from_json(json.loads(text)) for text in batch["document"]]
        result = embed_batch(documents, self.root, self.embedder, self.split)
        record = json.dumps(asdict(result.segment)) if result.segment else ""
        return {
            "segment": np.array([record]),
            "passages": np.array([json.dumps(result.passages)]),
            "texts": np.array([result.texts_embedded]),
        }


def _free_workers(cpus_per_worker: int, patience_s: float = 30.0) -> int:
    """How many workers the cluster's free CPUs hold, waiting a little for some to free up:
    the actors of a run that just ended (or failed) give their CPUs back asynchronously."""
    import ray

    deadline = time.monotonic() + patience_s
    while True:
        free = int(ray.available_resources().get("CPU", 0)) // cpus_per_worker
        if free >= 1 or time.monotonic() >= deadline:
            return free
        time.sleep(0.5)


def _embed_on_ray(
    fresh: list[Document], root: Path, embedder: Embedder, split: SplitSettings, settings: RaySettings
) -> list[BatchResult]:
    """`fresh` in batches through an actor pool; the batches' results, in document order."""
    if not fresh:
        return []
    import ray
    import ray.data

    free = _free_workers(settings.cpus_per_worker)
    if free < 1:
        raise CiteError(
            f"The Ray cluster has no {settings.cpus_per_worker} free CPU(s) for an embedding worker "
            f"(free: {ray.available_resources().get('CPU', 0)}); add a node or stop what holds them."
        )
    workers = min(settings.workers or free, free)  # a pool waiting for CPUs nobody frees would never finish
    per_batch = max(1, min(settings.docs_per_segment, math.ceil(len(fresh) / workers)))
    items = [{"document": json.dumps(asdict(d), ensure_ascii=False)} for d in fresh]
    dataset = ray.data.from_items(items, override_num_blocks=math.ceil(len(items) / per_batch))
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # progress belongs to the CLI
    context.print_on_execution_start = False
    with warnings.catch_warnings():  # restart limits have no named parameter yet in Ray 2.60
        warnings.simplefilter("ignore", DeprecationWarning)
        embedded = dataset.map_batches(
            SegmentWriter,
            fn_constructor_args=(str(root.resolve()), embedder, asdict(split)),
            batch_size=per_batch,
            batch_format="numpy",
            # One batch in flight per actor: by default the first actor up queues several
            # batches, and a 2-worker build ran 73% slower than one worker, on one actor.
            compute=ray.data.ActorPoolStrategy(
                size=min(workers, math.ceil(len(fresh) / per_batch)), max_tasks_in_flight_per_actor=1
            ),
            num_cpus=settings.cpus_per_worker,
            num_gpus=settings.gpus_per_worker or None,
            max_restarts=settings.retries,
            max_task_retries=settings.retries,
        )
    try:
        rows = embedded.take_all()
    except Exception as error:  # Ray wraps a worker's failure in its own exception types
        raise CiteError(
            f"Embedding on Ray failed ({type(error).__name__}: {str(error).splitlines()[0][:300]}); "
            "the previous index is untouched; run `cite index --ray` again."
        ) from None
    results = [
        BatchResult(
            SegmentRecord.from_json(json.loads(row["segment"])) if row["segment"] else None,
            json.loads(row["passages"]),
            int(row["texts"]),
        )
        for row in rows
    ]
    return sorted(results, key=lambda r: min(r.passages))


def _commit(
    plan: Any,
    old: StoredIndex | None,
    given: dict[str, Document],
    results: list[BatchResult],
    root: Path,
    embedder: Embedder,
    split: SplitSettings,
) -> IndexReport:
    """Writes the carried-over segment and the manifest that makes the actors' segments live
    (the one place that calls the local build's row-moving and manifest steps). BM25
    statistics live in each segment, so nothing lexical is gathered here."""
    from cite.indexer.build import new_manifest
    from cite.indexer.rows import stored_rows, write_rows

    old_docs = old.manifest.documents if old else {}
    kept = [s for s in old.segments if s.record.name in plan.keep] if old else []
    leaving = [s for s in old.segments if s.record.name not in plan.keep] if old else []
    copy = set(plan.copy)
    rows = {doc: r for segment in leaving for doc, r in stored_rows(segment, copy).items()}
    moved = [s.document(s.doc_row[name]) for s in leaving for name in s.doc_names if name in copy]
    # Moved documents, and new ones without text (they still belong to a segment, so the index knows them).
    carried_docs = sorted(
        moved + [given[name] for r in results if r.segment is None for name in r.passages], key=lambda d: d.doc
    )
    records = [s.record for s in kept]
    if carried_docs:
        records.append(write_rows(root, carried_docs, rows, embedder.dim))
    records += [result.segment for result in results if result.segment is not None]
    passage_count = sum(record.passages for record in records)
    if not passage_count:
        raise DocumentError("The documents hold no text to index.")
    counts = {doc: len(r) for doc, r in rows.items()}
    for result in results:
        counts.update(result.passages)
    write_version(root, new_manifest(plan, given, records, counts, embedder, split, old_docs))
    embedded = sum(sum(r.passages.values()) for r in results)
    texts = sum(r.texts_embedded for r in results)
    return planned_report(plan, root, passage_count, embedded, texts, sum(map(len, rows.values())))
