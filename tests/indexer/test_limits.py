"""Hostile files, made here at a few MB at most: each is refused (or read in part, with a note)
with the limit it passed named, having cost little memory and time."""

from __future__ import annotations

import resource
import time
import tracemalloc
import zipfile
from pathlib import Path

import pytest
from cite.indexer.formats.layout import Line
from cite.indexer.formats.limits import DEFAULT_LIMITS, ReadLimits
from cite.indexer.loaders import load_paths

from tests.helpers import write_epub

_MB = 1024 * 1024
# A paragraph of WordprocessingML, and a text box of PresentationML; 300 MB of either deflate to under 1 MB.
_PARAGRAPH = b"<w:p><w:r><w:t>Nothing but filler text.</w:t></w:r></w:p>"
_TEXT_BOX = b"<p:sp><p:txBody><a:p><a:r><a:t>Nothing but filler text.</a:t></a:r></a:p></p:txBody></p:sp>"
# (head, repeated body, tail) of a bomb's word/document.xml and ppt/slides/slide1.xml
_W = (b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>',
      _PARAGRAPH, b"</w:body></w:document>")  # fmt: skip
_P = (b'<p:sld xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" '
      b'xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main"><p:cSld><p:spTree>',
      _TEXT_BOX, b"</p:spTree></p:cSld></p:sld>")  # fmt: skip


def _rezip(source: Path, target: Path, members: dict[str, tuple[bytes, bytes, int, bytes]]) -> Path:
    """`source`'s package with `members` added or replaced, each `(head, body, size, tail)`: the
    head, then the body repeated to `size` bytes, then the tail. Deflated as written, so that a
    member of hundreds of MB is never held whole here either."""
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as package:
        for info in original.infolist():
            if info.filename not in members:
                package.writestr(info, original.read(info))
        for name, (head, body, size, tail) in members.items():
            with package.open(name, "w", force_zip64=True) as member:
                member.write(head)
                chunk, written = body * max(1, _MB // len(body)), 0
                while written < size:
                    written += member.write(chunk)
                member.write(tail)
    return target


def _docx(path: Path) -> Path:
    import docx

    document = docx.Document()
    document.add_heading("A real document", level=1)
    document.add_paragraph("Made with python-docx, then given a bomb for a body.")
    document.save(path)
    return path


def _pptx(path: Path) -> Path:
    from pptx import Presentation

    deck = Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[1])
    slide.shapes.title.text = "A real deck"
    deck.save(path)
    return path


def _peak_while(read) -> tuple[object, int]:
    """What `read()` returns, and the most memory Python held meanwhile (bytes)."""
    tracemalloc.start()
    try:
        result = read()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    ("name", "make", "member", "xml"),
    [("bomb.docx", _docx, "word/document.xml", _W), ("bomb.pptx", _pptx, "ppt/slides/slide1.xml", _P)],
)
def test_an_office_zip_bomb_is_refused_by_streaming_before_any_parsing(tmp_path, name, make, member, xml):
    real = make(tmp_path / ("real" + Path(name).suffix))
    head, body, tail = xml
    bomb = _rezip(real, tmp_path / name, {member: (head, body, 300 * _MB, tail)})
    assert bomb.stat().st_size < 2 * _MB
    with zipfile.ZipFile(bomb) as package:
        assert package.getinfo(member).file_size >= 300 * _MB
    started = time.monotonic()
    loaded, peak = _peak_while(lambda: load_paths([bomb]))
    assert loaded.documents == []
    [skipped] = loaded.skipped
    assert skipped.reason == f"{member} inflates past the 256 MB limit on an archive member"
    assert peak < 8 * _MB  # a chunk or two, not the member (python-docx would hold all 300 MB, then parse it)
    assert time.monotonic() - started < 5


def test_many_members_are_refused_past_the_limit_on_a_whole_package(tmp_path):
    real = _docx(tmp_path / "real.docx")
    parts = {f"word/media/filler{n}.xml": (b"<x>", b" " * 1024, 3 * _MB, b"</x>") for n in range(4)}
    bomb = _rezip(real, tmp_path / "many.docx", parts)
    limits = ReadLimits(member_bytes=4 * _MB, archive_bytes=10 * _MB)
    [skipped] = load_paths([bomb], limits=limits).skipped
    assert skipped.reason == "its members inflate past the 10 MB limit on an archive"
    # The same package within limits reads as the document it is.
    [document] = load_paths([bomb], limits=ReadLimits(member_bytes=4 * _MB, archive_bytes=20 * _MB)).documents
    assert "A real document" in document.text


def test_an_odt_whose_content_inflates_past_the_limit_is_refused(tmp_path):
    with zipfile.ZipFile(tmp_path / "bomb.odt", "w", zipfile.ZIP_DEFLATED) as package:
        package.writestr(zipfile.ZipInfo("mimetype"), "application/vnd.oasis.opendocument.text")
        package.writestr("content.xml", b"<office:document-content>" + b" " * (8 * _MB))
    [skipped] = load_paths([tmp_path], limits=ReadLimits(member_bytes=2 * _MB)).skipped
    assert skipped.reason == "content.xml inflates past the 2 MB limit on an archive member"


