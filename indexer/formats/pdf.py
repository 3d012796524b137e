"""PDF -> text with the page of every character, page furniture, tables of contents and
indexes dropped, and headings on lines of their own (from the outline, else font sizes).
Pages without a text layer are read by OCR when tesseract is installed."""

from __future__ import annotations

import ctypes
import functools
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cite.indexer.formats import Extracted
from cite.indexer.formats.builder import TextBuilder
from cite.indexer.formats.layout import (
    Key,
    Line,
    OutlineItem,
    body_size,
    deeper_headings,
    furniture,
    leader_runs,
    median,
    outline_headings,
    reference_pages,
    size_headings,
)
from cite.indexer.formats.limits import DEFAULT_LIMITS, ReadLimits

# pdfium writes U+FFFE where a word was hyphenated at a line end, and joins the two lines;
# writing "-\n" back gives the form core.text.normalise joins ("secu-\nrity" -> "security").
_LINE_END_HYPHEN = "\ufffe"
_BEFORE_FOOTNOTE = set(".,;:!?)]\"'’”")
_OCR_DPI = 300
# A page with an image and hardly any text (none, or a stamped page number) is a scan.
_SCAN_MAX_CHARS = 20
_MIN_OUTLINE_MATCH = 0.5  # below this share of outline entries found, font sizes find headings
# PDFium is not thread-safe: one caller at a time in a process. The server reads uploads in a
# worker process (indexer.isolated), so there this lock only orders the pages it renders to show.
_PDFIUM_LOCK = threading.RLock()
_JUNK_TITLE = re.compile(r"^(?:untitled|microsoft word - .*|document\d*|\s*)$", re.IGNORECASE)


def read_pdf(file: Path, ocr: Callable | None = None, limits: ReadLimits = DEFAULT_LIMITS) -> Extracted:
    """Reads a PDF; `ocr(image, scale) -> list[Line]` reads pages without a text layer, rendered
    at `scale` pixels per point (default: tesseract when installed). Pages are rendered within
    `limits.page_pixels`, and OCR stops at `limits.ocr_pages` or `limits.ocr_seconds` (the pages
    left are named in a note).

    Raises:
        LimitExceeded: more pages than `limits.pdf_pages` (known before any page is read), or
            text past `limits.text_chars`.
        ValueError: the file is not a readable PDF, is encrypted, or has no text at all.
    """
    reader = ocr or _default_ocr()
    with _PDFIUM_LOCK:
        document = _open(file)
        try:
            limits.check_pages(len(document))
            read = _read_lines(document, reader, limits)
            outline = _outline(document)
            title = _metadata_title(document)
        finally:
            document.close()
    pages, scanned, failed = read.pages, read.scanned, read.failed
    notes: tuple[str, ...] = ()
    if scanned and reader is None:
        notes = (f"{len(scanned)} of {len(pages)} pages have no text layer and were not read (install tesseract-ocr)",)
    elif by_ocr := len(scanned) - len(failed) - len(read.unread):
        notes = (f"{by_ocr} of {len(pages)} pages read by OCR",)
    if read.unread:
        notes += (f"{len(read.unread)} of {len(pages)} pages not read by OCR: past {read.unread_why}",)
    if read.reduced:
        pages_at = "1 page" if read.reduced == 1 else f"{read.reduced} pages"
        notes += (
            f"{pages_at} read by OCR at under {_OCR_DPI} DPI (down to {read.lowest_dpi:.0f}), within the "
            f"{limits.page_pixels:,}-pixel limit on a rendered page",
        )
    notes += tuple(f"page {n}: {reason}" for n, reason in failed)
    extracted = _assemble(pages, outline, title, notes, None, limits)
    if not extracted.text.strip():
        if scanned and reader is None:
            raise ValueError("a scanned PDF without a text layer; install tesseract-ocr to read it by OCR")
        raise ValueError("empty: no text to index" + (f" ({failed[0][1]})" if failed else ""))
    return extracted


def _default_ocr() -> Callable | None:
    from cite.indexer.formats import ocr

    return ocr.read_image if ocr.available() else None


def _open(file: Path):
    import pypdfium2 as pdfium

    try:
        return pdfium.PdfDocument(str(file))
    except pdfium.PdfiumError as error:
        if "password" in str(error).lower():
            raise ValueError("an encrypted PDF (it needs a password); save an unencrypted copy") from None
        raise ValueError(f"not a readable PDF ({error})") from None


