"""One index version, loaded: its segments read as one, rows counted through them in order."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from cite.core.lexical import LexicalIndex
from cite.core.store.dense import SegmentedDense
from cite.core.store.records import Manifest
from cite.core.store.segments import Segment
from cite.core.types import Document, Passage


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
