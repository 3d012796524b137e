"""The index on disk: immutable segments plus a manifest, switched atomically.

    ROOT/CURRENT               name of the live version folder (replaced with os.replace)
    ROOT/.lock                 held by the one writer at a time
    ROOT/.writing              present while a writer works: found with no writer, a crash
    ROOT/segments/s-<id>/      one segment, never changed once written:
        documents.jsonl        one line per document: name, title, source, pages, headings
        texts.bin              the documents' texts, UTF-8, one after the other (text_offsets.npy:
                               byte offsets); the only copy of any text
        passages.npy           one record per passage: id, document row, original start and end,
                               page, section (sections.json); its text is derived from the
                               document's (passage_texts.json: the rare ones that are not)
        id_order.npy           passage rows in id order, for looking passages up by id
        sentence_*.npy         sentences (each stored once, though overlapping passages share
                               them): spans, int8 vectors and their scales; passage i owns
                               sentence rows sentence_rows[sentence_offsets[i]:sentence_offsets[i+1]]
        bm25_*                 BM25 postings of the segment's passages (see core.lexical)
        dense.faiss            the passage vectors, scalar-quantised to int8, in a FAISS index
                               chosen by size: their only copy, read memory-mapped
    ROOT/v-<time>-<id>/        manifest.json (written last): the live segments and every file's
                               sha256, size and mtime

A write adds one segment (new and changed documents, plus what it carries over from
segments it retires) and a new version folder, and only then points CURRENT at it: adding
one document to a large index writes that document and the manifest, nothing else. A
crash at any moment leaves the previous version whole; a reader that loaded it keeps
answering from it. Loading checks each file's size and mtime against the manifest (a file
whose mtime moved is hashed); `verify_index` hashes everything, as loading does after a
crashed writer.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from cite.core.digest import sha256_of_files
from cite.core.errors import IndexBusy, IndexCorrupt, IndexIncompatible, IndexMissing
from cite.core.lexical import TOKENIZER_NAME, LexicalIndex, Postings, mapped_array
from cite.core.text import normalised_text
from cite.core.types import Document, Heading, Passage

if TYPE_CHECKING:
    from cite.core.config import SplitSettings
    from cite.core.embedder import Embedder

FORMAT_VERSION = 3
# Why an index of an older format must be rebuilt, said when it is.
FORMAT_CHANGES = {
    3: "vectors are now stored once and int8-quantised, passage text as spans of the document "
    "text, and BM25 statistics per segment, which makes an index about 4x smaller and adding a "
    "document cost only that document",
}
DEFAULT_INDEX = Path(".cite/index")
_CURRENT = "CURRENT"
_MANIFEST = "manifest.json"
_SEGMENTS = "segments"
_WRITING = ".writing"
_SWITCHES_FOLLOWED = 8  # versions switched under one read before a reader gives up

# The dense index of a segment, by its size (bench/scale.py measures each): exact search
# over int8 codes up to HNSW_FROM passages (~20 ms at 100k on one core), an HNSW graph over
# int8 codes up to IVF_FROM, then IVF-PQ (a coarse quantiser and 48-byte codes) whose top
# candidates are re-ranked with the int8 codes. The int8 codes are the vectors cite stores.
HNSW_FROM = 100_000
IVF_FROM = 400_000
HNSW_M = 32  # graph neighbours per vector
HNSW_EF_CONSTRUCTION = 80  # candidates explored per insertion while building
HNSW_EF_SEARCH = 128  # candidates explored per query (recall vs speed); set on load, not stored
IVF_PQ_BYTES = 48  # PQ code bytes per vector (8 dimensions per byte at dim 384)
IVF_NPROBE = 32  # inverted lists searched per query
IVF_REFINE = 4  # k * IVF_REFINE PQ candidates re-ranked with the int8 codes
FLAT_KIND = "flat-sq8"
HNSW_KIND = f"hnsw{HNSW_M}-sq8"
IVF_KIND = f"ivfpq{IVF_PQ_BYTES}-sq8"
DENSE_KINDS = (FLAT_KIND, HNSW_KIND, IVF_KIND)
Check = Literal["none", "stamps", "full"]


@dataclass(frozen=True)
class DocumentRecord:
    doc: str
    sha256: str
    title: str
    chars: int
    passages: int
    indexed_at: str
    source: str = ""


@dataclass(frozen=True)
class SegmentRecord:
    name: str  # folder under ROOT/segments
    passages: int
    dense_index: str  # the FAISS index kind, one of DENSE_KINDS
    files: dict[str, str]  # path inside the segment -> sha256
    stamps: dict[str, tuple[int, int]] = field(default_factory=dict)  # path -> (size, mtime_ns)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SegmentRecord:
        stamps = {name: (int(size), int(mtime)) for name, (size, mtime) in data.get("stamps", {}).items()}
        return cls(**{**data, "stamps": stamps})


@dataclass(frozen=True)
class Manifest:
    format_version: int
    model: str
    model_fingerprint: str
    tokenizer: str
    split: dict[str, Any]
    documents: dict[str, DocumentRecord]
    segments: list[SegmentRecord]
    files: dict[str, str]  # path inside the version folder -> sha256 (the manifest is all it holds)
    created_at: str

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        documents = {name: DocumentRecord(**record) for name, record in data["documents"].items()}
        segments = [SegmentRecord.from_json(record) for record in data["segments"]]
        return cls(**{**data, "documents": documents, "segments": segments})

    def to_json(self) -> dict[str, Any]:
        """What `from_json` reads. Document records are flat, so each is copied shallowly:
        `dataclasses.asdict`'s deep copy took 3 s of every write at 60k documents."""
        return {
            **vars(self),
            "documents": {name: dict(vars(record)) for name, record in self.documents.items()},
            "segments": [asdict(segment) for segment in self.segments],
        }