@dataclass
class _Read:
    """A PDF's pages as lines, and what OCR made of the pages without a text layer."""

    pages: list[list[Line]] = field(default_factory=list)
    scanned: list[int] = field(default_factory=list)  # pages (0-based) without a text layer
    failed: list[tuple[int, str]] = field(default_factory=list)  # pages (1-based) OCR failed on, and why
    unread: list[int] = field(default_factory=list)  # scanned pages (0-based) left out past an OCR limit
    unread_why: str = ""  # the limit that left them out
    reduced: int = 0  # pages rendered under _OCR_DPI to stay within the pixel limit
    lowest_dpi: float = _OCR_DPI


def _read_lines(document, reader: Callable | None, limits: ReadLimits) -> _Read:
    """Every page's lines. Pages without a text layer are read by `reader` if given (a scan's
    few printed characters, such as a stamped page number, are read again by OCR) until
    `limits.ocr_pages` pages or `limits.ocr_seconds` have gone to OCR."""
    read = _Read()
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
                scale = limits.render_scale(page.get_width(), page.get_height(), _OCR_DPI / 72)
                if scale < _OCR_DPI / 72:
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


def assemble(
    pages: Sequence[Sequence[Line]], outline: Sequence[OutlineItem] = (), title: str = "", notes: tuple[str, ...] = ()
) -> Extracted:
    """The document's text from its pages' lines, without furniture, contents and index pages."""
    return _assemble(pages, outline, title, notes, None, None)


Trace = list[tuple[int, int, tuple[int, ...]]]  # (offset in text, page index, source char of each char)


def _assemble(pages, outline, title, notes, trace: Trace | None, limits: ReadLimits | None) -> Extracted:
    drop = furniture(pages)
    references = reference_pages(pages, drop)
    for p, lines in enumerate(pages):
        drop.update((p, i) for i in leader_runs(lines))
        if p in references:
            drop.update((p, i) for i in range(len(lines)))
    headings = outline_headings(pages, outline, drop)
    by_size = size_headings(pages, drop, body_size(pages))
    if len(headings) < _MIN_OUTLINE_MATCH * len(outline) or not outline:
        headings = by_size
    else:
        headings = deeper_headings(pages, headings, by_size)
    builder = TextBuilder(limits)
    for p, lines in enumerate(pages):
        builder.new_page()
        _write_page(builder, p, lines, drop, headings, trace)
    return builder.build(title, notes)


