"""PDF reading: pages, furniture, tables of contents and indexes, headings, hyphenation,
footnote markers, title, OCR of an image-only PDF; each PDF made here with reportlab or PIL."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cite.core.text import normalise
from cite.indexer.formats.layout import Line, furniture, reference_pages
from cite.indexer.formats.pdf import assemble, read_pdf
from cite.indexer.loaders import load_paths

pytest.importorskip("reportlab")

CHAPTERS = [
    ("1 Getting started", ["Widgets are configured with a single file called widget.conf in the home folder."]),
    ("2 Lazy arguments", ["Arguments are evaluated only when a widget first needs them, which saves start-up time."]),
    ("3 Troubleshooting", ["If a widget refuses to start, delete its lock file and try again."]),
]


def _manual(path: Path, outline: bool = True) -> Path:
    """A 6-page manual: cover, contents, three chapters with a running header, a footer with the
    page number, larger headings, a word hyphenated across lines, a footnote; an index page."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    width, height = A4
    pdf = canvas.Canvas(str(path), pagesize=A4)
    pdf.setTitle("The Widget Manual")
    total = 6

    def furniture_lines(number: int, chapter: str) -> None:
        pdf.setFont("Helvetica", 9)
        pdf.drawString(72, height - 40, f"Widget Manual, {chapter}")
        pdf.drawRightString(width - 72, 30, f"Page {number} of {total}")

    pdf.setFont("Helvetica-Bold", 24)
    pdf.drawString(72, height - 200, "The Widget Manual")
    pdf.setFont("Helvetica", 11)
    pdf.drawString(72, height - 230, "Everything about widgets, from the start.")
    pdf.showPage()

    furniture_lines(2, "Contents")
    pdf.setFont("Helvetica-Bold", 16)
    pdf.drawString(72, height - 100, "Contents")
    pdf.setFont("Helvetica", 11)
    for n, (title, _) in enumerate(CHAPTERS + [("Index", [])]):
        y = height - 140 - 18 * n
        pdf.drawString(72, y, title + " " + ". " * 30)
        pdf.drawRightString(width - 72, y, str(n + 3))
    pdf.drawString(72, height - 240, "Appendix notes " + ". " * 28)
    pdf.drawRightString(width - 72, height - 240, "6")
    pdf.showPage()

    for n, (title, body) in enumerate(CHAPTERS):
        number = n + 3
        furniture_lines(number, title)
        if outline:
            pdf.bookmarkPage(f"ch{n}")
            pdf.addOutlineEntry(title, f"ch{n}", level=0)
        pdf.setFont("Helvetica-Bold", 16)
        pdf.drawString(72, height - 100, title)
        pdf.setFont("Helvetica", 11)
        y = height - 130
        for sentence in body:
            pdf.drawString(72, y, sentence)
            y -= 14
        if n == 0:
            pdf.drawString(72, y, "Each widget keeps its settings se-")
            pdf.drawString(72, y - 14, "curely in that file, and more is")
            text = pdf.beginText(72, y - 28)
            text.setFont("Helvetica", 11)
            text.textOut("available.")
            text.setFont("Helvetica", 7)
            text.setRise(4)
            text.textOut("3")
            text.setRise(0)
            text.setFont("Helvetica", 11)
            text.textOut(" On most systems the file is created at installation.")
            pdf.drawText(text)
        pdf.showPage()

    furniture_lines(6, "Index")
    pdf.setFont("Helvetica-Bold", 16)
    pdf.drawString(72, height - 100, "Index")
    pdf.setFont("Helvetica", 11)
    for n, entry in enumerate(["arguments, 4", "configuration, 3, 5", "lazy evaluation, 4", "lock file, 5",
                               "settings, 3", "start-up, 4, 5", "widget.conf, 3"]):  # fmt: skip
        pdf.drawString(72, height - 130 - 14 * n, entry)
    pdf.showPage()
    pdf.save()
    return path


def _page(extracted, n: int) -> str:
    pages = extracted.pages + (len(extracted.text),)
    return extracted.text[pages[n - 1] : pages[n]]


def test_pages_headings_title_and_what_is_dropped(tmp_path):
    extracted = read_pdf(_manual(tmp_path / "manual.pdf"))
    assert len(extracted.pages) == 6 and extracted.pages[0] == 0
    assert list(extracted.pages) == sorted(extracted.pages)
    assert extracted.title == "The Widget Manual"
    text = extracted.text
    # Running header, footer with page numbers, the contents page and the index page: gone.
    for furniture_text in ("Widget Manual,", "Page 4 of 6", "of 6", ". . . .", "lazy evaluation, 4"):
        assert furniture_text not in text
    assert _page(extracted, 2) == "" and _page(extracted, 6) == ""
    # Each chapter's text is on its physical page, its heading a line of its own from the outline.
    for n, (title, body) in enumerate(CHAPTERS):
        page = _page(extracted, n + 3)
        assert page.startswith(title + "\n\n") and body[0] in page
    assert [(text[h.start : h.end], h.level) for h in extracted.headings] == [(t, 1) for t, _ in CHAPTERS]


