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

The modules, each importing only those above it: `records` (format version, file names,
manifest), `quantise` (int8 codes), `dense` (the FAISS index of a segment), `segments`
(one segment, loaded), `stored_index` (a version's segments read as one), `versions`
(the live version, the writer lock, loading and verifying) and `writing`.
"""

from cite.core.store.dense import (
    DENSE_KINDS,
    FLAT_KIND,
    HNSW_EF_CONSTRUCTION,
    HNSW_EF_SEARCH,
    HNSW_FROM,
    HNSW_KIND,
    HNSW_M,
    IVF_FROM,
    IVF_KIND,
    IVF_NPROBE,
    IVF_PQ_BYTES,
    IVF_REFINE,
    SegmentedDense,
    build_dense_index,
    dense_index_kind,
    new_dense_index,
    ready_to_search,
    train_dense_index,
)
from cite.core.store.quantise import dequantise, quantise
from cite.core.store.records import (
    DEFAULT_INDEX,
    FORMAT_CHANGES,
    FORMAT_VERSION,
    PASSAGE_DTYPE,
    DocumentRecord,
    Manifest,
    Mismatch,
    SegmentRecord,
    document_from_json,
    incompatibility,
)
from cite.core.store.segments import Segment, SentenceArrays, _read_segment, passage_text
from cite.core.store.stored_index import Documents, Passages, RowsById, StoredIndex
from cite.core.store.versions import (
    Check,
    _verify,
    current_version,
    read_index,
    read_manifest,
    segment_folder,
    verify_index,
    writer_crashed,
    writer_lock,
)
from cite.core.store.writing import write_segment, write_version

# What the rest of cite imports from `cite.core.store`; retriever/shards.py loads single
# segments with `_read_segment` and `_verify`, so they are exported too.
__all__ = [
    "DEFAULT_INDEX",
    "DENSE_KINDS",
    "FLAT_KIND",
    "FORMAT_CHANGES",
    "FORMAT_VERSION",
    "HNSW_EF_CONSTRUCTION",
    "HNSW_EF_SEARCH",
    "HNSW_FROM",
    "HNSW_KIND",
    "HNSW_M",
    "IVF_FROM",
    "IVF_KIND",
    "IVF_NPROBE",
    "IVF_PQ_BYTES",
    "IVF_REFINE",
    "PASSAGE_DTYPE",
    "Check",
    "DocumentRecord",
    "Documents",
    "Manifest",
    "Mismatch",
    "Passages",
    "RowsById",
    "Segment",
    "SegmentRecord",
    "SegmentedDense",
    "SentenceArrays",
    "StoredIndex",
    "_read_segment",
    "_verify",
    "build_dense_index",
    "current_version",
    "dense_index_kind",
    "dequantise",
    "document_from_json",
    "incompatibility",
    "new_dense_index",
    "passage_text",
    "quantise",
    "read_index",
    "read_manifest",
    "ready_to_search",
    "segment_folder",
    "train_dense_index",
    "verify_index",
    "write_segment",
    "write_version",
    "writer_crashed",
    "writer_lock",
]
