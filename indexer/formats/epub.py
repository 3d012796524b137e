"""EPUB -> text: the OPF package's spine gives the chapters in reading order, each read by
the HTML path; the navigation document (a table of contents) is left out."""

from __future__ import annotations

import posixpath
import zipfile
from pathlib import Path
from urllib.parse import unquote

from indexer.formats import Extracted
from indexer.formats.builder import TextBuilder
from indexer.formats.html import add_blocks, parse_html

_CONTAINER = "urn:oasis:names:tc:opendocument:xmlns:container"
_OPF = "http://www.idpf.org/2007/opf"
_DC = "http://purl.org/dc/elements/1.1/"
_HTML_TYPES = {"application/xhtml+xml", "text/html"}
_MAX_MEMBER_BYTES = 256 * 1024 * 1024


def read_epub(file: Path) -> Extracted:
    """The chapters of an EPUB (2 or 3) in spine order; the title from the package metadata.

    Raises:
        ValueError: not a readable EPUB.
    """
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    try:
        with zipfile.ZipFile(file) as package:
            container = etree.fromstring(_read(package, "META-INF/container.xml"), parser)
            rootfile = container.find(f".//{{{_CONTAINER}}}rootfile")
            if rootfile is None or not rootfile.get("full-path"):
                raise ValueError("not a readable EPUB (META-INF/container.xml names no package file)")
            opf_path = rootfile.get("full-path")
            opf = etree.fromstring(_read(package, opf_path), parser)
            folder = posixpath.dirname(opf_path)
            manifest = {
                item.get("id"): item for item in opf.iter(f"{{{_OPF}}}item") if item.get("id") and item.get("href")
            }
            builder = TextBuilder()
            for itemref in opf.iter(f"{{{_OPF}}}itemref"):
                item = manifest.get(itemref.get("idref"))
                if item is None or item.get("media-type") not in _HTML_TYPES:
                    continue
                if "nav" in (item.get("properties") or "").split():
                    continue  # the book's table of contents
                href = posixpath.normpath(posixpath.join(folder, unquote(item.get("href").split("#")[0])))
                add_blocks(builder, parse_html(_read(package, href)).blocks)
            found = opf.find(f".//{{{_DC}}}title")
            title = " ".join((found.text or "").split()) if found is not None else ""
    except (zipfile.BadZipFile, KeyError, etree.XMLSyntaxError) as error:
        raise ValueError(f"not a readable EPUB ({error})") from None
    return builder.build(title)


def _read(package: zipfile.ZipFile, name: str) -> bytes:
    if package.getinfo(name).file_size > _MAX_MEMBER_BYTES:
        raise ValueError(f"not a readable EPUB ({name} unpacks to more than {_MAX_MEMBER_BYTES >> 20} MB)")
    return package.read(name)