PASSAGE_DTYPE = np.dtype(
    [("id", "S16"), ("doc", "<i4"), ("start", "<i8"), ("end", "<i8"), ("page", "<i4"), ("section", "<i4")]
)


def passage_text(original: str, start: int, end: int) -> str:
    """A passage's (or quoted sentence's) text from its span of the original document text:
    normalised as the splitter normalises, paragraph breaks read as spaces. The store keeps
    only the span."""
    return normalised_text(original[start:end]).replace("\n\n", " ")


def quantise(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 codes per row and the row's scale: vector ~= codes * scale. Quantising
    dequantised vectors again gives the same codes, so rows move between segments unchanged."""
    vectors = np.asarray(vectors, dtype=np.float32)
    peak = np.abs(vectors).max(axis=1) if len(vectors) else np.zeros(0, np.float32)
    scales = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    codes = np.clip(np.rint(vectors / scales[:, None]), -127, 127).astype(np.int8)
    return codes, scales


def dequantise(codes: np.ndarray, scales: np.ndarray) -> np.ndarray:
    return np.asarray(codes, dtype=np.float32) * np.asarray(scales, dtype=np.float32)[:, None]


@dataclass(frozen=True)
class SentenceArrays:
    """The sentences of a segment's passages, each stored once: passage i owns sentence rows
    rows[offsets[i]:offsets[i + 1]] (in text order), sentence j is the original span spans[j]."""

    rows: np.ndarray  # int32
    offsets: np.ndarray  # int64 (passages + 1,)
    spans: np.ndarray  # int64 (sentences, 2)
    vectors: np.ndarray  # float32 (sentences, dim), unit length; or int8 codes when `scales` is given
    scales: np.ndarray | None = None  # float32 (sentences,): `vectors` are already `quantise`d

    def quantised(self) -> tuple[np.ndarray, np.ndarray]:
        """(int8 codes, scales) of the sentence vectors."""
        if self.scales is not None:
            return np.asarray(self.vectors, dtype=np.int8), np.asarray(self.scales, dtype=np.float32)
        return quantise(self.vectors)

    def __post_init__(self) -> None:
        if len(self.spans) != len(self.vectors) or int(self.offsets[-1]) != len(self.rows):
            raise ValueError("sentence arrays disagree in length")


_DOCUMENT_CACHE = 64  # decoded documents a segment keeps (answers read a few per question)
_PASSAGE_CACHE = 4096  # derived passage texts a segment keeps


@dataclass(frozen=True, eq=False)  # one loaded segment is one object: compared by identity
class Segment:
    """One segment, loaded: its arrays and texts stay memory-mapped; only document names,
    sections and the BM25 vocabulary are read into memory."""

    record: SegmentRecord
    path: Path
    doc_names: list[str]
    passage_table: np.ndarray  # PASSAGE_DTYPE records
    sections: list[str]
    texts_override: dict[int, str]
    id_order: np.ndarray
    sentence_rows: np.ndarray
    sentence_offsets: np.ndarray
    sentence_spans: np.ndarray
    sentence_codes: np.ndarray
    sentence_scales: np.ndarray
    postings: Postings
    dense: Any  # faiss.Index over the int8 passage vectors
    _texts: np.ndarray
    _text_offsets: np.ndarray
    _meta: list[bytes]
    _cache: OrderedDict = field(default_factory=OrderedDict)
    _passage_texts: dict[int, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @cached_property
    def doc_row(self) -> dict[str, int]:
        return {name: row for row, name in enumerate(self.doc_names)}

    @property
    def documents(self) -> list[Document]:
        """Every document of the segment (read from disk on each call: for moving or listing them)."""
        return [self.document(row) for row in range(len(self.doc_names))]

    def document(self, row: int) -> Document:
        """Document `row` of the segment, text and all (the last few are kept decoded)."""
        with self._lock:  # requests of a UI share the segment from several threads
            cached = self._cache.get(row)
            if cached is not None:
                self._cache.move_to_end(row)
                return cached
        meta = json.loads(self._meta[row])
        first, last = int(self._text_offsets[row]), int(self._text_offsets[row + 1])
        text = bytes(self._texts[first:last]).decode("utf-8")
        document = document_from_json({**meta, "text": text})
        with self._lock:
            self._cache[row] = document
            if len(self._cache) > _DOCUMENT_CACHE:
                self._cache.popitem(last=False)
        return document

    def passage(self, row: int) -> Passage:
        record = self.passage_table[row]
        document = self.document(int(record["doc"]))
        start, end = int(record["start"]), int(record["end"])
        text = self.texts_override.get(row)
        if text is None:
            text = self._passage_texts.get(row)
        if text is None:  # derived from the span (normalising costs ~0.1 ms a passage: keep the last few)
            text = passage_text(document.text, start, end)
            with self._lock:
                self._passage_texts[row] = text
                if len(self._passage_texts) > _PASSAGE_CACHE:
                    self._passage_texts.pop(next(iter(self._passage_texts)))
        return Passage(
            id=record["id"].decode("ascii"),
            doc=document.doc,
            start=start,
            end=end,
            text=text,
            page=None if record["page"] < 0 else int(record["page"]),
            section=self.sections[int(record["section"])],
        )

    def find(self, passage_id: str) -> int | None:
        """The row of the passage with this id, or None (a binary search over id order)."""
        key = passage_id.encode("ascii", "replace")
        ids, order = self.passage_table["id"], self.id_order
        low, high = 0, len(order)
        while low < high:
            middle = (low + high) // 2
            if ids[order[middle]] < key:
                low = middle + 1
            else:
                high = middle
        if low < len(order) and ids[order[low]] == key:
            return int(order[low])
        return None

    def mentioned(self, tokens: set[str], docs: set[str]) -> set[str]:
        """The `tokens` that some passage of this segment's documents `docs` holds (read from
        the BM25 postings, not the texts)."""
        wanted = [self.doc_row[name] for name in docs if name in self.doc_row]
        if not wanted:
            return set()
        doc_of = self.passage_table["doc"]
        return {token for token in tokens if np.isin(doc_of[self.postings.holders(token)], wanted).any()}

    def vectors(self, rows: Sequence[int]) -> np.ndarray:
        """The stored (int8, dequantised) vectors of passages `rows`."""
        if not len(rows):
            return np.zeros((0, self.dense.d), dtype=np.float32)
        return self.dense.reconstruct_batch(np.asarray(rows, dtype=np.int64))

    def tokens(self, rows: Sequence[int] | None = None) -> list[list[str]]:
        """The BM25 tokens of passages `rows` (all by default), as a bag per passage."""
        return self.postings.bags(range(len(self.passage_table)) if rows is None else rows)

    def sentences(
        self, rows: Sequence[int], query: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(sentences per passage, their original spans, their vectors) for passages `rows`,
        the sentences concatenated in the order of `rows`; given a `query` vector, their
        cosines with it instead of their vectors."""
        offsets = self.sentence_offsets
        rows = np.asarray(rows, dtype=np.int64)
        starts = np.asarray(offsets[rows], dtype=np.int64)
        counts = np.asarray(offsets[rows + 1], dtype=np.int64) - starts
        firsts = np.cumsum(counts) - counts
        picks = np.repeat(starts - firsts, counts) + np.arange(int(counts.sum()))
        sentence = np.asarray(self.sentence_rows[picks], dtype=np.int64)
        spans = np.asarray(self.sentence_spans[sentence], dtype=np.int64).reshape(-1, 2)
        if query is None:
            return counts, spans, dequantise(self.sentence_codes[sentence], self.sentence_scales[sentence])
        # Cosines straight from the codes: no dequantised matrix is built.
        cosines = (self.sentence_codes[sentence].astype(np.float32) @ query) * self.sentence_scales[sentence]
        return counts, spans, cosines.astype(np.float32)


