"""What one index run does, decided before anything is embedded or written: which documents
are added, changed, unchanged or removed, and which stored segments stay, retire or merge."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cite.core.config import SplitSettings
from cite.core.embedder import Embedder
from cite.core.errors import CiteError, DocumentError, IndexIncompatible
from cite.core.store import DocumentRecord, Segment, StoredIndex, current_version, incompatibility, read_index
from cite.core.types import Document

MAX_SEGMENTS = 8  # beyond this, the smallest segments merge into the one being written


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
