"""Documents -> passages -> vectors + BM25 -> a new index version on disk, incrementally."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from cite.core.acronyms import defined_acronyms, spell_out
from cite.core.config import SplitSettings
from cite.core.embedder import Embedder
from cite.core.errors import CiteError, DocumentError, IndexIncompatible
from cite.core.layout import SECTION_SEPARATOR
from cite.core.lexical import TOKENIZER_NAME, tokenize
from cite.core.store import (
    FORMAT_VERSION,
    DocumentRecord,
    Manifest,
    Segment,
    SegmentRecord,
    SentenceArrays,
    StoredIndex,
    current_version,
    incompatibility,
    read_index,
    write_segment,
    write_version,
    writer_lock,
)
from cite.core.text import sentences_in_span
from cite.core.types import Document, Passage
from cite.indexer.splitter import split_document

# Called with (texts embedded so far, texts to embed in all): passages, titles, sentences.
Progress = Callable[[int, int], None]
EMBED_BATCH = 128
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


def indexing_text(title: str, text: str, section: str = "") -> str:
    """What the embedder and BM25 see for a passage: its document title and section path
    lead, when there are any ("Manual > 2 Objects > 2.1.8 Lazy arguments. Arguments are ...")."""
    context = SECTION_SEPARATOR.join(part for part in (title, section) if part)
    return f"{context}. {text}" if context else text


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


@dataclass(frozen=True)
class SegmentContents:
    """What planning needs to know of a stored segment."""

    name: str
    documents: frozenset[str]
    passages: int

    @classmethod
    def of(cls, segment: Segment) -> SegmentContents:
        return cls(segment.record.name, frozenset(segment.doc_names), segment.record.passages)


@dataclass(frozen=True)
class IndexPlan:
    """What one index run does, decided before anything is embedded or written. Documents are
    named in name order, segments in the order the old index holds them."""

    documents: tuple[str, ...]  # every document of the new version
    added: tuple[str, ...]  # not in the old index: split and embedded
    changed: tuple[str, ...]  # content changed: split and embedded again
    unchanged: tuple[str, ...]  # same content: their stored rows are reused, never embedded again
    removed: tuple[str, ...]  # in the old index, not in the new one
    keep: tuple[str, ...]  # old segments that stay live as they are
    retire: tuple[str, ...]  # old segments holding a changed or removed document
    merge: tuple[str, ...]  # other old segments folded into the new one, the smallest first
    copy: tuple[str, ...]  # unchanged documents of retired and merged segments: rows moved, not embedded

    @property
    def embed(self) -> tuple[str, ...]:
        """The documents to split and embed: the added and the changed ones."""
        return tuple(sorted(self.added + self.changed))

    @property
    def up_to_date(self) -> bool:
        """Whether the old index already holds exactly these documents (nothing to write)."""
        return not (self.added or self.changed or self.removed)


def plan_index(
    documents: Sequence[Document],
    old_documents: Mapping[str, DocumentRecord],
    old_segments: Sequence[SegmentContents],
    *,
    scope: Collection[str] | None = None,
    remove: Collection[str] = (),
) -> IndexPlan:
    """What indexing `documents` into an index of `old_documents` in `old_segments` does, with
    `scope` and `remove` as in `build_index`; reads and writes nothing.

    A segment holding a changed or removed document is retired (its other documents move
    to the new segment, unembedded), and so are the smallest others while there would be
    more than MAX_SEGMENTS.

    Raises:
        DocumentError: when the new index would hold no document, or two documents share a name.
    """
    given = {d.doc: d for d in documents if d.doc not in remove}
    if len(given) < sum(d.doc not in remove for d in documents):
        twice = sorted({d.doc for d in documents if sum(e.doc == d.doc for e in documents) > 1})
        raise DocumentError(f"Two documents are both named {twice[0]!r}; index them under different names.")
    # Documents of sources this run does not speak for stay as they are.
    carried = [
        name
        for name, record in old_documents.items()
        if name not in given and name not in remove and scope is not None and record.source not in scope
    ]
    names = sorted([*given, *carried])
    if not names:
        raise DocumentError(
            "No documents to index: give files or folders with .txt, .md, .html or .pdf, or a .jsonl corpus."
        )
    unchanged = {
        name
        for name in names
        if name in old_documents and (name not in given or old_documents[name].sha256 == given[name].sha256)
    }
    embed = [name for name in names if name not in unchanged]
    removed = sorted(set(old_documents) - set(names))
    dirty = set(embed) | set(removed)
    kept = [s for s in old_segments if not s.documents & dirty]
    while dirty and len(kept) >= MAX_SEGMENTS:
        kept.remove(min(kept, key=lambda s: s.passages))
    leaving = [s for s in old_segments if s not in kept]
    return IndexPlan(
        documents=tuple(names),
        added=tuple(name for name in embed if name not in old_documents),
        changed=tuple(name for name in embed if name in old_documents),
        unchanged=tuple(sorted(unchanged)),
        removed=tuple(removed),
        keep=tuple(s.name for s in kept),
        retire=tuple(s.name for s in leaving if s.documents & dirty),
        merge=tuple(s.name for s in leaving if not s.documents & dirty),
        copy=tuple(sorted(name for s in leaving for name in s.documents if name in unchanged)),
    )


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
    rows = {doc: r for segment in leaving for doc, r in _rows_of(segment, copy).items()}
    carried_passages = sum(map(len, rows.values()))
    moved = {name: s.document(s.doc_row[name]) for s in leaving for name in s.doc_names if name in copy}
    fresh = [given[name] for name in plan.embed]
    fresh_rows, texts_embedded = _embed_documents(
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
        records.append(_write_segment(root, segment_docs, rows, embedder.dim))
    counts = {d: len(r) for d, r in rows.items()}
    write_version(root, _manifest(plan, given, records, counts, embedder, split, old_docs))
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


def _rows_of(segment: Segment, docs: set[str]) -> dict[str, list[Row]]:
    """The stored rows of `docs` in `segment`, as they are (no embedding)."""
    wanted = [segment.doc_row[name] for name in segment.doc_names if name in docs]
    if not wanted:
        return {}
    local = np.flatnonzero(np.isin(segment.passage_table["doc"], wanted))
    vectors = segment.vectors(local)
    tokens = segment.tokens(local)
    counts, spans, sentence_vectors = segment.sentences(local)
    firsts = np.cumsum(counts) - counts
    grouped: dict[str, list[Row]] = {}
    for i, row in enumerate(local):
        passage = segment.passage(int(row))
        first, count = int(firsts[i]), int(counts[i])
        grouped.setdefault(passage.doc, []).append(
            Row(passage, vectors[i], tokens[i], spans[first : first + count], sentence_vectors[first : first + count])
        )
    return grouped


def _write_segment(root: Path, documents: list[Document], rows: dict[str, list[Row]], dim: int) -> SegmentRecord:
    ordered = [row for document in documents for row in rows.get(document.doc, [])]
    vectors = np.vstack([row.vector for row in ordered]).astype(np.float32) if ordered else np.zeros((0, dim))
    return write_segment(
        root,
        documents,
        [row.passage for row in ordered],
        [row.tokens for row in ordered],
        vectors,
        sentence_arrays(ordered, dim),
    )


def plan_against_index(
    root: Path,
    documents: Sequence[Document],
    embedder: Embedder,
    split: SplitSettings,
    *,
    scope: Collection[str] | None,
    remove: Collection[str],
) -> tuple[StoredIndex | None, str, IndexPlan]:
    """The index at `root` if its vectors can be reused (else None and the reason), and the
    plan that brings `documents` into it. For writers, under the writer lock."""
    old, why_rebuild = _reusable_index(root, embedder, split)
    plan = plan_index(
        documents,
        old.manifest.documents if old else {},
        [SegmentContents.of(segment) for segment in old.segments] if old else [],
        scope=scope,
        remove=remove,
    )
    return old, why_rebuild, plan


def _reusable_index(root: Path, embedder: Embedder, split: SplitSettings) -> tuple[StoredIndex | None, str]:
    """The old index if its vectors can be reused, else None and the reason."""
    if current_version(root) is None:
        return None, ""
    try:
        old = read_index(root)
    except IndexIncompatible as error:
        return None, f"the index format changed ({error})"
    except CiteError as error:
        return None, f"the old index was unusable ({error})"
    mismatch = incompatibility(old.manifest, embedder, split)
    if mismatch == "model":
        return None, f"the embedding model changed (was {old.manifest.model})"
    if mismatch:
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
            section = passage.section if split.section_context else ""
            passage_texts.append(indexing_text(document.title, passage.text, section))
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


def sentence_arrays(ordered: Sequence[Row], dim: int) -> SentenceArrays:
    """The sentences of passages `ordered`, each stored once: overlapping passages of a
    document share a sentence (same original span), and point at the same row."""
    rows: list[int] = []
    offsets = [0]
    spans: list[tuple[int, int]] = []
    vectors: list[np.ndarray] = []
    seen: dict[tuple[str, int, int], int] = {}
    for row in ordered:
        for (start, end), vector in zip(row.sentence_spans.tolist(), row.sentence_vectors, strict=True):
            key = (row.passage.doc, start, end)
            if key not in seen:
                seen[key] = len(spans)
                spans.append((start, end))
                vectors.append(vector)
            rows.append(seen[key])
        offsets.append(len(rows))
    return SentenceArrays(
        rows=np.asarray(rows, dtype=np.int32),
        offsets=np.asarray(offsets, dtype=np.int64),
        spans=np.asarray(spans, dtype=np.int64).reshape(-1, 2),
        vectors=np.asarray(vectors, dtype=np.float32).reshape(-1, dim),
    )


def _manifest(
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
