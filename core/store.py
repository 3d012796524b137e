"""The index on disk: immutable segments plus a manifest, switched atomically.

    ROOT/CURRENT               name of the live version folder (replaced with os.replace)
    ROOT/.lock                 held by the one writer at a time
    ROOT/segments/s-<id>/      one segment, never changed once written: documents.jsonl,
                               passages.jsonl, tokens.txt (BM25 tokens, a line per passage),
                               vectors.npy, dense.faiss, and per-sentence arrays:
                               sentence_offsets.npy (passage i owns rows offsets[i]:offsets[i+1]),
                               sentence_spans.npy (original start, end), sentence_vectors.npy
    ROOT/v-<time>-<id>/        manifest.json (written last: the live segments and every file's
                               sha256) and bm25/, the lexical index over all segments

A write adds one segment (new and changed documents, plus what it carries over from
segments it retires) and a new version folder, and only then points CURRENT at it: adding
one document to a large index writes that document and the BM25 index, not every vector.
A crash at any moment leaves the previous version whole; a reader that loaded it keeps
answering from it.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from core.digest import sha256_of_files
from core.errors import IndexBusy, IndexCorrupt, IndexIncompatible, IndexMissing
from core.jsonl import read_jsonl
from core.lexical import TOKENIZER_NAME, LexicalIndex
from core.types import Document, Heading, Passage

if TYPE_CHECKING:
    from core.config import SplitSettings
    from core.embedder import Embedder

FORMAT_VERSION = 2  # 2: segments
DEFAULT_INDEX = Path(".cite/index")
_CURRENT = "CURRENT"
_MANIFEST = "manifest.json"
_SEGMENTS = "segments"
SENTENCE_ARRAYS = ("sentence_offsets", "sentence_spans", "sentence_vectors")

# The dense index of a segment: exact search up to HNSW_FROM passages (over 100k vectors it
# already takes ~20 ms on 2 cores), an HNSW graph beyond (see bench/scale.py).
HNSW_FROM = 100_000
HNSW_M = 32  # graph neighbours per vector
HNSW_EF_CONSTRUCTION = 80  # candidates explored per insertion while building
HNSW_EF_SEARCH = 128  # candidates explored per query (recall vs speed); set on load, not stored
FLAT_KIND = "flat-ip"
HNSW_KIND = f"hnsw{HNSW_M}-ip"


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
    dense_index: str  # the FAISS index kind, e.g. "flat-ip"
    files: dict[str, str]  # path inside the segment -> sha256


@dataclass(frozen=True)
class Manifest:
    format_version: int
    model: str
    model_fingerprint: str
    tokenizer: str
    split: dict[str, Any]
    documents: dict[str, DocumentRecord]
    segments: list[SegmentRecord]
    files: dict[str, str]  # path inside the version folder -> sha256, checked on load
    created_at: str

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        documents = {name: DocumentRecord(**record) for name, record in data["documents"].items()}
        segments = [SegmentRecord(**record) for record in data["segments"]]
        return cls(**{**data, "documents": documents, "segments": segments})


@dataclass(frozen=True, eq=False)  # one loaded segment is one object: compared by identity
class Segment:
    """One segment, loaded: its arrays stay memory-mapped."""

    record: SegmentRecord
    path: Path
    documents: list[Document]
    passages: list[Passage]
    vectors: np.ndarray
    sentence_offsets: np.ndarray
    sentence_spans: np.ndarray
    sentence_vectors: np.ndarray
    dense: Any  # faiss.Index

    def tokens(self) -> list[list[str]]:
        """The BM25 tokens of each passage, as the indexer stored them."""
        with (self.path / "tokens.txt").open(encoding="utf-8") as handle:
            return [line.split() for line in handle]


class Stacked:
    """Rows of several arrays read as one, without copying them into memory."""

    def __init__(self, parts: Sequence[np.ndarray]) -> None:
        self._parts = list(parts)
        self._starts = np.cumsum([0] + [len(part) for part in self._parts])

    def __len__(self) -> int:
        return int(self._starts[-1])

    def __getitem__(self, rows: Any) -> np.ndarray:
        if len(self._parts) == 1:
            return self._parts[0][rows]
        rows = np.asarray(rows, dtype=np.int64)
        flat = np.atleast_1d(rows)
        owner = np.searchsorted(self._starts, flat, side="right") - 1
        out = np.empty((len(flat), *self._parts[0].shape[1:]), dtype=self._parts[0].dtype)
        for part in np.unique(owner):
            mine = owner == part
            out[mine] = self._parts[part][flat[mine] - self._starts[part]]
        return out[0] if rows.ndim == 0 else out


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


@dataclass(frozen=True)
class StoredIndex:
    """Everything one index version holds, loaded; rows count through the segments in order."""

    path: Path
    manifest: Manifest
    segments: list[Segment]
    lexical: LexicalIndex  # BM25 over all passages, rows in the same order

    @cached_property
    def documents(self) -> dict[str, Document]:
        return {d.doc: d for segment in self.segments for d in segment.documents}

    @cached_property
    def passages(self) -> list[Passage]:
        return [p for segment in self.segments for p in segment.passages]

    @cached_property
    def vectors(self) -> Stacked:
        return Stacked([segment.vectors for segment in self.segments])

    @cached_property
    def sentence_offsets(self) -> np.ndarray:
        """Global sentence rows: passage row i owns sentence rows offsets[i]:offsets[i+1]."""
        parts, shift = [np.zeros(1, dtype=np.int64)], 0
        for segment in self.segments:
            parts.append(np.asarray(segment.sentence_offsets[1:], dtype=np.int64) + shift)
            shift += int(segment.sentence_offsets[-1])
        return np.concatenate(parts)

    @cached_property
    def sentence_spans(self) -> Stacked:
        return Stacked([segment.sentence_spans for segment in self.segments])

    @cached_property
    def sentence_vectors(self) -> Stacked:
        return Stacked([segment.sentence_vectors for segment in self.segments])

    @cached_property
    def dense(self) -> SegmentedDense:
        return SegmentedDense([segment.dense for segment in self.segments])

    @cached_property
    def row_of(self) -> dict[str, int]:
        """Passage id -> row in passages, vectors and sentence_offsets."""
        return {passage.id: row for row, passage in enumerate(self.passages)}

    def sentences_of(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        """(original spans, vectors) of the sentences of passage `row`."""
        first, last = int(self.sentence_offsets[row]), int(self.sentence_offsets[row + 1])
        rows = np.arange(first, last)
        return np.asarray(self.sentence_spans[rows]), np.asarray(self.sentence_vectors[rows])


def document_from_json(data: dict[str, Any]) -> Document:
    """A document as `asdict` wrote it to documents.jsonl: JSON lists back to tuples, headings
    back to records (an index written before pages and headings existed has neither)."""
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
    """Exact search while it is fast enough; a graph index beyond (see bench/scale.py)."""
    return FLAT_KIND if count <= HNSW_FROM else HNSW_KIND


def new_dense_index(kind: str, dim: int) -> Any:
    """An empty FAISS index of `kind` over unit vectors (inner product = cosine), set up for
    adding vectors. Search settings are not part of the file: see `ready_to_search`."""
    import faiss

    if kind == FLAT_KIND:
        return faiss.IndexFlatIP(dim)
    if kind == HNSW_KIND:
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        return index
    raise ValueError(f"Unknown dense index kind {kind!r}; known: {FLAT_KIND}, {HNSW_KIND}.")


def ready_to_search(index: Any) -> Any:
    """`index`, set up for queries: an HNSW graph explores HNSW_EF_SEARCH candidates."""
    if hasattr(index, "hnsw"):
        index.hnsw.efSearch = HNSW_EF_SEARCH
    return index


def segment_folder(root: Path, name: str) -> Path:
    """Where segment `name` of the index at `root` lies."""
    return root / _SEGMENTS / name


def current_version(root: Path) -> Path | None:
    """The live version folder, or None when no index was ever completed here."""
    pointer = root / _CURRENT
    if not pointer.is_file():
        return None
    version = root / pointer.read_text(encoding="utf-8").strip()
    return version if (version / _MANIFEST).is_file() else None


@contextmanager
def writer_lock(root: Path) -> Iterator[None]:
    """Lets one writer at a time build an index in `root`; a second one fails at once."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise IndexBusy(
                f"Another `cite index` is writing {root} right now; wait for it to finish and run again."
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_segment(
    root: Path,
    documents: Sequence[Document],
    passages: Sequence[Passage],
    tokens: Iterable[list[str]],
    vectors: np.ndarray,
    sentences: dict[str, np.ndarray],
    dense: Any,
    dense_kind: str,
) -> SegmentRecord:
    """Writes one complete segment (not yet live: a version must name it). Call under `writer_lock`."""
    import faiss

    folder = root / _SEGMENTS
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        _write_jsonl(tmp / "documents.jsonl", (asdict(d) for d in documents))
        _write_jsonl(tmp / "passages.jsonl", (asdict(p) for p in passages))
        with (tmp / "tokens.txt").open("w", encoding="utf-8") as handle:
            handle.writelines(" ".join(words) + "\n" for words in tokens)
        np.save(tmp / "vectors.npy", vectors.astype(np.float32, copy=False))
        for name in SENTENCE_ARRAYS:
            np.save(tmp / f"{name}.npy", sentences[name])
        faiss.write_index(dense, str(tmp / "dense.faiss"))
        files = _checksums(tmp)
        _fsync_tree(tmp)
        name = f"s-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
        os.rename(tmp, folder / name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return SegmentRecord(name=name, passages=len(passages), dense_index=dense_kind, files=files)


def write_version(root: Path, manifest: Manifest, lexical: LexicalIndex) -> Path:
    """Writes the manifest (naming its segments) and the BM25 index, then makes them live.
    Call under `writer_lock`, after `write_segment` for every new segment."""
    tmp = root / f".tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        lexical.save(tmp / "bm25")
        manifest = replace(manifest, files=_checksums(tmp))
        _fsync_tree(tmp)
        # Compact: an indented dump takes the pure-Python encoder, seconds for 100k documents.
        (tmp / _MANIFEST).write_text(json.dumps(asdict(manifest), separators=(",", ":")), encoding="utf-8")
        _fsync_file(tmp / _MANIFEST)
        version = root / f"v-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
        os.rename(tmp, version)
        _replace_text(root / _CURRENT, version.name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _remove_stale(root, keep=version, segments={s.name for s in manifest.segments})
    return version


def read_manifest(root: Path) -> Manifest:
    version = _require_version(root)
    return _load_manifest(version)


def read_index(root: Path, verify: bool = True) -> StoredIndex:
    """Loads the live version; with `verify`, every file must match its manifest checksum.

    A writer may retire the version being read; the read then starts over on the new one."""
    for attempt in range(3):
        version = _require_version(root)
        try:
            return _read_version(root, version, verify)
        except IndexCorrupt:
            if attempt == 2 or current_version(root) == version:
                raise
    raise AssertionError("unreachable")


def _read_version(root: Path, version: Path, verify: bool) -> StoredIndex:
    manifest = _load_manifest(version)
    if verify:
        _verify(version, manifest.files)
        for record in manifest.segments:
            _verify(segment_folder(root, record.name), record.files)
    try:
        segments = [_read_segment(segment_folder(root, record.name), record) for record in manifest.segments]
        lexical = LexicalIndex.load(version / "bm25")
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as error:
        raise IndexCorrupt(f"Index at {version} could not be read ({error}); run `cite index` to rebuild.") from None
    index = StoredIndex(version, manifest, segments, lexical)
    if len(index.documents) != len(manifest.documents) or lexical.num_docs != len(index.passages):
        raise IndexCorrupt(f"Index at {version} is inconsistent; run `cite index` to rebuild.")
    return index


def _verify(folder: Path, files: dict[str, str]) -> None:
    for name, expected in files.items():
        path = folder / name
        if not path.is_file() or sha256_of_files([path]) != expected:
            raise IndexCorrupt(
                f"Index file {path} is missing or damaged (checksum mismatch); run `cite index` to rebuild."
            )


def _read_segment(path: Path, record: SegmentRecord) -> Segment:
    import faiss

    documents = [document_from_json(d) for _, d in read_jsonl(path / "documents.jsonl")]
    passages = [Passage(**p) for _, p in read_jsonl(path / "passages.jsonl")]
    vectors = np.load(path / "vectors.npy", mmap_mode="r")
    offsets, spans, sentence_vectors = (np.load(path / f"{name}.npy", mmap_mode="r") for name in SENTENCE_ARRAYS)
    dense = ready_to_search(faiss.read_index(str(path / "dense.faiss")))
    if (
        dense.ntotal != len(passages)
        or len(passages) != record.passages
        or len(vectors) != len(passages)
        or len(offsets) != len(passages) + 1
        or len(spans) != len(sentence_vectors)
        or int(offsets[-1]) != len(spans)
    ):
        raise IndexCorrupt(f"Index segment {path} is inconsistent; run `cite index` to rebuild.")
    return Segment(record, path, documents, passages, vectors, offsets, spans, sentence_vectors, dense)


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
        raise IndexIncompatible(
            f"Index at {version} has format version {data.get('format_version')}, this cite reads "
            f"version {FORMAT_VERSION}; run `cite index` to rebuild it."
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


def _checksums(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): sha256_of_files([p]) for p in sorted(folder.rglob("*")) if p.is_file()}


def _write_jsonl(path: Path, rows: Iterator[dict[str, Any]] | Any) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


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
