"""Writing: a segment into its own folder, then a version naming it, made live atomically."""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
from cite.core.digest import sha256_of_files
from cite.core.lexical import Postings
from cite.core.store.dense import build_dense_index
from cite.core.store.records import _CRASHED, _CURRENT, _MANIFEST, _SEGMENTS, PASSAGE_DTYPE, Manifest, SegmentRecord
from cite.core.store.segments import SentenceArrays, passage_text
from cite.core.types import Document, Passage


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
