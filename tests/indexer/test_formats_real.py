"""The readers on real manuals from Debian's documentation packages, where installed
(gnuplot-doc, postgresql-doc-15, sqlite3-doc); skipped elsewhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cite.indexer.loaders import load_paths

GNUPLOT = Path("/usr/share/doc/gnuplot/gnuplot.pdf")
POSTGRES = Path("/usr/share/doc/postgresql-doc-15/html")
SQLITE = Path("/usr/share/doc/sqlite3")  # the sqlite3 package's own folder: the manual only with sqlite3-doc
SQLITE_PAGE = SQLITE / "lang_createtable.html"


@pytest.mark.slow
@pytest.mark.skipif(not GNUPLOT.exists(), reason="gnuplot-doc is not installed")
def test_gnuplot_manual_pages_without_running_headers_contents_or_index():
    from cite.indexer.formats.pdf import read_pdf

    manual = read_pdf(GNUPLOT)
    assert manual.title == "gnuplot documentation" and len(manual.pages) > 300
    bounds = manual.pages + (len(manual.text),)
    pages = [manual.text[bounds[n] : bounds[n + 1]] for n in range(len(manual.pages))]
    header = re.compile(r"^(?:\d+ gnuplot 5\.\d|gnuplot 5\.\d \d+)$", re.MULTILINE)
    assert not any(header.search(page) for page in pages)
    assert not any(re.search(r"(?:\. ){8}", page) for page in pages)  # dot leaders of the contents
    assert pages[2] == "" and pages[-1] == ""  # a contents page and an index page
    assert pages[21].startswith("include interactive terminals")  # page 22: body text, no header
    titles = [manual.text[h.start : h.end] for h in manual.headings]
    assert len(titles) > 600 and "Seeking-assistance" in titles and "Introduction" in titles


@pytest.mark.skipif(not POSTGRES.exists(), reason="postgresql-doc-15 is not installed")
def test_postgresql_pages_lose_their_navigation(tmp_path):
    for name in ("tutorial-join.html", "sql-select.html", "datatype-numeric.html"):
        (tmp_path / name).write_bytes((POSTGRES / name).read_bytes())
    docs = {d.doc: d for d in load_paths([tmp_path]).documents}
    join = docs["tutorial-join.html"]
    assert join.title == "2.6. Joins Between Tables"
    assert join.text.startswith("2.6. Joins Between Tables\n\nThus far, our queries")
    assert not any(word in d.text for d in docs.values() for word in ("Prev", "Home", "Submit correction"))
    select = docs["sql-select.html"]
    assert [select.text[h.start : h.end] for h in select.headings][:3] == ["SELECT", "Synopsis", "Description"]


@pytest.mark.slow
@pytest.mark.skipif(not SQLITE_PAGE.exists(), reason="sqlite3-doc is not installed")
def test_sqlite_pages_lose_the_site_menu_alone_and_in_their_folder():
    alone = load_paths([SQLITE_PAGE]).documents[0]
    in_folder = {d.doc: d for d in load_paths([SQLITE]).documents}["lang_createtable.html"]
    for document in (alone, in_folder):
        assert document.text.startswith("CREATE TABLE\n\n1. Syntax")
        assert "Small. Fast. Reliable." not in document.text and "Download" not in document.text[:500]
    assert "This page last modified" in alone.text and "This page last modified" not in in_folder.text