def test_hyphenation_is_left_for_the_normaliser_and_footnote_markers_are_not_glued(tmp_path):
    text = read_pdf(_manual(tmp_path / "manual.pdf")).text
    assert "se-\ncurely" in text
    flat = normalise(text).text
    assert "settings securely in that file" in flat
    assert "available. On most systems" in flat and "available.3" not in flat


def test_without_an_outline_font_sizes_find_the_headings(tmp_path):
    extracted = read_pdf(_manual(tmp_path / "plain.pdf", outline=False))
    titles = [extracted.text[h.start : h.end] for h in extracted.headings]
    assert titles[0] == "The Widget Manual" and [t for t, _ in CHAPTERS] == titles[1:]
    levels = {extracted.text[h.start : h.end]: h.level for h in extracted.headings}
    assert levels["The Widget Manual"] < levels["2 Lazy arguments"]  # 24 pt above 16 pt


def test_loader_fills_the_document(tmp_path):
    _manual(tmp_path / "manual.pdf")
    loaded = load_paths([tmp_path])
    [document] = loaded.documents
    assert document.doc == "manual.pdf" and document.title == "The Widget Manual"
    assert len(document.pages) == 6 and len(document.headings) == 3
    assert loaded.notes == []


def _lines(*texts: str, first: float = 100.0, size: float = 10.0) -> list[Line]:
    return [Line(t, first + 12 * i, size) for i, t in enumerate(texts)]


def test_furniture_rules_on_lines():
    words = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november".split()
    pages = []
    for p in range(1, 6):
        body = [" ".join(words[(p * 3 + n) % len(words) :] + words[: (p * 3 + n) % len(words)]) for n in range(6)]
        lines = [Line(f"Chapter {p}: Title number {p}", 40, 9)] + _lines(*body)
        lines.append(Line(str(p), 800, 9))
        pages.append(lines)
    pages[2].insert(1, Line("Syntax:", 100, 10))  # a body line at the top of a page: kept
    drop = furniture(pages)
    dropped = {pages[p][i].text for p, i in drop}
    assert dropped == {f"Chapter {p}: Title number {p}" for p in range(1, 6)} | {str(p) for p in range(1, 6)}


def test_a_table_of_numbers_is_not_a_table_of_contents():
    table = _lines("Timeout 900", "Retries 3", "Port 8080", "Workers 2", "Backlog 512", "Buffer 64")
    contents = _lines("Introduction 1", "Installing 3", "Configuring 7", "Running 12", "Logging 15", "Index 20")
    assert reference_pages([table, contents], set()) == {1}


def test_assemble_keeps_an_empty_page_in_the_page_count():
    extracted = assemble([_lines("First page text."), [], _lines("Third page text.")])
    assert extracted.pages == (0, len("First page text.\n\n"), len("First page text.\n\n"))
    assert extracted.text == "First page text.\n\nThird page text."


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract-ocr is not installed (make ocr)")
def test_an_image_only_pdf_is_read_by_ocr_with_a_note(tmp_path):
    from PIL import Image, ImageDraw, ImageFont

    font_path = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
    font = ImageFont.truetype(str(font_path), 40) if font_path.exists() else ImageFont.load_default(40)
    image = Image.new("RGB", (1700, 2200), "white")
    draw = ImageDraw.Draw(image)
    draw.text((150, 200), "Scanned pages keep their words.", fill="black", font=font)
    draw.text((150, 280), "The quick brown fox jumps over the lazy dog.", fill="black", font=font)
    image.save(tmp_path / "scan.pdf", resolution=200.0)
    loaded = load_paths([tmp_path / "scan.pdf"])
    [document] = loaded.documents
    flat = normalise(document.text).text
    assert "Scanned pages keep their words." in flat and "quick brown fox" in flat
    assert document.pages == (0,)
    assert [(n.path, n.message) for n in loaded.notes] == [("scan.pdf", "1 of 1 pages read by OCR")]

    # A text page, then a scanned one with a stamped page number: only the scan is read by OCR.
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(tmp_path / "mixed.pdf"), pagesize=(612, 792))
    pdf.drawString(72, 720, "Typed pages need no OCR at all.")
    pdf.showPage()
    pdf.drawImage(ImageReader(image), 0, 0, 612, 792)
    pdf.drawString(300, 20, "2")
    pdf.showPage()
    pdf.save()
    loaded = load_paths([tmp_path / "mixed.pdf"])
    [document] = loaded.documents
    second = normalise(document.text[document.pages[1] :]).text
    assert document.text.startswith("Typed pages need no OCR at all.\n\n")
    assert "Scanned pages keep their words." in second and "quick brown fox" in second
    assert [n.message for n in loaded.notes] == ["1 of 2 pages read by OCR"]


def test_an_image_only_pdf_without_ocr_is_skipped_with_the_fix(tmp_path, monkeypatch):
    from cite.indexer.formats import ocr
    from PIL import Image

    Image.new("RGB", (600, 800), "white").save(tmp_path / "scan.pdf")
    monkeypatch.setattr(ocr, "available", lambda: False)
    loaded = load_paths([tmp_path])
    assert loaded.documents == [] and "tesseract-ocr" in loaded.skipped[0].reason


