"""One segment, loaded: its texts and arrays memory-mapped, its passages derived from spans."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from cite.core.errors import IndexCorrupt
from cite.core.lexical import Postings, mapped_array
from cite.core.store.dense import ready_to_search
from cite.core.store.quantise import dequantise, quantise
from cite.core.store.records import SegmentRecord, document_from_json
from cite.core.text import normalised_text
from cite.core.types import Document, Passage


def passage_text(original: str, start: int, end: int) -> str:
    """A passage's (or quoted sentence's) text from its span of the original document text:
    normalised as the splitter normalises, paragraph breaks read as spaces. The store keeps
    only the span."""
    return normalised_text(original[start:end]).replace("\n\n", " ")


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
