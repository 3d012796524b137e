"""Office, e-book, HTML and Markdown reading, each from files made here with the format's own
library (python-docx, python-pptx) or by zip per the format's specification (ODT, EPUB)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from cite.indexer.loaders import load_paths

from tests.helpers import write_epub


def _headings(document) -> list[tuple[str, int]]:
    return [(document.text[h.start : h.end], h.level) for h in document.headings]


def _only(folder: Path):
    loaded = load_paths([folder])
    assert loaded.skipped == []
    [document] = loaded.documents
    return document


def test_docx_heading_styles_tables_and_title(tmp_path):
    import docx
    from docx.enum.style import WD_STYLE_TYPE

    document = docx.Document()
    document.styles.add_style("toc 1", WD_STYLE_TYPE.PARAGRAPH)  # Word adds it with a generated contents
    document.core_properties.title = "Widget Handbook"
    document.add_paragraph("Contents", style="TOC Heading")
    document.add_paragraph("Installing\t3", style="toc 1")
    document.add_heading("Installing", level=1)
    document.add_paragraph("Run the installer and follow the prompts.")
    document.add_heading("On Linux", level=2)
    document.add_paragraph("Use the package manager.")
    house = document.styles.add_style("House Heading", WD_STYLE_TYPE.PARAGRAPH)
    house.base_style = document.styles["Heading 3"]
    document.add_paragraph("On Debian", style="House Heading")
    document.add_paragraph("Run apt-get install widget.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Option", "Default"
    table.cell(1, 0).text, table.cell(1, 1).text = "timeout", "30 seconds"
    document.save(tmp_path / "handbook.docx")
    read = _only(tmp_path)
    assert read.title == "Widget Handbook" and read.pages == ()
    assert _headings(read) == [("Installing", 1), ("On Linux", 2), ("On Debian", 3)]
    assert "Run the installer and follow the prompts." in read.text and "timeout \t 30 seconds" in read.text
    assert "Contents" not in read.text and "\t3" not in read.text  # the generated contents


def test_pptx_slides_are_pages_and_their_titles_headings(tmp_path):
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    for title, body in [("Quarterly results", "Revenue grew by a tenth."), ("Next steps", "Hire two engineers.")]:
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text_frame.text = body
        footer = next(p for p in slide.slide_layout.placeholders if p.placeholder_format.idx == 11)
        slide.shapes.clone_placeholder(footer)
        slide.placeholders[11].text_frame.text = "Acme Confidential"  # furniture, as in a PDF
    slide = deck.slides.add_slide(deck.slide_layouts[6])  # blank: a text box, no title
    slide.shapes.add_textbox(Inches(1), Inches(1), Inches(4), Inches(1)).text_frame.text = "Questions welcome."
    deck.slides[0].notes_slide.notes_text_frame.text = "Mention the new office."
    deck.save(tmp_path / "deck.pptx")
    read = _only(tmp_path)
    assert len(read.pages) == 3 and read.title == "Quarterly results"
    pages = read.pages + (len(read.text),)
    slides = [read.text[pages[n] : pages[n + 1]].strip() for n in range(3)]
    assert slides == [
        "Quarterly results\n\nRevenue grew by a tenth.\n\nMention the new office.",
        "Next steps\n\nHire two engineers.",
        "Questions welcome.",
    ]
    assert _headings(read) == [("Quarterly results", 1), ("Next steps", 1)]


_ODT_CONTENT = """<?xml version="1.0" encoding="UTF-8"?>
<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"
  xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"
  xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" office:version="1.3">
 <office:body><office:text>
  <text:table-of-content text:name="Contents"><text:index-body>
   <text:p>Brewing<text:tab/>1</text:p></text:index-body></text:table-of-content>
  <text:h text:outline-level="1">Brewing</text:h>
  <text:p>Use water just<text:s text:c="2"/>off the boil.<text:note text:note-class="footnote">
   <text:note-citation>1</text:note-citation><text:note-body><text:p>About 95 degrees.</text:p></text:note-body>
   </text:note></text:p>
  <text:h text:outline-level="2">Green tea</text:h>
  <text:list><text:list-item><text:p>Steep for two minutes.</text:p></text:list-item></text:list>
  <table:table><table:table-row><table:table-cell><text:p>Tea</text:p></table:table-cell>
   <table:table-cell><text:p>Minutes</text:p></table:table-cell></table:table-row></table:table>
 </office:text></office:body></office:document-content>"""
_ODT_META = """<?xml version="1.0" encoding="UTF-8"?>
<office:document-meta xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"
  xmlns:dc="http://purl.org/dc/elements/1.1/"><office:meta><dc:title>Tea Notes</dc:title></office:meta>