def test_corrupt_and_truncated_pdfs_are_skipped_with_a_reason(tmp_path):
    whole = _manual(tmp_path / "manual.pdf").read_bytes()
    (tmp_path / "manual.pdf").unlink()
    (tmp_path / "truncated.pdf").write_bytes(whole[: len(whole) // 3])
    (tmp_path / "garbage.pdf").write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 8)
    (tmp_path / "empty.pdf").write_bytes(b"")
    loaded = load_paths([tmp_path])
    assert loaded.documents == []
    reasons = {s.path: s.reason for s in loaded.skipped}
    assert set(reasons) == {"truncated.pdf", "garbage.pdf", "empty.pdf"}
    assert all(reason.startswith("not a readable PDF") for reason in reasons.values())


def test_page_image_highlights_the_quoted_span_where_it_is_printed(tmp_path):
    from cite.indexer.formats.pdf import page_image
    from PIL import ImageChops
    from reportlab.lib.pagesizes import A4

    manual = _manual(tmp_path / "manual.pdf")
    extracted = read_pdf(manual)
    quote = CHAPTERS[1][1][0]
    start = extracted.text.index(quote)
    assert extracted.pages[3] <= start < extracted.pages[4]  # printed on page 4
    scale = 2.0
    plain = page_image(manual, 4, scale=scale)
    marked = page_image(manual, 4, (start, start + len(quote)), text=extracted.text, scale=scale)
    assert plain.size == marked.size == (round(A4[0] * scale), round(A4[1] * scale))
    left, top, right, bottom = ImageChops.difference(plain, marked).getbbox()
    # The sentence's baseline is 130 pt below the top edge, from x = 72 pt: the highlight covers it, nothing else.
    assert 110 * scale < top < 130 * scale < bottom < 140 * scale
    assert 70 * scale <= left < 74 * scale and right > 300 * scale
    # A file that no longer reads as the indexed text gets no highlight rather than a wrong one.
    stale = page_image(manual, 4, (start, start + len(quote)), text=extracted.text + "changed", scale=scale)
    assert ImageChops.difference(plain, stale).getbbox() is None
    with pytest.raises(ValueError, match="no page 7"):
        page_image(manual, 7)


def test_an_encrypted_pdf_is_skipped_with_the_reason(tmp_path):
    from reportlab.lib import pdfencrypt
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(tmp_path / "secret.pdf"), encrypt=pdfencrypt.StandardEncryption("open-sesame"))
    pdf.drawString(72, 720, "Hidden words.")
    pdf.save()
    [skipped] = load_paths([tmp_path]).skipped
    assert "password" in skipped.reason


def test_outline_titles_found_on_wrapped_and_run_in_lines():
    from cite.indexer.formats.layout import OutlineItem

    page = _lines(
        "}",
        "2.1.8 Lazy",
        "arguments",
        "Arguments are evaluated late.",
        "Transpose Shorthand notation for scan=yx.",
        "Transpose again, in a sentence: not a heading.",
    )
    outline = [OutlineItem("Lazy arguments", 2, 0), OutlineItem("Transpose", 3, 0)]
    extracted = assemble([page], outline)
    assert [(extracted.text[h.start : h.end], h.level) for h in extracted.headings] == [
        ("2.1.8 Lazy arguments", 2),
        ("Transpose", 3),
    ]
    assert extracted.text == (
        "}\n\n2.1.8 Lazy arguments\n\nArguments are evaluated late.\n\nTranspose\n\n"
        "Shorthand notation for scan=yx.\nTranspose again, in a sentence: not a heading."
    )


def test_a_shallow_outline_is_deepened_by_font_sizes():
    from cite.indexer.formats.layout import OutlineItem

    page = [
        Line("1 Installing", 100, 16),
        Line("Widgets install from packages on every system we know of.", 130, 10),
        Line("1.1 On Debian", 160, 12),
        Line("Run apt-get install widget, then start it.", 190, 10),
        Line("Big words in a figure are larger than the chapter title", 400, 20),
    ]
    extracted = assemble(
        [page, _lines("More body text on the next page of the manual.")], [OutlineItem("Installing", 1, 0)]
    )
    assert [(extracted.text[h.start : h.end], h.level) for h in extracted.headings] == [
        ("1 Installing", 1),
        ("1.1 On Debian", 2),
    ]


def test_a_failing_ocr_costs_only_its_page(tmp_path):
    from PIL import Image
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(tmp_path / "mixed.pdf"), pagesize=(612, 792))
    pdf.drawString(72, 720, "Typed pages need no OCR at all.")
    pdf.showPage()
    pdf.drawImage(ImageReader(Image.new("RGB", (300, 400), "white")), 0, 0, 612, 792)
    pdf.showPage()
    pdf.save()

    def failing(image, scale):
        raise ValueError("OCR failed (tesseract crashed)")

    extracted = read_pdf(tmp_path / "mixed.pdf", ocr=failing)
    assert extracted.text == "Typed pages need no OCR at all." and len(extracted.pages) == 2
    assert extracted.notes == ("page 2: OCR failed (tesseract crashed)",)
