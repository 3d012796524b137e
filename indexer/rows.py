"""Passages as the index stores them (`Row`): read out of a stored segment without embedding,
and written as a new segment, each sentence shared by overlapping passages stored once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from cite.core.store import Segment, SegmentRecord, SentenceArrays, write_segment
from cite.core.types import Document, Passage


@dataclass(frozen=True)
class Row:
    """A passage as the index stores it: vector, BM25 tokens, sentences' spans and vectors."""

    passage: Passage
    vector: np.ndarray
    tokens: list[str]
    sentence_spans: np.ndarray  # (sentences, 2) original start, end
    sentence_vectors: np.ndarray  # (sentences, dim)


def stored_rows(segment: Segment, docs: set[str]) -> dict[str, list[Row]]:
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


def write_rows(root: Path, documents: list[Document], rows: dict[str, list[Row]], dim: int) -> SegmentRecord:
    """Writes the rows of `documents`, in their order, as a new segment of the index at `root`."""
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
