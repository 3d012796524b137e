"""Documents -> passages -> vectors + BM25 -> a new index version on disk, incrementally."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from core.acronyms import defined_acronyms, spell_out
from core.config import SplitSettings
from core.embedder import Embedder
from core.errors import CiteError, DocumentError
from core.lexical import TOKENIZER_NAME, tokenize
from core.store import (
    FORMAT_VERSION,
    DocumentRecord,
    Manifest,
    Segment,
    SegmentRecord,
    StoredIndex,
    current_version,
    read_index,
    write_segment,
    write_version,
    writer_lock,
)
from core.text import sentences_in_span
from core.types import Document, Passage
from indexer.splitter import split_document

# Called with (texts embedded so far, texts to embed in all): passages, titles, sentences.
Progress = Callable[[int, int], None]
EMBED_BATCH = 128
HNSW_FROM = 100_000  # passages; exact search over 100k vectors already takes ~20 ms on 2 cores
MAX_SEGMENTS = 8  # beyond this, the smallest segments merge into the one being written


@dataclass(frozen=True)
class Row:
    """A passage as the index stores it: vector, BM25 tokens, sentences' spans and vectors."""

    passage: Passage
    vector: np.ndarray
    tokens: list[str]
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
    embedded: int = 0  # passages
    texts_embedded: int = 0  # model inputs: passages (or titles), and sentences
    carried: int = 0  # passages copied from retired segments, without embedding
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
        stored = old.documents if old else {}
        unchanged = [d.doc for d in documents if d.doc in stored and old_docs[d.doc].sha256 == d.sha256]
        keep = set(unchanged)
        fresh = [d for d in documents if d.doc not in keep]
        removed = sorted(set(old_docs) - {d.doc for d in documents})
        if old and not fresh and not removed:
            return IndexReport(
                root, unchanged=unchanged, passages=len(old.passages), seconds=time.perf_counter() - started
            )

        kept, retired = _plan_segments(old.segments if old else [], {d.doc for d in fresh} | set(removed))
        rows = {doc: r for segment in retired for doc, r in _rows_of(segment, keep).items()}
        carried_passages = sum(map(len, rows.values()))
        pairs = [(d, split_document(d, split)) for d in fresh]
        fresh_rows, texts_embedded = _embed_documents(pairs, embedder, progress, split)
        rows.update(fresh_rows)
        segment_docs = sorted([d for s in retired for d in s.documents if d.doc in keep] + fresh, key=lambda d: d.doc)
        records = [s.record for s in kept]
        passage_count = sum(r.passages for r in records) + sum(len(rows.get(d.doc, [])) for d in segment_docs)
        if not passage_count:
            raise DocumentError("The documents hold no text to index.")
        if segment_docs:
            records.append(_write_segment(root, segment_docs, rows, embedder.dim))
        counts = {**{name: old_docs[name].passages for name in unchanged}, **{d: len(r) for d, r in rows.items()}}
        manifest = _manifest(documents, records, counts, embedder, split, old_docs, keep)
        new_tokens = [row.tokens for d in segment_docs for row in rows.get(d.doc, [])]
        write_version(root, manifest, _bm25_index([t for s in kept for t in s.tokens()] + new_tokens))
        return IndexReport(
            root,
            added=[d.doc for d in fresh if d.doc not in old_docs],
            changed=[d.doc for d in fresh if d.doc in old_docs],
            removed=removed,
            unchanged=unchanged,
            passages=passage_count,
            embedded=sum(len(rows[d.doc]) for d in fresh),
            texts_embedded=texts_embedded,
            carried=carried_passages,
            seconds=time.perf_counter() - started,
            rebuilt_because=why_rebuild,
        )


def _plan_segments(segments: list[Segment], dirty: set[str]) -> tuple[list[Segment], list[Segment]]:
    """(segments kept as they are, segments retired): a segment holding a changed or removed
    document is retired (its other documents move to the new segment, unembedded), and so
    are the smallest ones while there would be more than MAX_SEGMENTS."""
    kept = [s for s in segments if not any(d.doc in dirty for d in s.documents)]
    while len(kept) >= MAX_SEGMENTS:
        kept.remove(min(kept, key=lambda s: len(s.passages)))
    return kept, [s for s in segments if s not in kept]


def _rows_of(segment: Segment, docs: set[str]) -> dict[str, list[Row]]:
    """The stored rows of `docs` in `segment`, as they are (no embedding)."""
    grouped: dict[str, list[Row]] = {}
    tokens = segment.tokens()
    offsets = segment.sentence_offsets
    for row, passage in enumerate(segment.passages):
        if passage.doc not in docs:
            continue
        first, last = int(offsets[row]), int(offsets[row + 1])
        grouped.setdefault(passage.doc, []).append(
            Row(
                passage,
                np.array(segment.vectors[row]),
                tokens[row],
                np.array(segment.sentence_spans[first:last]),
                np.array(segment.sentence_vectors[first:last]),
            )
        )
    return grouped


