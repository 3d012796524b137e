"""How much of a machine one document may cost to read: the limits every reader keeps, in one
frozen record, so that a hostile upload (a zip bomb, a 5000-inch page, a spine that lists one
chapter a million times) is refused with the limit named instead of taking the server down."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

_MB = 1024 * 1024


class LimitExceeded(ValueError):
    """A document refused because reading it would pass one of its `ReadLimits`; the message
    names the limit. A ValueError, so the loader skips the file with that reason."""


@dataclass(frozen=True)
class ReadLimits:
    """The most that reading one file may take. Each default leaves a real document far inside
    it (reasons beside each field); only a file made to exhaust a machine comes near.

    Raises:
        ValueError: a limit that is not a positive number.
    """

    # Bytes on disk: the loader's size check (and the UI's upload limit); as before.
    file_bytes: int = 50 * _MB
    # One member of a zip package (DOCX, PPTX, ODT, EPUB) once inflated, counted as it inflates.
    # A 1,000-page manual's word/document.xml is some 5-20 MB (3-6 KB of text a page, in Word's
    # markup); 256 MB is over ten times that. Bombs inflate to GBs.
    member_bytes: int = 256 * _MB
    # All members of one package inflated together: python-docx and python-pptx hold every part
    # at once. Images, the bulk of a real package, are stored compressed and inflate ~1:1 from
    # a file of at most `file_bytes`, so a real package inflates to well under this.
    archive_bytes: int = 512 * _MB
    # Characters of one document's text, i.e. what is split and embedded. A dense 1,000-page
    # manual is ~6 million (one made here: 60 lines of 16 words a page), the Bible ~4.3 million.
    text_chars: int = 20_000_000
    # Pages of one PDF, checked from its page count before any page is read. The largest
    # manuals published as one PDF (a processor's full reference) run to ~5,000 pages.
    pdf_pages: int = 10_000
    # Pixels of one rendered page (OCR and display): the render scale is lowered to stay
    # under it. A letter page at OCR's 300 DPI is 8.4 MP, A3 17.4 MP; 25 MP is ~100 MB as RGBA.
    page_pixels: int = 25_000_000
    # Pages read by OCR in one document, and the time they may take altogether: pages past
    # either are left out, with a note. A 300-page scanned book takes 25 min at the 5 s that
    # tesseract took here on a letter page full of text, 40 min at 8 s a page (ocr.py's figure
    # on two busy shared cores).
    ocr_pages: int = 1_000
    ocr_seconds: float = 3_600.0
    # Entries of an EPUB's spine (each file is read once however often it is listed): a book
    # of 1,000 files, each listed once for each of 50 sections (as SiSU lists them), fits.
    spine_entries: int = 50_000

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"ReadLimits.{field.name} must be a positive number, not {value!r}")

    def check_text(self, chars: int) -> None:
        """Raises LimitExceeded when a document's text passes `text_chars`."""
        if chars > self.text_chars:
            raise LimitExceeded(f"its text passes the {self.text_chars:,}-character limit on a document")

    def check_pages(self, pages: int) -> None:
        """Raises LimitExceeded when a PDF has more than `pdf_pages` pages."""
        if pages > self.pdf_pages:
            raise LimitExceeded(f"{pages:,} pages, past the {self.pdf_pages:,}-page limit on a PDF")

    def check_spine(self, entries: int) -> None:
        """Raises LimitExceeded when an EPUB's spine has more than `spine_entries` entries."""
        if entries > self.spine_entries:
            raise LimitExceeded(f"{entries:,} spine entries, past the {self.spine_entries:,} limit on an EPUB's spine")

    def render_scale(self, width: float, height: float, scale: float) -> float:
        """`scale` (pixels per point), lowered where needed so that a `width` x `height` point
        page renders to at most `page_pixels` pixels (each side rounded up, as pdfium does)."""
        if width <= 0 or height <= 0:
            return scale
        scale = min(scale, (self.page_pixels / (width * height)) ** 0.5)
        while math.ceil(width * scale) * math.ceil(height * scale) > self.page_pixels:
            scale *= 0.999
        return scale


DEFAULT_LIMITS = ReadLimits()


def size_text(size: int) -> str:
    """A byte count as a user reads it: "256 MB", "1 GB", "300 KB", "900 bytes"."""
    for unit, step in (("GB", 1024 * _MB), ("MB", _MB), ("KB", 1024)):
        if size >= step:
            value = size / step
            return f"{value:.0f} {unit}" if value == int(value) or value >= 10 else f"{value:.1f} {unit}"
    return f"{size} bytes"
