"""Where a span of a document sits: its physical page and the section path of its headings."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from cite.core.types import Citation, Document

SECTION_SEPARATOR = " > "


@dataclass(frozen=True)
class Section:
    """The body of a section: `text[start:end]`, between its heading's line and the next heading."""

    start: int
    end: int
    path: str  # "2 Objects > 2.1.8 Lazy arguments"; "" before the first heading


def page_at(document: Document, offset: int) -> int | None:
    """The 1-based physical page holding `offset`, or None when the format has no pages."""
    if not document.pages:
        return None
    return max(1, bisect.bisect_right(document.pages, offset))


def citation(n: int, document: Document, start: int, end: int, section: str = "") -> Citation:
    """Citation [n] of `document.text[start:end]`: the quote character for character, the page
    it starts on and, when it runs over a page break, the page it ends on."""
    first, last = page_at(document, start), page_at(document, max(start, end - 1))
    quote = document.text[start:end]
    return Citation(n, document.doc, start, end, quote, first, section, None if last == first else last)


def heading_title(document: Document, start: int, end: int) -> str:
    return " ".join(document.text[start:end].split())


def sections(document: Document) -> list[Section]:
    """The document cut at its headings, each body with the path of headings above it.

    Heading lines belong to no body: they are context (the path), never quoted text."""
    found, path, cursor = [], [], 0
    for heading in document.headings:
        if heading.start > cursor:
            found.append(Section(cursor, heading.start, SECTION_SEPARATOR.join(t for _, t in path)))
        path = [(level, title) for level, title in path if level < heading.level]
        path.append((heading.level, heading_title(document, heading.start, heading.end)))
        cursor = max(cursor, heading.end)
    if cursor < len(document.text):
        found.append(Section(cursor, len(document.text), SECTION_SEPARATOR.join(t for _, t in path)))
    return found


def sections_at(document: Document, offsets: Sequence[int]) -> list[str]:
    """The section path of the body holding each offset ("" before the first heading, or in a
    heading line); the document's sections are found once for all of them."""
    bodies = sections(document)
    starts = [s.start for s in bodies]
    paths = []
    for offset in offsets:
        position = bisect.bisect_right(starts, offset) - 1
        paths.append(bodies[position].path if position >= 0 and offset < bodies[position].end else "")
    return paths


def body_spans(document: Document, start: int, end: int) -> list[tuple[int, int]]:
    """`[start, end)` without the heading lines inside it: the parts that may be quoted."""
    spans, cursor = [], start
    for heading in document.headings:
        if heading.end <= cursor or heading.start >= end:
            continue
        if heading.start > cursor:
            spans.append((cursor, heading.start))
        cursor = max(cursor, heading.end)
    if cursor < end:
        spans.append((cursor, end))
    return spans
