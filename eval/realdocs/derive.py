"""Builds the real-documents files that Debian ships in another format: a manual's HTML pages,
read in their own "next" order, made into one EPUB, DOCX or ODT book with pandoc, or copied
as HTML pages. Real text in the formats people have, reproducible from the packages.

    python -m eval.realdocs.derive DEST     # setup.sh runs it after copying corpus.tsv's files
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

NEXT_LINK = re.compile(r"<(?:link|a)\b[^>]*>", re.IGNORECASE)
HREF = re.compile(r'href="([^"#]+)', re.IGNORECASE)


@dataclass(frozen=True)
class Book:
    """`pages` HTML pages from `start` in "next" order, written as `target` (its suffix names the format)."""

    package: str
    start: str
    pages: int
    target: str
    title: str
    numbered: bool = False  # texinfo's "next" skips subsections: read name_1.html, name_2.html, ... instead


BOOKS = (
    Book(
        "debian-faq", "/usr/share/doc/debian/FAQ/index.en.html", 40, "epub/debian-faq.epub", "The Debian GNU/Linux FAQ"
    ),
    Book(
        "maxima-doc", "/usr/share/doc/maxima-doc/html/maxima.html", 28, "epub/maxima-manual.epub", "Maxima Manual", True
    ),
    Book("git-doc", "/usr/share/doc/git-doc/user-manual.html", 1, "docx/git-user-manual.docx", "Git User Manual"),
    Book(
        "gnucash-docs",
        "/usr/share/doc/gnucash-docs/gnucash-guide-en/index.html",
        60,
        "odt/gnucash-guide.odt",
        "GnuCash Tutorial and Concepts Guide",
    ),
    Book(
        "debian-handbook",
        "/usr/share/doc/debian-handbook/html/en-US/packaging-system.html",
        30,
        "handbook/",
        "The Debian Administrator's Handbook",
    ),
)


def next_page(page: Path) -> Path | None:
    """The page a reader's "Next" leads to, from the page's rel="next" link."""
    for tag in NEXT_LINK.findall(page.read_text(encoding="utf-8", errors="replace")):
        if re.search(r'rel="next"', tag, re.IGNORECASE) and (href := HREF.search(tag)):
            follow = page.parent / href.group(1)
            return follow if follow.exists() else None
    return None


def reading_order(book: Book) -> list[Path]:
    pages = [Path(book.start)]
    if book.numbered:
        return pages + [pages[0].with_name(f"{pages[0].stem}_{n}.html") for n in range(1, book.pages)]
    while len(pages) < book.pages and (following := next_page(pages[-1])) and following not in pages:
        pages.append(following)
    return pages


def build(book: Book, dest: Path) -> Path:
    pages = reading_order(book)
    target = dest / book.target
    if book.target.endswith("/"):  # HTML pages, copied as they are
        target.mkdir(parents=True, exist_ok=True)
        for page in pages:
            shutil.copyfile(page, target / page.name)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        made = Path(work) / target.name
        # From the pages' own folder, so that pandoc finds their images.
        subprocess.run(
            ["pandoc", "--quiet", "-f", "html", "-o", str(made), "--metadata", f"title={book.title}"]
            + [str(page) for page in pages],
            check=True,
            cwd=pages[0].parent,
        )
        shutil.move(made, target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dest", type=Path)
    args = parser.parse_args(argv)
    if shutil.which("pandoc") is None:
        print("derive: pandoc is missing (apt-get install pandoc)", file=sys.stderr)
        return 1
    for book in BOOKS:
        made = build(book, args.dest)
        print(f"{book.target}: {len(reading_order(book))} pages -> {made}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
