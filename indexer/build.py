"""Documents -> passages -> vectors + BM25 -> a new index version on disk, incrementally."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from core.config import SplitSettings
from core.embedder import Embedder
from core.errors import CiteError, DocumentError
from core.lexical import TOKENIZER_NAME, tokenize
from core.store import (
    FORMAT_VERSION,
    DocumentRecord,
    Manifest,
    StoredIndex,
    current_version,
    read_index,
    write_index,
    writer_lock,
)
from core.text import sentences_in_span
from core.types import Document, Passage
from indexer.splitter import split_document

# Called with (texts embedded so far, texts to embed in all): passages, then their sentences.
Progress = Callable[[int, int], None]
EMBED_BATCH = 128
HNSW_FROM = 100_000  # passages; exact search over 100k vectors already takes ~20 ms on 2 cores


@dataclass(frozen=True)
class Embedded:
    """A passage with its vector, its sentences' original spans and their vectors."""

    passage: Passage
    vector: np.ndarray
    sentence_spans: np.ndarray  # (sentences, 2) original start, end
    sentence_vectors: np.ndarray  # (sentences, dim)


@dataclass(frozen=True)
class IndexReport:
    """What one `cite index` run changed."""

    path: Path
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    passages: int = 0
    embedded: int = 0
    seconds: float = 0.0
    rebuilt_because: str = ""  # why nothing of the old index could be reused

    @property
    def wrote(self) -> bool:
        return bool(self.added or self.changed or self.removed or self.rebuilt_because)


def indexing_text(title: str, text: str) -> str:
    """What the embedder and BM25 see for a passage: its document title leads, when there is one."""
    return f"{title}. {text}" if title else text


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
        old, why_rebuild = _reusable_index(root, embedder, split)
        old_docs = old.manifest.documents if old else {}
        old_passages = _passages_by_doc(old) if old else {}
        given = {d.doc for d in documents}
        carried = [
            d
            for name, d in (old.documents.items() if old else ())
            if name not in given and name not in remove and scope is not None and old_docs[name].source not in scope
        ]
        documents = sorted([d for d in documents if d.doc not in remove] + carried, key=lambda d: d.doc)
        if not documents:
            raise DocumentError(
                "No documents to index: give files or folders with .txt, .md, .html or .pdf, or a .jsonl corpus."
            )
        names = {d.doc for d in documents}

        report_lists: dict[str, list[str]] = {"added": [], "changed": [], "unchanged": []}
        rows: dict[str, list[Embedded]] = {}
        fresh: list[tuple[Document, list[Passage]]] = []
        for document in documents:
            record = old_docs.get(document.doc)
            if record and record.sha256 == document.sha256 and document.doc in old_passages:
                rows[document.doc] = old_passages[document.doc]
                report_lists["unchanged"].append(document.doc)
            else:
                fresh.append((document, split_document(document, split)))
                report_lists["changed" if record else "added"].append(document.doc)
        removed = sorted(set(old_docs) - names)
        kept = set(rows)

        if old and not fresh and not removed:
            return IndexReport(
                root,
                unchanged=report_lists["unchanged"],
                passages=sum(map(len, rows.values())),
                seconds=time.perf_counter() - started,
            )

        rows.update(_embed_documents(fresh, embedder, progress))
        ordered = [row for document in documents for row in rows[document.doc]]
        if not ordered:
            raise DocumentError("The documents hold no text to index.")
        passages = [row.passage for row in ordered]
        vectors = np.vstack([row.vector for row in ordered]).astype(np.float32)
        manifest = _manifest(documents, passages, embedder, split, old_docs, kept)
        titles = {d.doc: d.title for d in documents}
        write_index(
            root,
            manifest,
            documents,
            passages,
            vectors,
            _sentence_arrays(ordered, embedder.dim),
            _dense_index(vectors),
            _bm25_index([indexing_text(titles[p.doc], p.text) for p in passages]),
        )
        return IndexReport(
            root,
            added=report_lists["added"],
            changed=report_lists["changed"],
            removed=removed,
            unchanged=report_lists["unchanged"],
            passages=len(passages),
            embedded=sum(len(p) for _, p in fresh),
            seconds=time.perf_counter() - started,
            rebuilt_because=why_rebuild,
        )


def _reusable_index(root: Path, embedder: Embedder, split: SplitSettings) -> tuple[StoredIndex | None, str]:
    """The old index if its vectors can be reused, else None and the reason."""
    if current_version(root) is None:
        return None, ""
    try:
        old = read_index(root)
    except CiteError as error:
        return None, f"the old index was unusable ({error})"
    manifest = old.manifest
    if manifest.model_fingerprint != embedder.fingerprint:
        return None, f"the embedding model changed (was {manifest.model})"
    if manifest.split != asdict(split) or manifest.tokenizer != TOKENIZER_NAME:
        return None, "the splitting or tokenizer settings changed"
    return old, ""


