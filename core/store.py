"""The index on disk: a folder of named files with a manifest, replaced atomically.

    ROOT/CURRENT            name of the live version folder (replaced with os.replace)
    ROOT/.lock              held by the one writer at a time
    ROOT/v-<time>-<id>/     manifest.json (written last), documents.jsonl, passages.jsonl,
                            vectors.npy, dense.faiss, bm25/, and per-sentence arrays:
                            sentence_offsets.npy (passage i owns rows offsets[i]:offsets[i+1]),
                            sentence_spans.npy (original start, end), sentence_vectors.npy

A writer builds a new version folder beside the live one and only then points CURRENT at
it, so a crash at any moment leaves the previous index whole, and a reader that loaded the
old version keeps answering from it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import IndexBusy, IndexCorrupt, IndexIncompatible, IndexMissing
from core.types import Document, Passage

FORMAT_VERSION = 1
DEFAULT_INDEX = Path(".cite/index")
_CURRENT = "CURRENT"
_MANIFEST = "manifest.json"
SENTENCE_ARRAYS = ("sentence_offsets", "sentence_spans", "sentence_vectors")
HNSW_EF_SEARCH = 128  # candidates explored per query in an HNSW index (recall vs speed)


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
class Manifest:
    format_version: int
    model: str
    model_fingerprint: str
    tokenizer: str
    split: dict[str, Any]
    dense_index: str  # the FAISS index kind, e.g. "flat-ip"
    documents: dict[str, DocumentRecord]
    files: dict[str, str]  # relative path -> sha256, checked on load
    created_at: str

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        documents = {name: DocumentRecord(**record) for name, record in data["documents"].items()}
        return cls(**{**data, "documents": documents})


@dataclass(frozen=True)
class StoredIndex:
    """Everything one index version holds, loaded."""

    path: Path
    manifest: Manifest
    documents: dict[str, Document]
    passages: list[Passage]
    vectors: np.ndarray
    sentence_offsets: np.ndarray
    sentence_spans: np.ndarray
    sentence_vectors: np.ndarray
    dense: Any  # faiss.Index
    bm25: Any  # bm25s.BM25

    @cached_property
    def row_of(self) -> dict[str, int]:
        """Passage id -> row in passages, vectors and sentence_offsets."""
        return {passage.id: row for row, passage in enumerate(self.passages)}

    def sentences_of(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        """(original spans, vectors) of the sentences of passage `row`."""
        first, last = int(self.sentence_offsets[row]), int(self.sentence_offsets[row + 1])
        return np.asarray(self.sentence_spans[first:last]), np.asarray(self.sentence_vectors[first:last])


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


def write_index(
    root: Path,
    manifest: Manifest,
    documents: list[Document],
    passages: list[Passage],
    vectors: np.ndarray,
    sentences: dict[str, np.ndarray],
    dense: Any,
    bm25: Any,
) -> Path:
    """Writes a complete new version and makes it live. Call under `writer_lock`."""
    import faiss

    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        _write_jsonl(tmp / "documents.jsonl", (asdict(d) for d in documents))
        _write_jsonl(tmp / "passages.jsonl", (asdict(p) for p in passages))
        np.save(tmp / "vectors.npy", vectors.astype(np.float32, copy=False))
        for name in SENTENCE_ARRAYS:
            np.save(tmp / f"{name}.npy", sentences[name])
        faiss.write_index(dense, str(tmp / "dense.faiss"))
        bm25.save(str(tmp / "bm25"))
        files = {str(p.relative_to(tmp)): _sha256(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        manifest = Manifest(**{**asdict(manifest), "documents": manifest.documents, "files": files})
        _fsync_tree(tmp)
        (tmp / _MANIFEST).write_text(json.dumps(asdict(manifest), indent=1), encoding="utf-8")
        _fsync_file(tmp / _MANIFEST)
        version = root / f"v-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
        os.rename(tmp, version)
        _replace_text(root / _CURRENT, version.name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _remove_stale_versions(root, keep=version)
    return version


def read_manifest(root: Path) -> Manifest:
    version = _require_version(root)
    return _load_manifest(version)


def read_index(root: Path, verify: bool = True) -> StoredIndex:
    """Loads the live version; with `verify`, every file must match its manifest checksum."""
    import bm25s
    import faiss

    version = _require_version(root)
    manifest = _load_manifest(version)
    if verify:
        for name, expected in manifest.files.items():
            path = version / name
            if not path.is_file() or _sha256(path) != expected:
                raise IndexCorrupt(
                    f"Index file {path} is missing or damaged (checksum mismatch); run `cite index` to rebuild."
                )
    try:
        documents = {d["doc"]: Document(**d) for d in _read_jsonl(version / "documents.jsonl")}
        passages = [Passage(**p) for p in _read_jsonl(version / "passages.jsonl")]
        vectors = np.load(version / "vectors.npy", mmap_mode="r")
        sentences = [np.load(version / f"{name}.npy", mmap_mode="r") for name in SENTENCE_ARRAYS]
        dense = faiss.read_index(str(version / "dense.faiss"))
        if hasattr(dense, "hnsw"):
            dense.hnsw.efSearch = HNSW_EF_SEARCH
        bm25 = bm25s.BM25.load(str(version / "bm25"), mmap=True)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as error:
        raise IndexCorrupt(f"Index at {version} could not be read ({error}); run `cite index` to rebuild.") from None
    offsets, spans, sentence_vectors = sentences
    if (
        dense.ntotal != len(passages)
        or len(vectors) != len(passages)
        or len(offsets) != len(passages) + 1
        or len(spans) != len(sentence_vectors)
        or (len(offsets) and int(offsets[-1]) != len(spans))
    ):
        raise IndexCorrupt(f"Index at {version} is inconsistent; run `cite index` to rebuild.")
    return StoredIndex(version, manifest, documents, passages, vectors, offsets, spans, sentence_vectors, dense, bm25)


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


def _remove_stale_versions(root: Path, keep: Path) -> None:
    """Drops older versions and leftovers of crashed writers. Readers that already
    loaded an old version keep their open files (POSIX unlink semantics)."""
    for child in root.iterdir():
        if child.is_dir() and child != keep and (child.name.startswith("v-") or child.name.startswith(".tmp-")):
            shutil.rmtree(child, ignore_errors=True)


def _write_jsonl(path: Path, rows: Iterator[dict[str, Any]] | Any) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            yield json.loads(line)


def _replace_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:6]}")
    tmp.write_text(text, encoding="utf-8")
    _fsync_file(tmp)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
