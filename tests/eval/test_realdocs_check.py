"""The question checker's own EPUB reader, used where pandoc refuses a book (SiSU's spine)."""

from cite.eval.realdocs.check import epub_text

from tests.helpers import write_epub


def _item(id_: str, href: str) -> str:
    return f'<item id="{id_}" href="{href}" media-type="application/xhtml+xml"/>'


def test_the_checker_reads_each_spine_file_once_in_order_and_leaves_out_non_linear_ones(tmp_path):
    page = "<html><body>{}</body></html>"
    manifest = _item("a", "a.xhtml") + _item("a1", "a.xhtml#o1") + _item("b", "b.xhtml") + _item("n", "notes.xhtml")
    spine = '<itemref idref="a"/><itemref idref="a1"/><itemref idref="n" linear="no"/><itemref idref="b"/>'
    files = {"a.xhtml": page.format("<p>First chapter.</p>"), "b.xhtml": page.format("<p>Second chapter.</p>")}
    files["notes.xhtml"] = page.format("<p>A note.</p>")
    text = epub_text(write_epub(tmp_path / "sisu.epub", manifest, spine, files))
    assert text.count("First chapter.") == 1
    assert text.index("First chapter.") < text.index("Second chapter.")
    assert "A note." not in text