def _passages_by_doc(old: StoredIndex) -> dict[str, list[Embedded]]:
    grouped: dict[str, list[Embedded]] = {}
    offsets = old.sentence_offsets
    for row, passage in enumerate(old.passages):
        first, last = int(offsets[row]), int(offsets[row + 1])
        grouped.setdefault(passage.doc, []).append(
            Embedded(
                passage,
                np.array(old.vectors[row]),
                np.array(old.sentence_spans[first:last]),
                np.array(old.sentence_vectors[first:last]),
            )
        )
    return grouped


def _embed_documents(
    fresh: list[tuple[Document, list[Passage]]], embedder: Embedder, progress: Progress | None
) -> dict[str, list[Embedded]]:
    """Embeds new passages and their sentences; a sentence shared by overlapping passages
    is embedded once."""
    passage_texts: list[str] = []
    sentence_texts: dict[tuple[str, int, int], str] = {}
    layout = []
    for document, passages in fresh:
        for passage in passages:
            passage_texts.append(indexing_text(document.title, passage.text))
            spans = sentences_in_span(document.text, passage.start, passage.end)
            for start, end, text in spans:
                sentence_texts.setdefault((document.doc, start, end), text)
            layout.append((document.doc, passage, [(start, end) for start, end, _ in spans]))
    keys = list(sentence_texts)
    total = len(passage_texts) + len(keys)
    passage_vectors = _embed(passage_texts, embedder, progress, 0, total)
    sentence_vectors = _embed([sentence_texts[k] for k in keys], embedder, progress, len(passage_texts), total)
    sentence_row = {key: i for i, key in enumerate(keys)}
    embedded: dict[str, list[Embedded]] = {document.doc: [] for document, _ in fresh}
    for i, (doc, passage, spans) in enumerate(layout):
        rows = [sentence_row[(doc, start, end)] for start, end in spans]
        embedded[doc].append(
            Embedded(
                passage,
                passage_vectors[i],
                np.array(spans, dtype=np.int64).reshape(-1, 2),
                sentence_vectors[rows].reshape(-1, embedder.dim),
            )
        )
    return embedded


def _embed(texts: list[str], embedder: Embedder, progress: Progress | None, done: int, total: int) -> np.ndarray:
    chunks = []
    for first in range(0, len(texts), EMBED_BATCH):
        chunks.append(embedder.encode(texts[first : first + EMBED_BATCH]))
        if progress:
            progress(done + min(first + EMBED_BATCH, len(texts)), total)
    return np.vstack(chunks) if chunks else np.zeros((0, embedder.dim), dtype=np.float32)


def _sentence_arrays(ordered: list[Embedded], dim: int) -> dict[str, np.ndarray]:
    """Sentences of all passages, concatenated in passage order, with per-passage offsets."""
    counts = [len(row.sentence_spans) for row in ordered]
    return {
        "sentence_offsets": np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        "sentence_spans": np.vstack([row.sentence_spans for row in ordered]).astype(np.int64).reshape(-1, 2),
        "sentence_vectors": np.vstack([row.sentence_vectors for row in ordered]).astype(np.float32).reshape(-1, dim),
    }


def _manifest(
    documents: Sequence[Document],
    passages: list[Passage],
    embedder: Embedder,
    split: SplitSettings,
    old_docs: dict[str, DocumentRecord],
    kept: set[str],
) -> Manifest:
    now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    counts: dict[str, int] = {}
    for passage in passages:
        counts[passage.doc] = counts.get(passage.doc, 0) + 1
    records = {
        d.doc: DocumentRecord(
            doc=d.doc,
            sha256=d.sha256,
            title=d.title,
            chars=len(d.text),
            passages=counts.get(d.doc, 0),
            indexed_at=old_docs[d.doc].indexed_at if d.doc in kept else now,
            source=d.source,
        )
        for d in documents
    }
    return Manifest(
        format_version=FORMAT_VERSION,
        model=embedder.name,
        model_fingerprint=embedder.fingerprint,
        tokenizer=TOKENIZER_NAME,
        split=asdict(split),
        dense_index=dense_index_kind(len(passages)),
        documents=records,
        files={},
        created_at=now,
    )


def dense_index_kind(count: int) -> str:
    """Exact search while it is fast enough; a graph index beyond (see bench/scale.py)."""
    return "flat-ip" if count <= HNSW_FROM else "hnsw32-ip"


def _dense_index(vectors: np.ndarray):
    """Exact inner product over unit vectors (= cosine), or HNSW for large collections.

    The hybrid searcher rescores every candidate with exact cosines from the stored
    vectors, so HNSW's approximation only affects which passages become candidates."""
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if dense_index_kind(len(vectors)) == "flat-ip":
        index = faiss.IndexFlatIP(vectors.shape[1])
    else:
        index = faiss.IndexHNSWFlat(vectors.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
    index.add(vectors)
    return index


def _bm25_index(texts: list[str]):
    import bm25s

    bm25 = bm25s.BM25(k1=1.2, b=0.75)
    bm25.index([tokenize(text) for text in texts], show_progress=False)
    return bm25