def _write_segment(root: Path, documents: list[Document], rows: dict[str, list[Row]], dim: int) -> SegmentRecord:
    ordered = [row for document in documents for row in rows.get(document.doc, [])]
    vectors = np.vstack([row.vector for row in ordered]) if ordered else np.zeros((0, dim))
    vectors = vectors.astype(np.float32)
    kind = dense_index_kind(len(ordered))
    return write_segment(
        root,
        documents,
        [row.passage for row in ordered],
        [row.tokens for row in ordered],
        vectors,
        _sentence_arrays(ordered, dim),
        _dense_index(vectors, dim),
        kind,
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


def _embed_documents(
    fresh: list[tuple[Document, list[Passage]]],
    embedder: Embedder,
    progress: Progress | None,
    split: SplitSettings,
) -> tuple[dict[str, list[Row]], int]:
    """Embeds and tokenizes new passages, and embeds their sentences; a sentence shared by
    overlapping passages is embedded once. With "sentence-mean" passage vectors, a passage's
    vector is the mean of its sentences' and its title's vectors instead of a model run of
    its own. Returns the rows by document and how many texts the model embedded."""
    sentence_mean = split.passage_vectors == "sentence-mean"
    passage_texts: list[str] = []
    passage_tokens: list[list[str]] = []
    sentence_texts: dict[tuple[str, int, int], str] = {}
    layout = []
    for document, passages in fresh:
        acronyms = defined_acronyms(document.title + "\n" + document.text) if split.spell_out_acronyms else {}
        for passage in passages:
            passage_texts.append(indexing_text(document.title, passage.text))
            passage_tokens.append(tokenize(spell_out(passage_texts[-1], acronyms)))
            spans = sentences_in_span(document.text, passage.start, passage.end)
            for start, end, text in spans:
                sentence_texts.setdefault((document.doc, start, end), text)
            layout.append((document, passage, [(start, end) for start, end, _ in spans]))
    keys = list(sentence_texts)
    titles = sorted({d.title for d, _ in fresh if d.title}) if sentence_mean else []
    # Passages and short texts are embedded in separate runs: int8 activations are quantised
    # per batch, so a text's vector shifts slightly with its batch mates, and keeping
    # passages with passages keeps an index reproducible whatever else it holds.
    first = [] if sentence_mean else passage_texts
    second = titles + [sentence_texts[k] for k in keys]
    total = len(first) + len(second)
    passage_vectors = _embed(first, embedder, progress, 0, total)
    short_vectors = _embed(second, embedder, progress, len(first), total)
    title_vectors = dict(zip(titles, short_vectors, strict=False))
    sentence_vectors = short_vectors[len(titles) :]
    sentence_row = {key: i for i, key in enumerate(keys)}
    embedded: dict[str, list[Row]] = {document.doc: [] for document, _ in fresh}
    for i, (document, passage, spans) in enumerate(layout):
        own = sentence_vectors[[sentence_row[(document.doc, start, end)] for start, end in spans]].reshape(
            -1, embedder.dim
        )
        if sentence_mean:
            parts = np.vstack([own, [title_vectors[document.title]]]) if document.title else own
            vector = _unit_mean(parts, embedder.dim)
        else:
            vector = passage_vectors[i]
        embedded[document.doc].append(
            Row(passage, vector, passage_tokens[i], np.array(spans, dtype=np.int64).reshape(-1, 2), own)
        )
    return embedded, total


def _unit_mean(vectors: np.ndarray, dim: int) -> np.ndarray:
    if not len(vectors):
        return np.zeros(dim, dtype=np.float32)
    mean = vectors.mean(axis=0)
    return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)


def _embed(texts: list[str], embedder: Embedder, progress: Progress | None, done: int, total: int) -> np.ndarray:
    chunks = []
    for first in range(0, len(texts), EMBED_BATCH):
        chunks.append(embedder.encode(texts[first : first + EMBED_BATCH]))
        if progress:
            progress(done + min(first + EMBED_BATCH, len(texts)), total)
    return np.vstack(chunks) if chunks else np.zeros((0, embedder.dim), dtype=np.float32)


def _sentence_arrays(ordered: list[Row], dim: int) -> dict[str, np.ndarray]:
    """Sentences of all passages, concatenated in passage order, with per-passage offsets."""
    counts = [len(row.sentence_spans) for row in ordered]
    return {
        "sentence_offsets": np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        "sentence_spans": np.vstack([row.sentence_spans for row in ordered]).astype(np.int64).reshape(-1, 2),
        "sentence_vectors": np.vstack([row.sentence_vectors for row in ordered]).astype(np.float32).reshape(-1, dim),
    }


def _manifest(
    documents: Sequence[Document],
    segments: list[SegmentRecord],
    passage_counts: dict[str, int],
    embedder: Embedder,
    split: SplitSettings,
    old_docs: dict[str, DocumentRecord],
    unchanged: set[str],
) -> Manifest:
    now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    records = {
        d.doc: DocumentRecord(
            doc=d.doc,
            sha256=d.sha256,
            title=d.title,
            chars=len(d.text),
            passages=passage_counts.get(d.doc, 0),
            indexed_at=old_docs[d.doc].indexed_at if d.doc in unchanged else now,
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
        documents=records,
        segments=segments,
        files={},
        created_at=now,
    )


def dense_index_kind(count: int) -> str:
    """Exact search while it is fast enough; a graph index beyond (see bench/scale.py)."""
    return "flat-ip" if count <= HNSW_FROM else "hnsw32-ip"


def _dense_index(vectors: np.ndarray, dim: int):
    """Exact inner product over unit vectors (= cosine), or HNSW for large collections.

    The hybrid searcher rescores every candidate with exact cosines from the stored
    vectors, so HNSW's approximation only affects which passages become candidates."""
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, dim)
    if dense_index_kind(len(vectors)) == "flat-ip":
        index = faiss.IndexFlatIP(dim)
    else:
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
    index.add(vectors)
    return index


def _bm25_index(tokens: list[list[str]]):
    """BM25 over every passage of every segment: its statistics (IDF, mean length) are
    global, so scores do not depend on how passages happen to be split into segments."""
    import bm25s

    bm25 = bm25s.BM25(k1=1.2, b=0.75)
    bm25.index(tokens, show_progress=False)
    return bm25