class SegmentedDense:
    """The segments' FAISS indexes searched as one: the best k over all of them."""

    def __init__(self, indexes: Sequence[Any]) -> None:
        self.indexes = list(indexes)
        self._starts = np.cumsum([0] + [index.ntotal for index in self.indexes])
        self.ntotal = int(self._starts[-1])

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, global rows) like faiss' search; rows are -1 past the end."""
        found = [
            (scores, np.where(rows >= 0, rows + start, -1))
            for index, start in zip(self.indexes, self._starts, strict=False)
            if index.ntotal
            for scores, rows in [index.search(vectors, min(k, index.ntotal))]
        ]
        if len(found) == 1:
            return found[0]
        scores = np.hstack([s for s, _ in found]) if found else np.zeros((len(vectors), 0), np.float32)
        rows = np.hstack([r for _, r in found]) if found else np.zeros((len(vectors), 0), np.int64)
        scores = np.where(rows >= 0, scores, -np.inf)
        best = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(scores, best, axis=1), np.take_along_axis(rows, best, axis=1)


def _locate(starts: np.ndarray, row: int) -> tuple[int, int]:
    """(the segment, the row inside it) of global passage `row`, given each segment's first row."""
    part = int(np.searchsorted(starts, row, side="right")) - 1
    return part, row - int(starts[part])


# The views below hold the segments, not the StoredIndex: a view that pointed back at its
# index would make a reference cycle, and an index in a cycle (its segments, their mapped
# files, deleted files of retired versions among them) outlives its last user until the
# garbage collector's next full pass: a server switching versions kept dozens of them.