</office:document-meta>"""


def _odt(path: Path, content: str = _ODT_CONTENT) -> Path:
    with zipfile.ZipFile(path, "w") as package:
        package.writestr(zipfile.ZipInfo("mimetype"), "application/vnd.oasis.opendocument.text")
        package.writestr("content.xml", content)
        package.writestr("meta.xml", _ODT_META)
    return path


def test_odt_headings_footnotes_lists_tables_and_title(tmp_path):
    read = _only(_odt(tmp_path / "tea.odt").parent)
    assert read.title == "Tea Notes"
    assert _headings(read) == [("Brewing", 1), ("Green tea", 2)]
    assert read.text == (
        "Brewing\n\nUse water just  off the boil.\n\nAbout 95 degrees.\n\nGreen tea\n\n"
        "Steep for two minutes.\n\nTea \t Minutes"
    )


def _epub(path: Path, chapters: list[tuple[str, str]]) -> Path:
    """An EPUB 3 with a navigation document and one XHTML file per chapter."""
    manifest = '<item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>' + "".join(
        f'<item id="c{n}" href="text/ch{n}.xhtml" media-type="application/xhtml+xml"/>' for n in range(len(chapters))
    )
    spine = '<itemref idref="nav"/>' + "".join(f'<itemref idref="c{n}"/>' for n in range(len(chapters)))
    files = {
        "nav.xhtml": '<html xmlns="http://www.w3.org/1999/xhtml"><body><nav epub:type="toc"><ol><li>Contents list'
        "</li></ol></nav><p>Contents page text.</p></body></html>"
    }
    for n, (title, body) in enumerate(chapters):
        files[f"text/ch{n}.xhtml"] = (
            f'<?xml version="1.0" encoding="UTF-8"?><html xmlns="http://www.w3.org/1999/xhtml"><head>'
            f"<title>{title}</title></head><body><section><h1>{title}</h1><p>{body}</p></section></body></html>"
        )
    return write_epub(path, manifest, spine, files)


def test_epub_chapters_in_spine_order_without_the_contents(tmp_path):
    _epub(tmp_path / "book.epub", [("The Harbour", "Boats came in at dawn."), ("The Storm", "Rain fell all night.")])
    read = _only(tmp_path)
    assert read.title == "A Short Book"
    assert read.text == "The Harbour\n\nBoats came in at dawn.\n\nThe Storm\n\nRain fell all night."
    assert _headings(read) == [("The Harbour", 1), ("The Storm", 1)]


def test_html_main_content_headings_and_title(tmp_path):
    (tmp_path / "page.html").write_text(
        "<html><head><title>Joins | DB Manual</title><style>p{}</style></head><body>"
        "<header><a href='/'>Home</a> <a href='/docs'>Docs</a></header>"
        "<nav class='breadcrumbs'>Docs &gt; Queries</nav><div class='sidebar'>Menu item</div>"
        "<main><article><header><h1>Joins<a class='headerlink' href='#j'>¶</a></h1></header>"
        "<p>A join combines <b>rows</b> of two tables.<br>Each pair is tested.</p>"
        "<h2>Outer joins</h2><div class='note'><h3 class='title'>Note</h3><p>Rows may repeat.</p></div>"
        "<pre>SELECT *\n  FROM a LEFT JOIN b;</pre>"
        "<table><tr><th>Kind</th><td>Rows kept</td></tr></table></article></main>"
        "<footer>Copyright 2024</footer><script>track()</script></body></html>",
        encoding="utf-8",
    )
    read = _only(tmp_path)
    assert read.title == "Joins | DB Manual"
    assert read.text == (
        "Joins\n\nA join combines rows of two tables.\nEach pair is tested.\n\nOuter joins\n\n"
        "Note\n\nRows may repeat.\n\nSELECT *\n  FROM a LEFT JOIN b;\n\nKind Rows kept"
    )
    assert _headings(read) == [("Joins", 1), ("Outer joins", 2)]


def test_a_wrapper_named_like_furniture_keeps_the_page(tmp_path):
    (tmp_path / "page.html").write_text(
        "<html><body><div class='layout-with-sidebar'><div class='sidebar'>Links</div>"
        "<div><h2>Setup</h2><p>Install the package, then run it once to create its settings.</p></div>"
        "</div></body></html>",
        encoding="utf-8",
    )
    assert _only(tmp_path).text == "Setup\n\nInstall the package, then run it once to create its settings."


def test_a_docbook_sidebar_of_prose_is_content_and_a_sidebar_of_links_is_not(tmp_path):
    """DocBook's sidebar is a box in the text ("VOCABULARY Cache"); the Debian Administrator's
    Handbook says much in them, and dropping them lost the answers to 11 of 46 questions."""
    box = (
        "A cache is a temporary storage system used to speed up frequent data access when the usual access "
        "method is expensive. That is why APT stores a copy of those files and searches are done within them."
    )
    (tmp_path / "page.html").write_text(
        "<html><body><div class='sidebar'><a href='/a'>Install</a> <a href='/b'>Configure</a></div>"
        f"<div class='chapter'><h1>APT</h1><p>APT reads its sources.</p><div class='sidebar'><p>{box}</p></div>"
        "</div></body></html>",
        encoding="utf-8",
    )
    text = _only(tmp_path).text
    assert "APT stores a copy of those files" in text
    assert "Install" not in text


def test_blocks_repeated_across_a_folders_pages_are_dropped(tmp_path):
    menu = "<div class='top'><p>Small. Fast. Reliable. Choose any three.</p><p>Home About Documentation</p></div>"
    for n, topic in enumerate(["indexes", "triggers", "views", "vacuum"]):
        (tmp_path / f"{topic}.html").write_text(
            f"<html><body>{menu}<h1>About {topic}</h1><p>Text {n} about {topic}.</p>"
            f"<p>This page was generated on 2024-0{n + 1}-1{n}.</p></body></html>",
            encoding="utf-8",
        )
    loaded = load_paths([tmp_path])
    texts = {d.doc: d.text for d in loaded.documents}
    assert texts["views.html"] == "About views\n\nText 2 about views."
    assert all("Reliable" not in text and "generated" not in text for text in texts.values())
    # A page read alone keeps them: only a folder shows what repeats.
    assert "Small. Fast." in load_paths([tmp_path / "views.html"]).documents[0].text


def test_markdown_and_rst_headings_keep_the_text_as_it_is(tmp_path):
    markdown = "# Rivers\n\nRivers flow.\n\n```\n# not a heading\n```\n\nDeltas\n------\n\nSilt.\n\n### Floods ###\n"
    (tmp_path / "rivers.md").write_text(markdown, encoding="utf-8")
    (tmp_path / "notes.rst").write_text("=====\nBees\n=====\n\nIntro.\n\nHives\n-----\n\nWax.\n", encoding="utf-8")
    docs = {d.doc: d for d in load_paths([tmp_path]).documents}
    md, rst = docs["rivers.md"], docs["notes.rst"]
    assert md.text == markdown and md.title == "Rivers"
    assert _headings(md) == [("Rivers", 1), ("Deltas", 2), ("Floods", 3)]
    assert rst.title == "Bees" and _headings(rst) == [("Bees", 1), ("Hives", 2)]


@pytest.mark.parametrize("name", ["broken.docx", "broken.pptx", "broken.odt", "broken.epub"])
def test_corrupt_office_files_are_skipped_with_a_reason(tmp_path, name):
    (tmp_path / name).write_bytes(b"PK\x03\x04 this is not really a zip archive")
    loaded = load_paths([tmp_path])
    assert loaded.documents == []
    [skipped] = loaded.skipped
    assert skipped.path == name and "not a readable" in skipped.reason


def test_zips_that_are_not_the_format_are_skipped_with_a_reason(tmp_path):
    for name in ("empty.docx", "empty.pptx", "empty.odt", "empty.epub"):
        with zipfile.ZipFile(tmp_path / name, "w") as package:
            package.writestr("readme.txt", "nothing here")
    _odt(tmp_path / "sheet.odt", _ODT_CONTENT.replace("office:text>", "office:spreadsheet>"))
    loaded = load_paths([tmp_path])
    assert loaded.documents == []
    reasons = {s.path: s.reason for s in loaded.skipped}
    assert set(reasons) == {"empty.docx", "empty.pptx", "empty.odt", "empty.epub", "sheet.odt"}
    assert all("not a readable" in reason for reason in reasons.values()), reasons
    assert "spreadsheet" in reasons["sheet.odt"]