def _image_pdf(path: Path, pages: list[tuple[float, float]]) -> Path:
    """A PDF of image-only pages (no text layer) of the sizes given, in points."""
    pytest.importorskip("reportlab")
    from PIL import Image
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(path))
    for width, height in pages:
        pdf.setPageSize((width, height))
        pdf.drawImage(ImageReader(Image.new("RGB", (40, 40), "white")), 0, 0, width, height)
        pdf.showPage()
    pdf.save()
    return path


class _FakeOcr:
    """Reads any image as one line, recording the size of each image it was given."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.sizes: list[tuple[tuple[int, int], float]] = []
        self.seconds = seconds

    def __call__(self, image, scale: float) -> list[Line]:
        self.sizes.append((image.size, scale))
        time.sleep(self.seconds)
        return [Line(f"Words read from scan number {len(self.sizes)}.", 100, 12)]


def test_a_huge_page_is_rendered_for_ocr_within_the_pixel_limit(tmp_path):
    from cite.indexer.formats.pdf import read_pdf

    huge = _image_pdf(tmp_path / "huge.pdf", [(5000, 5000)])
    assert huge.stat().st_size < 10_000
    ocr = _FakeOcr()
    extracted = read_pdf(huge, ocr=ocr)
    [((width, height), scale)] = ocr.sizes
    assert width * height <= DEFAULT_LIMITS.page_pixels  # at 300 DPI it would be 434 megapixels
    assert width == pytest.approx(5000 * scale, abs=1)
    assert "Words read from scan number 1." in extracted.text
    assert extracted.notes[1] == (
        "1 page read by OCR at under 300 DPI (down to 72), within the 25,000,000-pixel limit on a rendered page"
    )
    # A page of ordinary size is rendered at 300 DPI as before.
    ocr = _FakeOcr()
    read_pdf(_image_pdf(tmp_path / "letter.pdf", [(612, 792)]), ocr=ocr)
    [((width, height), scale)] = ocr.sizes
    assert scale == 300 / 72 and (width, height) in {(2550, 3300), (2550, 3301)}


def test_a_page_rendered_for_display_keeps_to_the_pixel_limit(tmp_path):
    from cite.indexer.formats.pdf import page_image

    huge = _image_pdf(tmp_path / "huge.pdf", [(5000, 5000)])
    image = page_image(huge, 1, scale=2.0, limits=ReadLimits(page_pixels=1_000_000))
    assert image.size[0] * image.size[1] <= 1_000_000 and image.size[0] > 900


def test_a_pdf_past_the_page_limit_is_refused_before_any_page_is_read(tmp_path, monkeypatch):
    from cite.indexer.formats import pdf_lines

    path = _image_pdf(tmp_path / "long.pdf", [(612, 792)] * 5)

    def no_page_read(page):
        raise AssertionError("a page was read")

    monkeypatch.setattr(pdf_lines, "page_lines", no_page_read)
    [skipped] = load_paths([path], limits=ReadLimits(pdf_pages=3)).skipped
    assert skipped.reason == "5 pages, past the 3-page limit on a PDF"


def test_ocr_stops_at_its_page_limit_with_a_note(tmp_path):
    from cite.indexer.formats.pdf import read_pdf

    ocr = _FakeOcr()
    extracted = read_pdf(_image_pdf(tmp_path / "scan.pdf", [(612, 792)] * 3), ocr=ocr, limits=ReadLimits(ocr_pages=2))
    assert len(ocr.sizes) == 2 and len(extracted.pages) == 3
    assert "scan number 2." in extracted.text and "scan number 3" not in extracted.text
    assert extracted.notes == (
        "2 of 3 pages read by OCR",
        "1 of 3 pages not read by OCR: past the 2-page limit on OCR in a document",
    )


def test_ocr_stops_at_its_time_limit_with_a_note(tmp_path):
    from cite.indexer.formats.pdf import read_pdf

    ocr = _FakeOcr(seconds=0.06)
    path = _image_pdf(tmp_path / "scan.pdf", [(612, 792)] * 4)
    extracted = read_pdf(path, ocr=ocr, limits=ReadLimits(ocr_seconds=0.05))
    assert len(ocr.sizes) == 1
    assert extracted.notes == (
        "1 of 4 pages read by OCR",
        "3 of 4 pages not read by OCR: past the 0.05-second limit on OCR in a document",
    )


def _epub(path: Path, manifest: str, spine: str, chapters: dict[str, str]) -> Path:
    page = '<html xmlns="http://www.w3.org/1999/xhtml"><head><title>t</title></head><body>{}</body></html>'
    return write_epub(path, manifest, spine, {name: page.format(body) for name, body in chapters.items()}, "Limits")


def _item(id_: str, href: str) -> str:
    return f'<item id="{id_}" href="{href}" media-type="application/xhtml+xml"/>'


def test_an_epub_spine_listing_a_file_many_times_reads_it_once(tmp_path):
    chapter = "<h1>The Long Chapter</h1>" + "<p>A paragraph of the long chapter that is told once.</p>" * 2000
    # The same item listed 100 times, then the same file under 100 ids with #fragments (SiSU's way).
    manifest = _item("one", "one.xhtml") + "".join(_item(f"s{n}", f"one.xhtml#sect{n}") for n in range(100))
    manifest += _item("two", "two.xhtml")
    spine = '<itemref idref="one"/>' * 100 + "".join(f'<itemref idref="s{n}"/>' for n in range(100))
    spine += '<itemref idref="two"/><itemref idref="one"/>'
    book = _epub(tmp_path / "repeats.epub", manifest, spine, {"one.xhtml": chapter, "two.xhtml": "<p>The end.</p>"})
    assert book.stat().st_size < 10_000
    [document] = load_paths([book]).documents
    assert document.text.count("The Long Chapter") == 1
    assert document.text.endswith("told once.\n\nThe end.")  # in first-appearance order
    assert len(document.text) < 120_000  # one copy of the chapter, not 201


def test_an_epub_leaves_out_non_linear_items_when_it_has_linear_ones(tmp_path):
    manifest = _item("book", "book.xhtml") + _item("other", "other.xhtml") + _item("notes", "notes.xhtml")
    spine = '<itemref idref="book"/><itemref idref="other" linear="no"/><itemref idref="notes" linear="no"/>'
    chapters = {"book.xhtml": "<p>The book itself.</p>", "other.xhtml": "<p>Another translation.</p>",
                "notes.xhtml": "<p>Pop-up notes.</p>"}  # fmt: skip
    [document] = load_paths([_epub(tmp_path / "bundle.epub", manifest, spine, chapters)]).documents
    assert document.text == "The book itself."
    # A spine with nothing but non-linear items is still read.
    spine = '<itemref idref="other" linear="no"/><itemref idref="notes" linear="no"/>'
    [document] = load_paths([_epub(tmp_path / "odd.epub", manifest, spine, chapters)]).documents
    assert document.text == "Another translation.\n\nPop-up notes."


def test_an_epub_spine_past_its_limit_is_refused(tmp_path):
    spine = '<itemref idref="one"/>' * 100
    book = _epub(tmp_path / "long.epub", _item("one", "one.xhtml"), spine, {"one.xhtml": "<p>Hi.</p>"})
    [skipped] = load_paths([book], limits=ReadLimits(spine_entries=50)).skipped
    assert skipped.reason == "100 spine entries, past the 50 limit on an EPUB's spine"


def test_text_past_the_limit_on_a_document_is_refused(tmp_path):
    (tmp_path / "long.txt").write_text("word " * 400, encoding="utf-8")
    (tmp_path / "short.txt").write_text("A few words.", encoding="utf-8")
    chapters = {f"c{n}.xhtml": "<p>" + "Many different chapters. " * 40 + "</p>" for n in range(20)}
    manifest = "".join(_item(f"c{n}", f"c{n}.xhtml") for n in range(20))
    spine = "".join(f'<itemref idref="c{n}"/>' for n in range(20))
    _epub(tmp_path / "many.epub", manifest, spine, chapters)
    loaded = load_paths([tmp_path], limits=ReadLimits(text_chars=1_000))
    assert [d.doc for d in loaded.documents] == ["short.txt"]
    reasons = {s.path: s.reason for s in loaded.skipped}
    assert reasons == {
        "long.txt": "its text passes the 1,000-character limit on a document",
        "many.epub": "its text passes the 1,000-character limit on a document",
    }


def test_limits_must_be_positive():
    with pytest.raises(ValueError, match="ReadLimits.pdf_pages must be a positive number, not 0"):
        ReadLimits(pdf_pages=0)


def test_isolated_loading_gives_the_same_documents(tmp_path):
    from cite.indexer.isolated import load_isolated

    (tmp_path / "notes.txt").write_text("Owls hunt at night.", encoding="utf-8")
    _docx(tmp_path / "real.docx")
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    assert load_isolated([tmp_path]) == load_paths([tmp_path])


def test_a_worker_past_its_memory_limit_becomes_a_skipped_file(tmp_path):
    from cite.indexer.isolated import load_isolated

    sparse = tmp_path / "huge.txt"
    with sparse.open("wb") as handle:
        handle.truncate(2 * 1024 * _MB)  # 2 GB that take no disk: reading it needs 2 GB of memory
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    loaded = load_isolated([sparse], limits=ReadLimits(file_bytes=4 * 1024 * _MB))
    assert loaded.documents == []
    assert loaded.skipped[0].path == "huge.txt"
    assert loaded.skipped[0].reason == "parsing took more than the 1 GB memory limit"
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 * 1024  # KB: this process read nothing


def test_a_worker_past_its_time_limit_becomes_a_skipped_file(tmp_path):
    from cite.indexer.isolated import load_isolated

    (tmp_path / "notes.txt").write_text("Owls hunt at night.", encoding="utf-8")
    loaded = load_isolated([tmp_path / "notes.txt"], timeout_s=0.000_001)
    assert loaded.documents == []
    assert [(s.path, s.reason) for s in loaded.skipped] == [
        ("notes.txt", "parsing took more than the 1e-06-second time limit")
    ]