class Passages(Sequence[Passage]):
    """Every passage of an index, in row order, built on access from the segments' spans."""

    def __init__(self, segments: Sequence[Segment], starts: np.ndarray) -> None:
        self._segments, self._starts = list(segments), starts

    def __len__(self) -> int:
        return int(self._starts[-1])

    def __getitem__(self, row: Any) -> Any:
        if isinstance(row, slice):
            return [self[r] for r in range(*row.indices(len(self)))]
        row = int(row)
        if row < 0:
            row += len(self)
        if not 0 <= row < len(self):
            raise IndexError(f"passage row {row} out of range")
        part, local = _locate(self._starts, row)
        return self._segments[part].passage(local)


class Documents(Mapping[str, Document]):
    """Every document of an index by name, read from the segments on access."""

    def __init__(self, segments: Sequence[Segment]) -> None:
        self._segments = list(segments)
        self._where = {name: (part, row) for part, seg in enumerate(segments) for row, name in enumerate(seg.doc_names)}

    def __getitem__(self, name: str) -> Document:
        segment, row = self._where[name]
        return self._segments[segment].document(row)

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, name: object) -> bool:
        return name in self._where


class RowsById(Mapping[str, int]):
    """Passage id -> row in the index, looked up in each segment's id order."""

    def __init__(self, segments: Sequence[Segment], starts: np.ndarray) -> None:
        self._segments, self._starts = list(segments), starts

    def __getitem__(self, passage_id: str) -> int:
        for segment, start in zip(self._segments, self._starts, strict=False):
            row = segment.find(passage_id)
            if row is not None:
                return int(start) + row
        raise KeyError(passage_id)

    def __iter__(self) -> Iterator[str]:
        return (raw.decode("ascii") for segment in self._segments for raw in segment.passage_table["id"])

    def __len__(self) -> int:
        return int(self._starts[-1])


