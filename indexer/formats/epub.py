"""EPUB -> text: the OPF package's spine gives the chapters in reading order, each file read
once by the HTML path; the navigation document (a table of contents) and, beside a linear
reading order, the non-linear items are left out."""

from __future__ import annotations

import posixpath
import zipfile
from pathlib import Path
from urllib.parse import unquote

from cite.indexer.formats import Extracted
from cite.indexer.formats.archive import Archive
from cite.indexer.formats.builder import TextBuilder
from cite.indexer.formats.html import add_blocks, parse_html
from cite.indexer.formats.limits import DEFAULT_LIMITS, ReadLimits

_CONTAINER = "urn:oasis:names:tc:opendocument:xmlns:container"
_OPF = "http://www.idpf.org/2007/opf"
_DC = "http://purl.org/dc/elements/1.1/"
_HTML_TYPES = {"application/xhtml+xml", "text/html"}


def read_epub(file: Path, limits: ReadLimits = DEFAULT_LIMITS) -> Extracted:
    """The chapters of an EPUB (2 or 3) in spine order; the title from the package metadata.
    Each file is read once, where the spine first lists it (some books list a file once per
    section, with a #fragment); items marked linear="no" (notes, or whole other editions bundled
    alongside) are left out when the spine has linear ones.

    Raises:
        LimitExceeded: a member inflates, or the text grows, past `limits`, or the spine is too long.
        ValueError: not a readable EPUB.
    """
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    try:
        with zipfile.ZipFile(file) as package:
            archive = Archive(package, limits)
            container = etree.fromstring(archive.read("META-INF/container.xml"), parser)
            rootfile = container.find(f".//{{{_CONTAINER}}}rootfile")
            if rootfile is None or not rootfile.get("full-path"):
                raise ValueError("not a readable EPUB (META-INF/container.xml names no package file)")
            opf_path = rootfile.get("full-path")
            opf = etree.fromstring(archive.read(opf_path), parser)
            builder = TextBuilder(limits)
            for href in _chapters(opf, posixpath.dirname(opf_path), limits):
                add_blocks(builder, parse_html(archive.read(href)).blocks)
            found = opf.find(f".//{{{_DC}}}title")
            title = " ".join((found.text or "").split()) if found is not None else ""
    except (zipfile.BadZipFile, KeyError, etree.XMLSyntaxError) as error:
        raise ValueError(f"not a readable EPUB ({error})") from None
    return builder.build(title)


def _chapters(opf, folder: str, limits: ReadLimits) -> list[str]:
    """The package paths of the spine's (X)HTML files, each once, in reading order.

    Raises:
        LimitExceeded: the spine has more entries than `limits` allow.
    """
    manifest = {item.get("id"): item for item in opf.iter(f"{{{_OPF}}}item") if item.get("id") and item.get("href")}
    spine = list(opf.iter(f"{{{_OPF}}}itemref"))
    limits.check_spine(len(spine))
    if any(itemref.get("linear", "yes").strip() != "no" for itemref in spine):
        spine = [itemref for itemref in spine if itemref.get("linear", "yes").strip() != "no"]
    hrefs: dict[str, None] = {}  # ordered, without repeats
    for itemref in spine:
        item = manifest.get(itemref.get("idref"))
        if item is None or item.get("media-type") not in _HTML_TYPES:
            continue
        if "nav" in (item.get("properties") or "").split():
            continue  # the book's table of contents
        hrefs.setdefault(posixpath.normpath(posixpath.join(folder, unquote(item.get("href").split("#")[0]))))
    return list(hrefs)
