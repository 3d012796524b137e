"""Office documents: .docx (python-docx; heading styles -> headings), .pptx (python-pptx; a
slide is a page, its title a heading) and .odt (OpenDocument's content.xml; text:h -> headings).
Tables of contents that a word processor generated are dropped. Every member of a package is
inflated within `ReadLimits` before python-docx or python-pptx, which read parts whole, see it."""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from cite.indexer.formats import Extracted
from cite.indexer.formats.archive import Archive
from cite.indexer.formats.builder import TextBuilder
from cite.indexer.formats.limits import DEFAULT_LIMITS, LimitExceeded, ReadLimits

_HEADING_STYLE = re.compile(r"^heading\s*([1-9])$", re.IGNORECASE)
_TOC_STYLE = re.compile(r"^(?:toc|contents)\s*(?:\d|heading)?$", re.IGNORECASE)
_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def read_docx(file: Path, limits: ReadLimits = DEFAULT_LIMITS) -> Extracted:
    """Paragraphs and tables in document order; "Heading N" styles (and "Title") are headings.

    Raises:
        LimitExceeded: a part inflates, or the text grows, past `limits`.
        ValueError: not a readable .docx file.
    """
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    with _checked_package(file, ".docx", limits) as handle, _damaged_as_unreadable(".docx"):
        document = docx.Document(handle)
        builder = TextBuilder(limits)
        title = ""
        for child in document.element.body.iterchildren():
            tag = child.tag.rsplit("}", 1)[-1]
            if tag == "p":
                paragraph = Paragraph(child, document)
                style = (paragraph.style.name if paragraph.style is not None else "") or ""
                if _TOC_STYLE.match(style):
                    continue  # an entry of a generated table of contents
                text = paragraph.text
                level = _docx_level(paragraph)
                if style.lower() == "title":
                    title = title or text.strip()
                    builder.heading(text, 1)
                elif level:
                    builder.heading(text, level)
                else:
                    builder.paragraph(text)
            elif tag == "tbl":
                for row in _table_rows(Table(child, document)):
                    builder.paragraph(row)
            elif tag == "sdt" and _is_toc_block(child):
                continue
            elif tag == "sdt":
                for inner in child.iter("{*}p"):
                    builder.paragraph(Paragraph(inner, document).text)
        title = (document.core_properties.title or "").strip() or title
    return builder.build(title)


def _docx_level(paragraph) -> int:
    """A heading's level from its style ("Heading 2", or a style based on one) or the outline
    level set on the paragraph or its style; 0 for body text."""
    outline = paragraph._p.find(f"{{{_W}}}pPr/{{{_W}}}outlineLvl")
    style = paragraph.style
    for _ in range(10):  # styles inherit from base styles; a loop in a damaged file must end
        if outline is not None:
            break
        if style is None:
            return 0
        if heading := _HEADING_STYLE.match(style.name or ""):
            return int(heading.group(1))
        outline = style.element.find(f"{{{_W}}}pPr/{{{_W}}}outlineLvl")
        style = style.base_style
    if outline is None:
        return 0
    value = int(outline.get(f"{{{_W}}}val", "9"))
    return value + 1 if value < 9 else 0  # 9 is Word's "body text"


def _is_toc_block(element) -> bool:
    """Word wraps a generated table of contents in a content control of the "Table of Contents" gallery."""
    return any("Table of Contents" in (g.get(f"{{{_W}}}val") or "") for g in element.iter(f"{{{_W}}}docPartGallery"))


def _table_rows(table) -> Iterator[str]:
    for row in table.rows:
        cells: list[str] = []
        for cell in row.cells:
            text = " ".join(cell.text.split())
            if text and (not cells or cells[-1] != text):  # a merged cell repeats itself
                cells.append(text)
        if cells:
            yield " \t ".join(cells)


@contextmanager
def _checked_package(file: Path, kind: str, limits: ReadLimits) -> Iterator[BinaryIO]:
    """The open file, once every member of its zip package has been inflated within `limits`:
    python-docx and python-pptx read each part whole, so they are handed only a package known to
    fit. The same open file is checked and read, so what was checked is what is parsed.

    Raises:
        LimitExceeded: a member, or all of them, inflate past `limits`.
        ValueError: not a zip package.
    """
    with file.open("rb") as handle:
        try:
            with zipfile.ZipFile(handle) as package:
                Archive(package, limits).check_all()
        except zipfile.BadZipFile as error:
            raise ValueError(f"not a readable {kind} file ({error})") from None
        handle.seek(0)
        yield handle


@contextmanager
def _damaged_as_unreadable(kind: str) -> Iterator[None]:
    """python-docx and python-pptx raise many kinds of error on a damaged package: each becomes a
    ValueError saying so. A file that could not be read, memory running out, or a limit passed
    go through as they are: the loader reports those in their own words."""
    try:
        yield
    except (OSError, MemoryError, LimitExceeded):
        raise
    except Exception as error:  # noqa: BLE001 - the libraries' error kinds are not documented
        raise ValueError(f"not a readable {kind} file ({type(error).__name__}: {error})") from None