@dataclass(frozen=True)
class StoredIndex:
    """Everything one index version holds, loaded; rows count through the segments in order."""

    path: Path
    manifest: Manifest
    segments: list[Segment]
    lexical: LexicalIndex  # BM25 over all passages, rows in the same order

    @cached_property
    def starts(self) -> np.ndarray:
        """The global row of each segment's first passage, and the passage count last."""
        return np.cumsum([0] + [len(segment.passage_table) for segment in self.segments])

    @property
    def passage_count(self) -> int:
        return int(self.starts[-1])

    @cached_property
    def documents(self) -> Documents:
        return Documents(self.segments)

    @cached_property
    def passages(self) -> Passages:
        return Passages(self.segments, self.starts)

    @cached_property
    def dense(self) -> SegmentedDense:
        return SegmentedDense([segment.dense for segment in self.segments])

    @cached_property
    def row_of(self) -> RowsById:
        """Passage id -> row in passages, vectors and sentences."""
        return RowsById(self.segments, self.starts)

    def locate(self, row: int) -> tuple[Segment, int]:
        """The segment holding global passage `row`, and the row inside it."""
        part, local = _locate(self.starts, row)
        return self.segments[part], local

    def _by_segment(self, rows: Sequence[int]) -> Iterator[tuple[Segment, np.ndarray, np.ndarray]]:
        """(segment, positions in `rows`, local rows) for each segment some of `rows` fall in."""
        rows = np.asarray(rows, dtype=np.int64)
        owner = np.searchsorted(self.starts, rows, side="right") - 1
        for part in np.unique(owner):
            positions = np.flatnonzero(owner == part)
            yield self.segments[part], positions, rows[positions] - self.starts[part]

    def mentioned(self, tokens: set[str], docs: set[str]) -> set[str]:
        """The `tokens` (index tokens) that some passage of the documents `docs` holds."""
        return set().union(*(segment.mentioned(tokens, docs) for segment in self.segments))

    def passage_ids(self, rows: Sequence[int]) -> list[str]:
        """The ids of passages `rows`, without building the passages."""
        ids: list[str] = [""] * len(rows)
        for segment, positions, local in self._by_segment(rows):
            for position, raw in zip(positions, segment.passage_table["id"][local], strict=True):
                ids[position] = raw.decode("ascii")
        return ids

    def vectors(self, rows: Sequence[int]) -> np.ndarray:
        """The stored passage vectors of `rows` (int8 codes, dequantised), in that order."""
        dim = self.segments[0].dense.d if self.segments else 0
        out = np.zeros((len(rows), dim), dtype=np.float32)
        for segment, positions, local in self._by_segment(rows):
            out[positions] = segment.vectors(local)
        return out

    def sentences(
        self, rows: Sequence[int], query: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(sentences per passage, original spans, vectors) of passages `rows`, the sentences
        concatenated in the order of `rows`; given a `query` vector, their cosines with it
        instead of their vectors (computed from the int8 codes directly)."""
        parts = [(positions, *segment.sentences(local, query)) for segment, positions, local in self._by_segment(rows)]
        if len(parts) == 1 and (parts[0][0] == np.arange(len(rows))).all():
            return parts[0][1], parts[0][2], parts[0][3]
        dim = self.segments[0].dense.d if self.segments else 0
        counts = np.zeros(len(rows), dtype=np.int64)
        for positions, part_counts, _, _ in parts:
            counts[positions] = part_counts
        firsts = np.cumsum(counts) - counts
        spans = np.zeros((int(counts.sum()), 2), dtype=np.int64)
        vectors = np.zeros((int(counts.sum()), *(() if query is not None else (dim,))), dtype=np.float32)
        for positions, part_counts, part_spans, part_vectors in parts:
            within = np.arange(int(part_counts.sum())) - np.repeat(np.cumsum(part_counts) - part_counts, part_counts)
            destination = np.repeat(firsts[positions], part_counts) + within
            spans[destination], vectors[destination] = part_spans, part_vectors
        return counts, spans, vectors

    def sentences_of(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        """(original spans, vectors) of the sentences of passage `row`."""
        _, spans, vectors = self.sentences([row])
        return spans, vectors


def document_from_json(data: dict[str, Any]) -> Document:
    """A document as `asdict` wrote it: JSON lists back to tuples, headings back to records
    (an index written before pages and headings existed has neither)."""
    pages = tuple(data.get("pages", ()))
    headings = tuple(Heading(**heading) for heading in data.get("headings", ()))
    return Document(**{**data, "pages": pages, "headings": headings})


Mismatch = Literal["model", "tokenizer", "split"]


def incompatibility(manifest: Manifest, embedder: Embedder, split: SplitSettings | None = None) -> Mismatch | None:
    """What keeps an index from serving queries embedded by `embedder` (and, given `split`,
    from taking documents split that way), or None when nothing does: its vectors come
    from another model, or its BM25 tokens from another tokenizer."""
    if manifest.model_fingerprint != embedder.fingerprint or manifest.model != embedder.name:
        return "model"
    if manifest.tokenizer != TOKENIZER_NAME:
        return "tokenizer"
    if split is not None and manifest.split != asdict(split):
        return "split"
    return None


def dense_index_kind(count: int) -> str:
    """Exact search while it is fast enough; a graph index beyond; IVF-PQ for the largest."""
    if count <= HNSW_FROM:
        return FLAT_KIND
    return HNSW_KIND if count <= IVF_FROM else IVF_KIND


def new_dense_index(kind: str, dim: int, count: int = 0) -> Any:
    """An empty FAISS index of `kind` over unit vectors (inner product = cosine) stored as
    int8 codes, for about `count` vectors; `train_dense_index` it before adding vectors.
    Search settings are not part of the file: see `ready_to_search`."""
    import faiss

    sq8, ip = faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
    if kind == FLAT_KIND:
        return faiss.IndexScalarQuantizer(dim, sq8, ip)
    if kind == HNSW_KIND:
        index = faiss.IndexHNSWSQ(dim, sq8, HNSW_M, ip)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        return index
    if kind == IVF_KIND:
        lists = max(1, min(4096, int(4 * np.sqrt(max(count, 1)))))
        coarse = faiss.IndexFlatIP(dim)
        subquantisers = max(m for m in range(1, IVF_PQ_BYTES + 1) if dim % m == 0)  # PQ needs a divisor of dim
        pq = faiss.IndexIVFPQ(coarse, dim, lists, subquantisers, 8, ip)
        pq.own_fields = True
        coarse.this.disown()
        refine = faiss.IndexScalarQuantizer(dim, sq8, ip)
        index = faiss.IndexRefine(pq, refine)
        index.own_fields = True
        pq.this.disown()
        refine.this.disown()
        return index
    raise ValueError(f"Unknown dense index kind {kind!r}; known: {', '.join(DENSE_KINDS)}.")


def train_dense_index(index: Any, vectors: np.ndarray) -> None:
    """Trains the int8 ranges (and IVF-PQ's quantisers) on `vectors`. The int8 ranges are
    symmetric and never empty, so a segment of one vector still stores it faithfully."""
    dim = index.d
    vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, dim)
    floor = np.full((1, dim), 1e-3, dtype=np.float32)
    sample = vectors
    if len(vectors) > 100_000:  # training on a sample: ranges and IVF-PQ's quantisers need no more
        sample = vectors[np.sort(np.random.default_rng(0).permutation(len(vectors))[:100_000])]
    ranges = np.vstack([sample, -sample, floor, -floor])
    if hasattr(index, "refine_index"):  # IVF-PQ: coarse lists and PQ on the vectors, int8 ranges symmetric
        import faiss

        faiss.downcast_index(index.base_index).train(sample)
        faiss.downcast_index(index.refine_index).train(ranges)
        index.is_trained = True
    else:
        index.train(ranges)


def build_dense_index(vectors: np.ndarray, kind: str | None = None) -> tuple[Any, str]:
    """A trained FAISS index of `kind` (default: chosen by size) holding `vectors`, and the kind."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    kind = kind or dense_index_kind(len(vectors))
    index = new_dense_index(kind, vectors.shape[1], len(vectors))
    train_dense_index(index, vectors)
    if len(vectors):
        index.add(vectors)
    return index, kind


def ready_to_search(index: Any) -> Any:
    """`index`, set up for queries: HNSW explores HNSW_EF_SEARCH candidates, IVF-PQ probes
    IVF_NPROBE lists and re-ranks IVF_REFINE times k candidates with the int8 codes."""
    import faiss

    if hasattr(index, "hnsw"):
        index.hnsw.efSearch = HNSW_EF_SEARCH
    if hasattr(index, "refine_index"):
        faiss.extract_index_ivf(index).nprobe = IVF_NPROBE
        index.k_factor = IVF_REFINE
    return index


def segment_folder(root: Path, name: str) -> Path:
    """Where segment `name` of the index at `root` lies."""
    return root / _SEGMENTS / name


def current_version(root: Path) -> Path | None:
    """The live version folder, or None when no index was ever completed here.

    A writer may switch versions and delete the old one between our reading CURRENT and
    finding that version's manifest; CURRENT then names another version, and is read again:
    an index being switched is never reported missing."""
    pointer, named = root / _CURRENT, None
    for _ in range(_SWITCHES_FOLLOWED):
        try:
            name = pointer.read_text(encoding="utf-8").strip()
        except OSError:  # no CURRENT: nothing was ever completed here
            return None
        version = root / name
        if (version / _MANIFEST).is_file():
            return version
        if name == named:  # named twice, and no manifest: not a switch, an index damaged
            return None
        named = name
    return None


@contextmanager
def writer_lock(root: Path) -> Iterator[None]:
    """Lets one writer at a time build an index in `root`; a second one fails at once.

    While it is held, ROOT/.writing names the writer's process; finding one left by a
    writer that died marks the index as needing full checksums (`writer_crashed`) until the
    next version is complete."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise IndexBusy(
                f"Another `cite index` is writing {root} right now; wait for it to finish and run again."
            ) from None
        marker = root / _WRITING
        try:
            if marker.exists():  # we hold the lock, so its writer is gone: it died mid-write
                os.replace(marker, root / _CRASHED)
            marker.write_text(str(os.getpid()), encoding="utf-8")
            yield
        finally:
            marker.unlink(missing_ok=True)
            fcntl.flock(handle, fcntl.LOCK_UN)


_CRASHED = ".crashed"


def writer_crashed(root: Path) -> bool:
    """Whether a writer of `root` died mid-write since the last complete version: then every
    file is hashed on load, not only stat-ed."""
    if (root / _CRASHED).exists():
        return True
    try:
        pid = int((root / _WRITING).read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def write_segment(
    root: Path,
    documents: Sequence[Document],
    passages: Sequence[Passage],
    tokens: Sequence[list[str]],
    vectors: np.ndarray,
    sentences: SentenceArrays,
    dense_kind: str | None = None,
) -> SegmentRecord:
    """Writes one complete segment (not yet live: a version must name it). Call under `writer_lock`.

    Args:
        documents: the segment's documents; every passage's `doc` is one of them.
        passages: in row order; each one's text must be what `passage_text` derives from its
            span (those that differ are stored whole).
        tokens: BM25 tokens of each passage.
        vectors: float32 (passages, dim) unit vectors; stored int8 in the dense index.
        sentences: the passages' sentences (vectors float32, stored int8).
        dense_kind: one of DENSE_KINDS; default chosen by the passage count.
    """
    import faiss

    if not (len(passages) == len(tokens) == len(vectors) == len(sentences.offsets) - 1):
        raise ValueError("passages, tokens, vectors and sentence offsets disagree in length")
    folder = root / _SEGMENTS
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        _write_documents(tmp, documents)
        _write_passages(tmp, documents, passages)
        codes, scales = sentences.quantised()
        np.save(tmp / "sentence_rows.npy", np.asarray(sentences.rows, dtype=np.int32))
        np.save(tmp / "sentence_offsets.npy", np.asarray(sentences.offsets, dtype=np.int64))
        np.save(tmp / "sentence_spans.npy", np.asarray(sentences.spans, dtype=np.int64).reshape(-1, 2))
        np.save(tmp / "sentence_codes.npy", codes)
        np.save(tmp / "sentence_scales.npy", scales)
        Postings.build(tokens).save(tmp)
        dense, kind = build_dense_index(np.asarray(vectors, dtype=np.float32).reshape(len(passages), -1), dense_kind)
        faiss.write_index(dense, str(tmp / "dense.faiss"))
        _fsync_tree(tmp)
        name = f"s-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
        os.rename(tmp, folder / name)
        files, stamps = _checksums(folder / name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return SegmentRecord(name=name, passages=len(passages), dense_index=kind, files=files, stamps=stamps)


def _write_documents(folder: Path, documents: Sequence[Document]) -> None:
    offsets, position = [0], 0
    with (folder / "texts.bin").open("wb") as texts, (folder / "documents.jsonl").open("w", encoding="utf-8") as meta:
        for document in documents:
            data = document.text.encode("utf-8")
            texts.write(data)
            position += len(data)
            offsets.append(position)
            record = {k: v for k, v in asdict(document).items() if k != "text"}
            meta.write(json.dumps(record, ensure_ascii=False) + "\n")
    np.save(folder / "text_offsets.npy", np.asarray(offsets, dtype=np.int64))


def _write_passages(folder: Path, documents: Sequence[Document], passages: Sequence[Passage]) -> None:
    doc_row = {document.doc: row for row, document in enumerate(documents)}
    texts = {document.doc: document.text for document in documents}
    sections: dict[str, int] = {}
    table = np.zeros(len(passages), dtype=PASSAGE_DTYPE)
    override: dict[str, str] = {}
    derived: dict[str, str] = {}  # original span -> passage text (repeated spans are derived once)
    for row, passage in enumerate(passages):
        span = texts[passage.doc][passage.start : passage.end]
        if span not in derived:
            derived[span] = passage_text(span, 0, len(span))
        if derived[span] != passage.text:
            override[str(row)] = passage.text
        table[row] = (
            passage.id.encode("ascii"),
            doc_row[passage.doc],
            passage.start,
            passage.end,
            -1 if passage.page is None else passage.page,
            sections.setdefault(passage.section, len(sections)),
        )
    np.save(folder / "passages.npy", table)
    np.save(folder / "id_order.npy", np.argsort(table["id"], kind="stable").astype(np.int32))
    (folder / "sections.json").write_text(json.dumps(list(sections), ensure_ascii=False), encoding="utf-8")
    (folder / "passage_texts.json").write_text(json.dumps(override, ensure_ascii=False), encoding="utf-8")


def write_version(root: Path, manifest: Manifest) -> Path:
    """Writes the manifest (naming its segments), then makes it live. Call under
    `writer_lock`, after `write_segment` for every new segment."""
    tmp = root / f".tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        manifest = replace(manifest, files={})
        # Compact: an indented dump takes the pure-Python encoder, seconds for 100k documents.
        (tmp / _MANIFEST).write_text(json.dumps(manifest.to_json(), separators=(",", ":")), encoding="utf-8")
        _fsync_file(tmp / _MANIFEST)
        _fsync_dir(tmp)
        version = root / f"v-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
        os.rename(tmp, version)
        _replace_text(root / _CURRENT, version.name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    (root / _CRASHED).unlink(missing_ok=True)  # every live file was checked or written whole by this writer
    _remove_stale(root, keep=version, segments={s.name for s in manifest.segments})
    return version


def read_manifest(root: Path) -> Manifest:
    """The live version's manifest (read again from the new version if a writer retires this one meanwhile)."""
    for _ in range(_SWITCHES_FOLLOWED):
        version = _require_version(root)
        try:
            return _load_manifest(version)
        except IndexCorrupt:
            if current_version(root) == version:
                raise
    return _load_manifest(_require_version(root))


def read_index(root: Path, check: Check | None = None) -> StoredIndex:
    """Loads the live version. `check`: "stamps" compares each file's size and mtime with the
    manifest (hashing the files whose mtime moved), "full" hashes every file, "none" trusts
    them; by default "stamps", or "full" after a writer crashed.

    A writer may retire the version being read; the read then starts over on the new one."""
    check = check or ("full" if writer_crashed(root) else "stamps")
    for _ in range(_SWITCHES_FOLLOWED):
        version = _require_version(root)
        try:
            return _read_version(root, version, check)
        except IndexCorrupt:
            if current_version(root) == version:
                raise
    return _read_version(root, _require_version(root), check)


def verify_index(root: Path) -> tuple[int, int]:
    """Hashes every file of the live version against its manifest: (files, bytes) checked.

    Raises:
        IndexCorrupt: naming the first file that is missing or damaged.
    """
    version = _require_version(root)
    manifest = _load_manifest(version)
    files = size = 0
    for record in manifest.segments:
        folder = segment_folder(root, record.name)
        _verify(folder, record, "full")
        files += len(record.files)
        size += sum((folder / name).stat().st_size for name in record.files)
    return files, size


def _read_version(root: Path, version: Path, check: Check) -> StoredIndex:
    manifest = _load_manifest(version)
    for record in manifest.segments:
        _verify(segment_folder(root, record.name), record, check)
    try:
        segments = [_read_segment(segment_folder(root, record.name), record) for record in manifest.segments]
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as error:
        raise IndexCorrupt(f"Index at {version} could not be read ({error}); run `cite index` to rebuild.") from None
    index = StoredIndex(version, manifest, segments, LexicalIndex([s.postings for s in segments]))
    if len(index.documents) != len(manifest.documents) or index.lexical.num_docs != index.passage_count:
        raise IndexCorrupt(f"Index at {version} is inconsistent; run `cite index` to rebuild.")
    return index


def _verify(folder: Path, record: SegmentRecord, check: Check) -> None:
    if check == "none":
        return
    for name, expected in record.files.items():
        path = folder / name
        try:
            stat = path.stat()
        except OSError:
            stat = None
        stamp = record.stamps.get(name)
        if stat is not None and check == "stamps" and stamp is not None:
            if stat.st_size == stamp[0] and stat.st_mtime_ns == stamp[1]:
                continue
            if stat.st_size != stamp[0]:
                stat = None  # a file of another size is damaged, whatever its hash
        if stat is None or sha256_of_files([path]) != expected:
            raise IndexCorrupt(
                f"Index file {path} is missing or damaged (checksum mismatch); run `cite index` to rebuild."
            )


def _read_segment(path: Path, record: SegmentRecord) -> Segment:
    import faiss

    meta = (path / "documents.jsonl").read_bytes().split(b"\n")[:-1]
    doc_names = [json.loads(line)["doc"] for line in meta] if len(meta) < 50_000 else _names(meta)
    table = mapped_array(path / "passages.npy")
    texts_size = (path / "texts.bin").stat().st_size
    texts = np.asarray(np.memmap(path / "texts.bin", dtype=np.uint8, mode="r")) if texts_size else np.zeros(0, np.uint8)
    override = {int(row): text for row, text in json.loads((path / "passage_texts.json").read_text("utf-8")).items()}
    arrays = {
        name: mapped_array(path / f"{name}.npy")
        for name in (
            "id_order",
            "sentence_rows",
            "sentence_offsets",
            "sentence_spans",
            "sentence_codes",
            "sentence_scales",
            "text_offsets",
        )
    }
    dense = ready_to_search(faiss.read_index(str(path / "dense.faiss"), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY))
    segment = Segment(
        record=record,
        path=path,
        doc_names=doc_names,
        passage_table=table,
        sections=json.loads((path / "sections.json").read_text("utf-8")),
        texts_override=override,
        id_order=arrays["id_order"],
        sentence_rows=arrays["sentence_rows"],
        sentence_offsets=arrays["sentence_offsets"],
        sentence_spans=arrays["sentence_spans"],
        sentence_codes=arrays["sentence_codes"],
        sentence_scales=arrays["sentence_scales"],
        postings=Postings.load(path),
        dense=dense,
        _texts=texts,
        _text_offsets=arrays["text_offsets"],
        _meta=meta,
    )
    n = len(table)
    if (
        dense.ntotal != n
        or n != record.passages
        or len(segment.id_order) != n
        or len(segment.sentence_offsets) != n + 1
        or int(segment.sentence_offsets[-1]) != len(segment.sentence_rows)
        or len(segment.sentence_spans) != len(segment.sentence_codes)
        or len(segment.sentence_scales) != len(segment.sentence_codes)
        or segment.postings.num_docs != n
        or len(segment._text_offsets) != len(doc_names) + 1
        or int(segment._text_offsets[-1]) != len(texts)
    ):
        raise IndexCorrupt(f"Index segment {path} is inconsistent; run `cite index` to rebuild.")
    return segment


def _names(lines: list[bytes]) -> list[str]:
    """Document names of many metadata lines, parsed as one JSON array (much faster than a
    json.loads per line)."""
    return [record["doc"] for record in json.loads(b"[" + b",".join(lines) + b"]")]


def _require_version(root: Path) -> Path:
    version = current_version(root)
    if version is None:
        raise IndexMissing(f"No index at {root}; build one with `cite index PATH --index {root}`.")
    return version


def _load_manifest(version: Path) -> Manifest:
    try:
        data = json.loads((version / _MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise IndexCorrupt(
            f"Index manifest in {version} is unreadable ({error}); run `cite index` to rebuild."
        ) from None
    if data.get("format_version") != FORMAT_VERSION:
        found = data.get("format_version")
        why = "".join(
            f" (in version {v}, {change})"
            for v, change in FORMAT_CHANGES.items()
            if isinstance(found, int) and found < v
        )
        raise IndexIncompatible(
            f"Index at {version} has format version {found}, this cite reads version {FORMAT_VERSION}{why}; "
            "run `cite index` to rebuild it."
        )
    try:
        return Manifest.from_json(data)
    except (KeyError, TypeError) as error:
        raise IndexCorrupt(f"Index manifest in {version} is malformed ({error}); run `cite index`.") from None


def _remove_stale(root: Path, keep: Path, segments: set[str]) -> None:
    """Drops older versions, retired segments and leftovers of crashed writers. Readers that
    already loaded them keep their open files (POSIX unlink semantics)."""
    stale = [
        child
        for child in root.iterdir()
        if child.is_dir() and child != keep and (child.name.startswith("v-") or child.name.startswith(".tmp-"))
    ]
    if (root / _SEGMENTS).is_dir():
        stale += [child for child in (root / _SEGMENTS).iterdir() if child.name not in segments]
    for child in stale:
        shutil.rmtree(child, ignore_errors=True)


def _checksums(folder: Path) -> tuple[dict[str, str], dict[str, tuple[int, int]]]:
    """(sha256, (size, mtime_ns)) of every file under `folder`, by relative path."""
    paths = [p for p in sorted(folder.rglob("*")) if p.is_file()]
    hashes = {str(p.relative_to(folder)): sha256_of_files([p]) for p in paths}
    stamps = {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in paths}
    return hashes, stamps


def _replace_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:6]}")
    tmp.write_text(text, encoding="utf-8")
    _fsync_file(tmp)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    _fsync_file(path)


def _fsync_tree(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            _fsync_file(path)
    _fsync_dir(root)
