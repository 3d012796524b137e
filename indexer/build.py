"""Documents -> passages -> vectors + BM25 -> a new index version on disk, incrementally:
carries out an `IndexPlan` (plan.py), embedding new rows (embedding.py) and moving stored ones
(rows.py), and reports what changed."""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from cite.core.config import SplitSettings
from cite.core.embedder import Embedder
from cite.core.errors import DocumentError
from cite.core.lexical import TOKENIZER_NAME
from cite.core.store import (
    FORMAT_VERSION,
    DocumentRecord,
    Manifest,
    SegmentRecord,
    StoredIndex,
    write_version,
    writer_lock,
)
from cite.core.types import Document
from cite.indexer.embedding import Progress, embed_documents
from cite.indexer.embedding import indexing_text as indexing_text  # imported from here by bench/scale.py
from cite.indexer.plan import IndexPlan, plan_against_index
from cite.indexer.rows import stored_rows, write_rows
from cite.indexer.splitter import split_document


@dataclass(frozen=True)
class IndexReport:
    """What one `cite index` run changed."""

    path: Path
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    passages: int = 0
    embedded: int = 0  # passages
    texts_embedded: int = 0  # model inputs: passages (or titles), and sentences
    carried: int = 0  # passages copied from retired segments, without embedding
    seconds: float = 0.0
    rebuilt_because: str = ""  # why nothing of the old index could be reused

    @property
    def wrote(self) -> bool:
        return bool(self.added or self.changed or self.removed or self.rebuilt_because)


def build_index(
    documents: Sequence[Document],
    root: Path,
    embedder: Embedder,
    split: SplitSettings,
    progress: Progress | None = None,
    *,
    scope: Collection[str] | None = None,
    remove: Collection[str] = (),
) -> IndexReport:
    """Brings `documents` into the index at `root`, embedding only new or changed ones.

    Args:
        scope: the sources this run speaks for. Indexed documents from these sources that are
            not in `documents` are removed; documents from other sources stay as they are.
            None speaks for every source: the index then holds exactly `documents`.
        remove: names of documents to drop, whatever their source.

    Raises:
        DocumentError: when `documents` is empty (an empty index answers nothing).
        IndexBusy: when another writer holds the index.
    """
    started = time.perf_counter()
    with writer_lock(root):
        old, why_rebuild, plan = plan_against_index(root, documents, embedder, split, scope=scope, remove=remove)
        if old and plan.up_to_date:
            report = IndexReport(root, unchanged=list(plan.unchanged), passages=old.passage_count)
        else:
            report = replace(
                _carry_out(plan, documents, old, root, embedder, split, progress), rebuilt_because=why_rebuild
            )
        return replace(report, seconds=time.perf_counter() - started)


def _carry_out(
    plan: IndexPlan,
    documents: Sequence[Document],
    old: StoredIndex | None,
    root: Path,
    embedder: Embedder,
    split: SplitSettings,
    progress: Progress | None,
) -> IndexReport:
    """Does what `plan` says: copies the rows of the documents it moves out of the segments it
    retires, embeds the new and changed ones, and writes one new segment and version."""
    old_docs = old.manifest.documents if old else {}
    given = {d.doc: d for d in documents}
    kept = [s for s in old.segments if s.record.name in plan.keep] if old else []
    leaving = [s for s in old.segments if s.record.name not in plan.keep] if old else []
    copy = set(plan.copy)
    rows = {doc: r for segment in leaving for doc, r in stored_rows(segment, copy).items()}
    carried_passages = sum(map(len, rows.values()))
    moved = {name: s.document(s.doc_row[name]) for s in leaving for name in s.doc_names if name in copy}
    fresh = [given[name] for name in plan.embed]
    fresh_rows, texts_embedded = embed_documents(
        [(d, split_document(d, split)) for d in fresh], embedder, progress, split
    )
    rows.update(fresh_rows)
    # Moved documents as their old segment stored them, next to the new and changed ones.
    segment_docs = sorted([*moved.values(), *fresh], key=lambda d: d.doc)
    records = [s.record for s in kept]
    passage_count = sum(r.passages for r in records) + sum(len(rows.get(d.doc, [])) for d in segment_docs)
    if not passage_count:
        raise DocumentError("The documents hold no text to index.")
    if segment_docs:
        records.append(write_rows(root, segment_docs, rows, embedder.dim))
    counts = {d: len(r) for d, r in rows.items()}
    write_version(root, new_manifest(plan, given, records, counts, embedder, split, old_docs))
    embedded = sum(len(rows[name]) for name in plan.embed)
    return planned_report(plan, root, passage_count, embedded, texts_embedded, carried_passages)


def planned_report(
    plan: IndexPlan, root: Path, passages: int, embedded: int, texts_embedded: int, carried: int
) -> IndexReport:
    """What a run that carried out `plan` changed, for the local and the Ray build alike."""
    return IndexReport(
        root,
        added=list(plan.added),
        changed=list(plan.changed),
        removed=list(plan.removed),
        unchanged=list(plan.unchanged),
        passages=passages,
        embedded=embedded,
        texts_embedded=texts_embedded,
        carried=carried,
    )


def new_manifest(
    plan: IndexPlan,
    given: Mapping[str, Document],
    segments: list[SegmentRecord],
    passage_counts: dict[str, int],
    embedder: Embedder,
    split: SplitSettings,
    old_docs: Mapping[str, DocumentRecord],
) -> Manifest:
    """The manifest of the new version: unchanged documents keep their records, the others
    get new ones (only what changed is read: the old documents' texts are not)."""
    now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    records = {}
    unchanged = set(plan.unchanged)  # a tuple's `in` made this quadratic: 77 s at 62k documents
    for name in plan.documents:
        if name in unchanged:
            old = old_docs[name]
            records[name] = old
            if name in given:  # same content; the source may be named anew
                document = given[name]
                records[name] = replace(old, source=document.source, title=document.title)
            if name in passage_counts and passage_counts[name] != old.passages:
                records[name] = replace(records[name], passages=passage_counts[name])
            continue
        document = given[name]
        records[name] = DocumentRecord(
            doc=name,
            sha256=document.sha256,
            title=document.title,
            chars=len(document.text),
            passages=passage_counts.get(name, 0),
            indexed_at=now,
            source=document.source,
        )
    return Manifest(
        format_version=FORMAT_VERSION,
        model=embedder.name,
        model_fingerprint=embedder.fingerprint,
        tokenizer=TOKENIZER_NAME,
        split=asdict(split),
        documents=records,
        segments=segments,
        files={},
        created_at=now,
    )
