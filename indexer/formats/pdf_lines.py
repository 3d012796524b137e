"""A PDF's pages as lines (text, baseline, size, source characters): read from each page's text
layer, or by OCR where a page is a scan (an image and hardly any text), within the OCR limits."""

from __future__ import annotations

import ctypes
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cite.indexer.formats.layout import Line, median
from cite.indexer.formats.limits import ReadLimits

# pdfium writes U+FFFE where a word was hyphenated at a line end, and joins the two lines;
# writing "-\n" back gives the form core.text.normalise joins ("secu-\nrity" -> "security").
_LINE_END_HYPHEN = "\ufffe"
_BEFORE_FOOTNOTE = set(".,;:!?)]\"'’”")
OCR_DPI = 300
# A page with an image and hardly any text (none, or a stamped page number) is a scan.
_SCAN_MAX_CHARS = 20


def default_ocr() -> Callable | None:
    """Tesseract's reader of page images when it is installed, else None."""
    from cite.indexer.formats import ocr

    return ocr.read_image if ocr.available() else None


@dataclass
class PdfPages:
    """A PDF's pages as lines, and what OCR made of the pages without a text layer."""

    pages: list[list[Line]] = field(default_factory=list)
    scanned: list[int] = field(default_factory=list)  # pages (0-based) without a text layer
    failed: list[tuple[int, str]] = field(default_factory=list)  # pages (1-based) OCR failed on, and why
    unread: list[int] = field(default_factory=list)  # scanned pages (0-based) left out past an OCR limit
    unread_why: str = ""  # the limit that left them out
    reduced: int = 0  # pages rendered under OCR_DPI to stay within the pixel limit
    lowest_dpi: float = OCR_DPI


def read_lines(document, reader: Callable | None, limits: ReadLimits) -> PdfPages:
    """Every page's lines. Pages without a text layer are read by `reader` if given (a scan's
    few printed characters, such as a stamped page number, are read again by OCR) until
    `limits.ocr_pages` pages or `limits.ocr_seconds` have gone to OCR."""
    read = PdfPages()
    ocr_pages, ocr_seconds = 0, 0.0
    for index in range(len(document)):
        page = document[index]
        lines = page_lines(page)
        if sum(len(line.text) for line in lines) < _SCAN_MAX_CHARS and _has_images(page):
            read.scanned.append(index)
            if reader is None:
                pass
            elif why := read.unread_why or _ocr_limit(limits, ocr_pages, ocr_seconds):
                read.unread_why = why
                read.unread.append(index)  # once a limit is reached, the rest are left out
            else:
                started = time.monotonic()
                scale = limits.render_scale(page.get_width(), page.get_height(), OCR_DPI / 72)
                if scale < OCR_DPI / 72:
                    read.reduced += 1
                    read.lowest_dpi = min(read.lowest_dpi, scale * 72)
                try:
                    lines = reader(page.render(scale=scale).to_pil(), scale) or lines
                except ValueError as error:  # one unreadable scan does not cost the rest
                    read.failed.append((index + 1, str(error)))
                ocr_pages += 1
                ocr_seconds += time.monotonic() - started
        read.pages.append(lines)
    return read


def _ocr_limit(limits: ReadLimits, pages: int, seconds: float) -> str:
    """The OCR limit reached once `pages` pages took `seconds`, in words; "" while none is."""
    if pages >= limits.ocr_pages:
        return f"the {limits.ocr_pages:,}-page limit on OCR in a document"
    if seconds >= limits.ocr_seconds:
        return f"the {limits.ocr_seconds:,g}-second limit on OCR in a document"
    return ""


def page_lines(page) -> list[Line]:
    """The lines of a page's text layer, in pdfium's reading order; footnote markers (small
    raised digits after a word) dropped so that "available.³ On" reads "available. On"."""
    import pypdfium2.raw as raw

    textpage = page.get_textpage()
    try:
        count = textpage.count_chars()
        if count <= 0:
            return []
        text = textpage.get_text_range()
        if len(text) != count:  # characters outside the BMP: read them one by one
            text = "".join(chr(raw.FPDFText_GetUnicode(textpage.raw, i) or 32) for i in range(count))
        height = page.get_height()
        x, y = ctypes.c_double(), ctypes.c_double()
        x_ref, y_ref = ctypes.byref(x), ctypes.byref(y)
        origin, font_size, handle = raw.FPDFText_GetCharOrigin, raw.FPDFText_GetFontSize, textpage.raw
        chars: list[tuple[str, int, float, float]] = []  # (char, index, baseline from top, size)
        lines: list[Line] = []
        for i, ch in enumerate(text):
            if ch in "\r\n" or ch == _LINE_END_HYPHEN:
                if ch == _LINE_END_HYPHEN:
                    chars.append(("-", i, chars[-1][2] if chars else 0.0, chars[-1][3] if chars else 0.0))
                lines.extend(_line(chars))
                chars = []
            elif ch == " ":
                chars.append((ch, i, 0.0, 0.0))  # a space's place and size are never used
            else:
                origin(handle, i, x_ref, y_ref)
                chars.append((ch, i, height - y.value, font_size(handle, i)))
        lines.extend(_line(chars))
        return lines
    finally:
        textpage.close()


def _line(chars: list[tuple[str, int, float, float]]) -> list[Line]:
    visible = [c for c in chars if not c[0].isspace()]
    if not visible:
        return []
    size = median([c[3] for c in visible])
    baseline = median([c[2] for c in visible])
    kept: list[tuple[str, int]] = []
    for n, (ch, index, _, _) in enumerate(chars):
        if ch.isdigit() and _raised(chars[n], size, baseline):
            m = n - 1
            while m >= 0 and chars[m][0].isdigit() and _raised(chars[m], size, baseline):
                m -= 1
            before = chars[m][0] if m >= 0 else " "
            if before.isalpha() or before in _BEFORE_FOOTNOTE:
                continue  # a footnote marker glued to a word ("available.3"); "10⁶" or "cos⁻¹" are kept
        if "\x80" <= ch <= "\x9f":  # C1 controls: an unmapped bullet glyph at a line start
            ch = "•" if not kept else ""
            if not ch:
                continue
        if ch.isspace():
            if kept and kept[-1][0] == " ":
                continue  # one space between words, so that a line's text is as written to the document
            ch = " "
        kept.append((ch, index))
    text = "".join(c for c, _ in kept)
    lead = len(text) - len(text.lstrip())
    text = text.strip()
    if not text:
        return []
    return [Line(text, baseline, size, tuple(i for _, i in kept[lead : lead + len(text)]))]


def _raised(char: tuple[str, int, float, float], size: float, baseline: float) -> bool:
    return char[3] < 0.85 * size and char[2] < baseline - 0.2 * size


def _has_images(page) -> bool:
    import pypdfium2.raw as raw

    return any(True for _ in page.get_objects(filter=[raw.FPDF_PAGEOBJ_IMAGE], max_depth=2))
