"""Assembles a document's text block by block, recording where its headings and pages start,
so that every reader produces offsets the same way."""

from __future__ import annotations

import re

from cite.core.types import Heading
from cite.indexer.formats import Extracted
from cite.indexer.formats.limits import ReadLimits

_SPACES = re.compile(r"\s+")


class TextBuilder:
    """Text made of paragraphs (separated by a blank line), lines (a line break within a
    paragraph) and headings (a paragraph of one line). Page starts are recorded lazily, at the
    first block written after `new_page()`, so an empty page starts where the next one does.
    Given `limits`, a block that takes the text past `text_chars` raises LimitExceeded, so a
    reader stops as soon as a document is too long rather than after building all of it."""

    def __init__(self, limits: ReadLimits | None = None) -> None:
        self._limits = limits
        self._parts: list[str] = []
        self._size = 0
        self._headings: list[Heading] = []
        self._pages: list[int] = []
        self._pending_pages = 0
        self._break_next = False  # the block after a heading starts a new paragraph

    def new_page(self) -> None:
        """Marks that the next block starts a new physical page."""
        self._pending_pages += 1
        self._break_next = True

    def paragraph(self, text: str) -> int:
        """Starts a new paragraph (a blank line before it unless it is the first); returns its offset."""
        return self._write(text.strip(), "\n\n")

    def line(self, text: str) -> int:
        """Continues the current paragraph on a new line (a new paragraph after a heading or page);
        returns its offset."""
        return self._write(text.strip(), "\n\n" if self._break_next else "\n")

    def heading(self, text: str, level: int) -> int:
        """A heading as a paragraph of its own; inner line breaks become spaces. Returns its offset."""
        line = _SPACES.sub(" ", text).strip()
        if not line:
            return self._size
        start = self._write(line, "\n\n")
        self._headings.append(Heading(start, start + len(line), max(1, min(level, 6))))
        self._break_next = True
        return start

    def _write(self, text: str, separator: str) -> int:
        """Appends `text` after `separator` (none before the first block); returns its offset."""
        if not text:
            return self._size
        if self._limits is not None:
            self._limits.check_text(self._size + len(separator) + len(text))
        if self._size:
            self._parts.append(separator)
            self._size += len(separator)
        self._pages.extend([self._size] * self._pending_pages)
        self._pending_pages = 0
        self._break_next = False
        self._parts.append(text)
        self._size += len(text)
        return self._size - len(text)

    @property
    def size(self) -> int:
        return self._size

    def build(self, title: str = "", notes: tuple[str, ...] = ()) -> Extracted:
        """The text so far; with no title given, the first heading is the title."""
        text = "".join(self._parts)
        pages = tuple(self._pages) + (self._size,) * self._pending_pages
        if not title and self._headings:
            first = self._headings[0]
            title = text[first.start : first.end]
        return Extracted(text, _SPACES.sub(" ", title).strip(), pages, tuple(self._headings), notes)