def read_pptx(file: Path, limits: ReadLimits = DEFAULT_LIMITS) -> Extracted:
    """Each slide a page: its title as a heading, then its text frames and tables top to bottom,
    then the speaker's notes.

    Raises:
        LimitExceeded: a part inflates, or the text grows, past `limits`.
        ValueError: not a readable .pptx file.
    """
    from pptx import Presentation

    with _checked_package(file, ".pptx", limits) as handle, _damaged_as_unreadable(".pptx"):
        presentation = Presentation(handle)
        builder = TextBuilder(limits)
        for slide in presentation.slides:
            builder.new_page()
            title_shape = slide.shapes.title
            if title_shape is not None and title_shape.has_text_frame:
                builder.heading(title_shape.text_frame.text, 1)
            for shape in sorted(_shapes(slide.shapes), key=lambda s: (s.top or 0, s.left or 0)):
                if title_shape is not None and shape.shape_id == title_shape.shape_id:
                    continue
                if _is_slide_furniture(shape):
                    continue
                if shape.has_text_frame:
                    for paragraph in shape.text_frame.paragraphs:
                        builder.paragraph("".join(run.text for run in paragraph.runs) or paragraph.text)
                elif getattr(shape, "has_table", False) and shape.has_table:
                    for row in shape.table.rows:
                        cells = [" ".join(c.text.split()) for c in row.cells]
                        builder.paragraph(" \t ".join(c for c in cells if c))
            if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
                builder.paragraph(slide.notes_slide.notes_text_frame.text)
        title = (presentation.core_properties.title or "").strip()
    return builder.build(title)


def _is_slide_furniture(shape) -> bool:
    """A slide's footer, number or date: the same on every slide, like a PDF's running footer."""
    from pptx.enum.shapes import PP_PLACEHOLDER

    if not shape.is_placeholder:
        return False
    return shape.placeholder_format.type in {PP_PLACEHOLDER.FOOTER, PP_PLACEHOLDER.SLIDE_NUMBER, PP_PLACEHOLDER.DATE}


def _shapes(shapes) -> Iterator:
    """Shapes with text, groups opened."""
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    for shape in shapes:
        if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
            yield from _shapes(shape.shapes)
        else:
            yield shape


_ODF_TEXT = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
_ODF_TABLE = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"
_ODF_OFFICE = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
_DC = "http://purl.org/dc/elements/1.1/"


def read_odt(file: Path, limits: ReadLimits = DEFAULT_LIMITS) -> Extracted:
    """An OpenDocument text: text:h are headings (text:outline-level their level), text:p and
    list items paragraphs, table rows one paragraph each; generated contents and indexes dropped,
    footnotes after the paragraph that cites them.

    Raises:
        LimitExceeded: content.xml inflates, or the text grows, past `limits`.
        ValueError: not a readable .odt file.
    """
    from lxml import etree

    try:
        with zipfile.ZipFile(file) as package:
            archive = Archive(package, limits)
            content = archive.read("content.xml")
            meta = archive.read("meta.xml") if "meta.xml" in package.namelist() else b""
        parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
        root = etree.fromstring(content, parser)
        title = ""
        if meta:
            found = etree.fromstring(meta, parser).find(f".//{{{_DC}}}title")
            title = (found.text or "").strip() if found is not None else ""
    except (zipfile.BadZipFile, KeyError, etree.XMLSyntaxError) as error:
        raise ValueError(f"not a readable .odt file ({error})") from None
    body = root.find(f"{{{_ODF_OFFICE}}}body/{{{_ODF_OFFICE}}}text")
    if body is None:
        raise ValueError("not a readable .odt file (no office:text body; is it a spreadsheet or a drawing?)")
    builder = TextBuilder(limits)
    _odf_blocks(body, builder)
    return builder.build(title)


_SKIPPED_ODF = {f"{{{_ODF_TEXT}}}{name}" for name in ("table-of-content", "alphabetical-index", "illustration-index",
                                                       "table-index", "object-index", "user-index", "bibliography",
                                                       "tracked-changes", "sequence-decls")}  # fmt: skip


def _odf_blocks(element, builder: TextBuilder) -> None:
    for child in element:
        tag = child.tag
        if tag in _SKIPPED_ODF:
            continue
        if tag == f"{{{_ODF_TEXT}}}h":
            text, notes = _odf_inline(child)
            builder.heading(text, int(child.get(f"{{{_ODF_TEXT}}}outline-level", "1") or 1))
            for note in notes:
                builder.paragraph(note)
        elif tag == f"{{{_ODF_TEXT}}}p":
            text, notes = _odf_inline(child)
            builder.paragraph(text)
            for note in notes:
                builder.paragraph(note)
        elif tag == f"{{{_ODF_TABLE}}}table-row":
            cells = [" ".join(_odf_inline(cell)[0].split()) for cell in child.iter(f"{{{_ODF_TABLE}}}table-cell")]
            builder.paragraph(" \t ".join(c for c in cells if c))
        else:  # lists, sections, tables, frames: their paragraphs in order
            _odf_blocks(child, builder)


def _odf_inline(element) -> tuple[str, list[str]]:
    """A paragraph's text (text:s, text:tab and text:line-break spelled out) and its footnotes."""
    parts: list[str] = [element.text or ""]
    notes: list[str] = []
    for child in element:
        name = child.tag.rsplit("}", 1)[-1] if isinstance(child.tag, str) else ""
        if name == "s":
            parts.append(" " * int(child.get(f"{{{_ODF_TEXT}}}c", "1") or 1))
        elif name == "tab":
            parts.append("\t")
        elif name == "line-break":
            parts.append("\n")
        elif name == "note":
            body = child.find(f"{{{_ODF_TEXT}}}note-body")
            if body is not None:
                notes.append(" ".join(_odf_inline(p)[0] for p in body.iter(f"{{{_ODF_TEXT}}}p")))
        elif name in {"bookmark", "bookmark-start", "bookmark-end", "reference-mark", "annotation", "change"}:
            pass
        else:
            text, inner = _odf_inline(child)
            parts.append(text)
            notes.extend(inner)
        parts.append(child.tail or "")
    return "".join(parts), notes
