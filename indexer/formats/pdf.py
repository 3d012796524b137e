"""PDF -> text with the page of every character, page furniture, tables of contents and
indexes dropped, and headings on lines of their own (from the outline, else font sizes).
Pages without a text layer are read by OCR when tesseract is installed."""

from __future__ import annotations

import ctypes
import functools
import re
import threading
from collections.abc import Callable, Sequence
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
    outline_headings,
    reference_pages,
    size_headings,
)
from cite.indexer.formats.limits import DEFAULT_LIMITS, ReadLimits
from cite.indexer.formats.pdf_lines import OCR_DPI, default_ocr, read_lines

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
    reader = ocr or default_ocr()
    with _PDFIUM_LOCK:
        document = _open(file)
        try:
            limits.check_pages(len(document))
            read = read_lines(document, reader, limits)
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
            f"{pages_at} read by OCR at under {OCR_DPI} DPI (down to {read.lowest_dpi:.0f}), within the "
            f"{limits.page_pixels:,}-pixel limit on a rendered page",
        )
    notes += tuple(f"page {n}: {reason}" for n, reason in failed)
    extracted = _assemble(pages, outline, title, notes, None, limits)
    if not extracted.text.strip():
        if scanned and reader is None:
            raise ValueError("a scanned PDF without a text layer; install tesseract-ocr to read it by OCR")
        raise ValueError("empty: no text to index" + (f" ({failed[0][1]})" if failed else ""))
    return extracted


def _open(file: Path):
    import pypdfium2 as pdfium

    try:
        return pdfium.PdfDocument(str(file))
    except pdfium.PdfiumError as error:
        if "password" in str(error).lower():
            raise ValueError("an encrypted PDF (it needs a password); save an unencrypted copy") from None
        raise ValueError(f"not a readable PDF ({error})") from None


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
        pages = read_lines(document, default_ocr(), limits).pages
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
