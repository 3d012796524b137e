"""The index format's records: the version number, file names, and the manifest that names
a version's segments and documents (the layout: see `cite.core.store`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from cite.core.lexical import TOKENIZER_NAME
from cite.core.types import Document, Heading

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
# Names under ROOT that both the reader (versions.py) and the writer (writing.py) use.
_CURRENT = "CURRENT"
_MANIFEST = "manifest.json"
_SEGMENTS = "segments"
_WRITING = ".writing"
_CRASHED = ".crashed"


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