def _write_page(
    builder: TextBuilder, p: int, lines: Sequence[Line], drop: set[Key], headings: dict, trace: Trace | None
) -> None:
    kept = [i for i in range(len(lines)) if (p, i) not in drop]
    pitches = [lines[b].baseline - lines[a].baseline for a, b in zip(kept, kept[1:], strict=False)]
    # The usual line pitch: the lower quartile, as paragraphs, lists and code widen many gaps.
    rising = sorted(d for d in pitches if d > 0)
    usual = rising[len(rising) // 4] if rising else 0.0
    previous: Line | None = None
    skip = 0
    for i in kept:
        if skip:
            skip -= 1
            continue
        line = lines[i]
        if (p, i) in headings:
            level, count, cut = headings[(p, i)]
            parts = [lines[j] for j in range(i, i + count)]
            if cut:  # a run-in heading: the title, then the rest of its line as a paragraph
                rest = line.text[cut:].lstrip()
                parts = [Line(line.text[:cut], line.baseline, line.size, line.chars[:cut])]
                line = Line(rest, line.baseline, line.size, line.chars[len(line.text) - len(rest) :])
            offset = builder.heading(" ".join(part.text for part in parts), level)
            if trace is not None:
                trace.append((offset, p, sum(((-1, *part.chars) for part in parts), ())[1:]))
            skip = count - 1
            previous = lines[i + count - 1]
            if not cut:
                continue
            offset = builder.paragraph(line.text)
            if trace is not None:
                trace.append((offset, p, line.chars))
            continue
        gap = line.baseline - previous.baseline if previous else 0.0
        if previous is None or gap < 0 or (usual and gap > 1.3 * usual):
            offset = builder.paragraph(line.text)  # a blank line: more space than between lines, or a new column
        else:
            offset = builder.line(line.text)
        if trace is not None:
            trace.append((offset, p, line.chars))
        previous = line


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


def _outline(document) -> list[OutlineItem]:
    items = []
    try:
        for bookmark in document.get_toc(max_depth=8):
            dest = bookmark.get_dest()
            index = dest.get_index() if dest is not None else None
            if index is not None and bookmark.get_title().strip():
                items.append(OutlineItem(bookmark.get_title().strip(), bookmark.level + 1, index))
    except Exception:  # noqa: BLE001 - a damaged outline must not cost the document its text
        return []
    return items


def _metadata_title(document) -> str:
    try:
        title = (document.get_metadata_dict().get("Title") or "").strip()
    except Exception:  # noqa: BLE001 - damaged metadata: fall back to the first heading
        return ""
    return "" if _JUNK_TITLE.match(title) else title


def page_image(
    file: Path,
    page: int,
    span: tuple[int, int] | None = None,
    text: str | None = None,
    scale: float = 2.0,
    limits: ReadLimits = DEFAULT_LIMITS,
):
    """Page `page` (1-based) of a PDF as a PIL image, the characters of `span` (offsets into the
    text `read_pdf` gives, i.e. Document.text) highlighted. The page is read again the same way
    (within the same `limits`) to find each character's box; given `text`, no highlight is drawn
    unless the file still reads as that text (it changed since it was indexed). `scale` is
    lowered where the page would render past `limits.page_pixels`.

    Raises:
        ValueError: not a readable PDF, or no such page.
    """
    with _PDFIUM_LOCK:
        return _page_image(file, page, span, text, scale, limits)


def _page_image(
    file: Path, page: int, span: tuple[int, int] | None, text: str | None, scale: float, limits: ReadLimits
):
    from PIL import Image, ImageDraw

    document = _open(file)
    try:
        if not 1 <= page <= len(document):
            raise ValueError(f"no page {page}: the PDF has {len(document)} pages")
        pdf_page = document[page - 1]
        scale = limits.render_scale(pdf_page.get_width(), pdf_page.get_height(), scale)
        image = pdf_page.render(scale=scale).to_pil().convert("RGBA")
        if span is None:
            return image.convert("RGB")
        boxes = _span_boxes(file, document, page - 1, span, text, limits)
        overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(overlay)
        height = pdf_page.get_height()
        for left, bottom, right, top in boxes:
            draw.rectangle([left * scale, (height - top) * scale, right * scale, (height - bottom) * scale],
                           fill=(255, 221, 0, 110))  # fmt: skip
        return Image.alpha_composite(image, overlay).convert("RGB")
    finally:
        document.close()


@functools.lru_cache(maxsize=4)
def _traced(path: str, mtime_ns: int, size: int, limits: ReadLimits) -> tuple[str, Trace]:
    """A file's text and where each of its characters came from (cached: a reader looking at
    one document's pages one after another pays for reading it once)."""
    document = _open(Path(path))
    try:
        limits.check_pages(len(document))
        pages = _read_lines(document, _default_ocr(), limits).pages
        trace: Trace = []
        return _assemble(pages, _outline(document), "", (), trace, limits).text, trace
    finally:
        document.close()


def _span_boxes(
    file: Path, document, index: int, span: tuple[int, int], text: str | None, limits: ReadLimits
) -> list[tuple[float, ...]]:
    """One box per line of the span on page `index`: the union of its characters' boxes."""
    import pypdfium2.raw as raw

    stat = file.stat()
    read, trace = _traced(str(file.resolve()), stat.st_mtime_ns, stat.st_size, limits)
    if text is not None and read != text:
        return []
    start, end = span
    textpage = document[index].get_textpage()
    try:
        left, right, bottom, top = (ctypes.c_double() for _ in range(4))
        boxes = []
        for offset, p, chars in trace:
            if p != index or offset >= end or offset + len(chars) <= start:
                continue
            rects = []
            for k, char in enumerate(chars):
                if char >= 0 and start <= offset + k < end:
                    raw.FPDFText_GetCharBox(textpage.raw, char, *(ctypes.byref(v) for v in (left, right, bottom, top)))
                    if right.value > left.value:
                        rects.append((left.value, bottom.value, right.value, top.value))
            if rects:
                boxes.append((min(r[0] for r in rects), min(r[1] for r in rects),
                              max(r[2] for r in rects), max(r[3] for r in rects)))  # fmt: skip
        return boxes
    finally:
        textpage.close()
