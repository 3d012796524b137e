"""The records that flow between stages: files -> indexer -> index -> retriever -> ui/eval."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


def content_id(*parts: str) -> str:
    """A stable id derived from content, so re-indexing the same text gives the same id."""
    digest = hashlib.sha1("\x1f".join(parts).encode("utf-8"))
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Heading:
    """A heading of a document: its line is `text[start:end]`; `level` 1 is a chapter."""

    start: int
    end: int
    level: int


@dataclass(frozen=True)
class Document:
    """A source document as read from disk. `text` is what cite extracted from the file
    (page furniture, navigation and tables of contents dropped); every offset indexes it."""

    doc: str  # path relative to the indexed folder, or a record's `_id`
    text: str
    title: str = ""
    source: str = ""  # the folder or file it was indexed from ("upload" for the UI's uploads)
    # Where each physical page starts in `text`, in order: page n (1-based) is
    # text[pages[n-1]:pages[n]]. Empty for formats without pages (a PPTX slide is a page).
    pages: tuple[int, ...] = ()
    headings: tuple[Heading, ...] = ()  # in text order; each heading is a line of its own

    @property
    def sha256(self) -> str:
        """What its passages are made from: title, text, pages and headings. A reader that now
        finds headings it missed changes the passages of a file whose text is the same."""
        content = self.title + "\x00" + self.text
        if self.pages or self.headings:  # (plain text and records keep the digest they had before)
            headings = ",".join(f"{h.start}:{h.end}:{h.level}" for h in self.headings)
            content += "\x00" + ",".join(map(str, self.pages)) + ";" + headings
        return hashlib.sha256(content.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Passage:
    """A span of a document. `text` is normalised; `start`/`end` index the original text."""

    id: str
    doc: str
    start: int
    end: int
    text: str
    page: int | None = None  # the physical page it starts on (None: the format has no pages)
    section: str = ""  # path of the headings it sits under, "2 Objects > 2.1.8 Lazy arguments"


@dataclass(frozen=True)
class Hit:
    """A passage ranked for a question, with the score of every stage that saw it."""

    passage: Passage
    score: float
    scores: dict[str, float] = field(default_factory=dict)
    sentence: tuple[int, int] | None = None  # original span of its best-matching sentence


@dataclass(frozen=True)
class Citation:
    """Where a claim comes from: `quote == original_text[start:end]`, character for character."""

    n: int
    doc: str
    start: int
    end: int
    quote: str
    page: int | None = None  # the physical page the quote starts on
    section: str = ""
    last_page: int | None = None  # the page it ends on, when it runs over a page break (else None)

    @property
    def end_page(self) -> int | None:
        """The physical page the quote ends on (`page` for a quote on one page)."""
        return self.last_page if self.last_page is not None else self.page


@dataclass(frozen=True)
class Claim:
    """One sentence of an answer, the citations it rests on, and how well they support it."""

    text: str
    citations: tuple[int, ...]
    supported: bool
    support: float


@dataclass(frozen=True)
class Answer:
    """An answer with its evidence; `text is None` when the system abstains."""

    text: str | None
    citations: tuple[Citation, ...]
    claims: tuple[Claim, ...]
    hits: tuple[Hit, ...]
    confidence: float
    abstained: bool
    question: str = ""
    version: str = ""  # the index version it was answered from (not part of the JSON)
