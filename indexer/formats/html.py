"""HTML -> main content: navigation, menus, site headers and footers, sidebars and breadcrumbs
dropped; h1-h6 kept as headings; `<title>` as the title. Blocks repeated across many pages of
one folder (a documentation site's menu on every page) are found by `common_blocks`."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cite.indexer.formats import Extracted
from cite.indexer.formats.builder import TextBuilder

# Tags whose content is never text a reader reads. A `label` names a form control, or numbers a
# paragraph (SiSU's EPUBs put "164" before paragraph 164), and would be a block of its own.
_NEVER = {"script", "style", "noscript", "template", "head", "svg", "math", "iframe", "object", "canvas",
          "button", "select", "input", "textarea", "label", "nav", "aside", "menu", "dialog"}  # fmt: skip
_BLOCK = {"address", "article", "blockquote", "body", "caption", "center", "dd", "details", "div", "dl", "dt",
          "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header",
          "hr", "html", "legend", "li", "main", "ol", "p", "pre", "section", "summary", "table", "tbody", "td",
          "tfoot", "th", "thead", "tr", "ul"}  # fmt: skip
_HEADING = {f"h{n}": n for n in range(1, 7)}
_CELL = {"td", "th"}
_FURNITURE_ROLES = {"navigation", "banner", "contentinfo", "complementary", "search", "menu", "menubar",
                    "toolbar", "doc-toc"}  # fmt: skip
# A class or id token naming page furniture, alone or as a part ("site-footer", "navheader").
_FURNITURE_TOKEN = re.compile(
    r"^(?:.*[-_])?(?:nav|navbar|navigation|navheader|navfooter|menu|mainmenu|submenu|menubar|breadcrumbs?|"
    r"sidebar|sphinxsidebar|sphinxsidebarwrapper|footer|header|masthead|toc|tagline|logo|search|searchbox|"
    r"searchmenu|skip|skiplink|related|headerlink|pagination|pager|cookies?|share|social)(?:[-_].*)?$",
    re.IGNORECASE,
)
_ADMONITION = {"note", "tip", "warning", "caution", "important", "admonition", "hint", "attention", "danger"}
# A section number of two levels or more, then a short title: "4.1 What is a live system?"
_NUMBERED_TITLE = re.compile(r"^(\d+(?:\.\d+)+)\.?\s+\S.{0,118}$")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Block:
    """A block of an HTML page's text; `level` 1-6 for a heading, 0 otherwise."""

    text: str
    level: int = 0


@dataclass(frozen=True)
class HtmlPage:
    title: str
    blocks: tuple[Block, ...]


def parse_html(html: str | bytes) -> HtmlPage:
    """The main content of a page as blocks.

    Raises:
        ValueError: the markup cannot be parsed at all.
    """
    import lxml.html
    from lxml import etree

    if isinstance(html, str):
        html = re.sub(r"^\s*<\?xml[^>]*\?>", "", html)  # lxml refuses an encoding declaration in a str
    if not (html.strip() if isinstance(html, str) else html.strip()):
        return HtmlPage("", ())
    try:
        root = lxml.html.document_fromstring(html)
    except (etree.ParserError, ValueError) as error:
        raise ValueError(f"not readable HTML ({error})") from None
    title = _SPACE.sub(" ", " ".join(root.xpath("//title//text()"))).strip()
    main = _main_element(root)
    collector = _Collector(len(main.text_content()))
    _walk(main, collector, top=True)
    collector.flush()
    return HtmlPage(title, tuple(collector.blocks))


def html_extract(page: HtmlPage, common: frozenset[str] = frozenset()) -> Extracted:
    """The page's text, without the blocks `common` to its folder (from `common_blocks`; headings
    are always kept)."""
    builder = TextBuilder()
    add_blocks(builder, page.blocks, common)
    return builder.build(page.title)


def add_blocks(builder: TextBuilder, blocks: Iterable[Block], common: frozenset[str] = frozenset()) -> None:
    for block in blocks:
        if block.level:
            builder.heading(block.text, block.level)
        elif not common or _shape(block.text) not in common:
            builder.paragraph(block.text)


def _shape(text: str) -> str:
    """A block as compared across pages: every number alike ("last modified on 2022-12-14")."""
    return re.sub(r"\d+", "#", text)


def common_blocks(pages: Sequence[HtmlPage]) -> frozenset[str]:
    """Non-heading blocks found on at least half the pages of a folder of three or more (numbers
    compared as alike): a site's menus, banners and footers that no tag or class marks as such.
    Returns their shapes, as `html_extract` takes them."""
    if len(pages) < 3:
        return frozenset()
    counts = Counter(shape for page in pages for shape in {_shape(b.text) for b in page.blocks if not b.level})
    needed = max(3, math.ceil(len(pages) / 2))
    return frozenset(text for text, count in counts.items() if count >= needed)


def _main_element(root):
    """<main>, else role=main, else the one <article>, else <body>."""
    for query in ("//main", "//*[@role='main']"):
        found = root.xpath(query)
        if found:
            return found[0]
    articles = root.xpath("//article")
    if len(articles) == 1:
        return articles[0]
    body = root.find("body")
    return body if body is not None else root


def _is_furniture(element, tag: str, page_chars: int) -> bool:
    if tag in _NEVER:
        return True
    attrib = element.attrib
    if "hidden" in attrib or attrib.get("aria-hidden") == "true":
        return True
    if re.search(r"display\s*:\s*none", attrib.get("style", "")):
        return True
    if attrib.get("role", "").lower() in _FURNITURE_ROLES:
        return True
    if tag in {"header", "footer"} and not _inside_content(element):
        # The site's header and footer; an article's own header holds its title, and a page
        # without <main> or <article> may keep its title in the site header.
        return tag == "footer" or not element.xpath(".//h1")
    tokens = (attrib.get("class", "") + " " + attrib.get("id", "")).split()
    if any(_FURNITURE_TOKEN.match(token) for token in tokens):
        # A "page-header" that holds the title is content, and so is a wrapper of most of the
        # page ("layout-with-sidebar"), and a DocBook sidebar: a box of prose in the text
        # ("VOCABULARY Cache", "NOTE ..."), not a column of links. The Debian Administrator's
        # Handbook says a fifth of what it says in them.
        if "sidebar" in tokens and _is_prose(element):
            return False
        return not element.xpath(".//h1") and len(element.text_content()) < page_chars / 2
    return False


def _is_prose(element) -> bool:
    """Text mostly outside links, and more than a line of it: a box of prose, not a menu."""
    text = len(_SPACE.sub(" ", element.text_content()).strip())
    linked = sum(len(_SPACE.sub(" ", a.text_content()).strip()) for a in element.iter("a"))
    return text >= 200 and linked < 0.3 * text


def _in_admonition(element) -> bool:
    """A "Note" or "Warning" box's title is not a section of the document (PostgreSQL, Sphinx)."""
    return any(
        _ADMONITION.intersection((a.get("class") or "").lower().split())
        for a in element.iterancestors()
        if a.tag in {"div", "aside", "section", "blockquote"}
    )


def _numbered_title_level(element) -> int:
    """A bold paragraph holding only a numbered title is a heading where the markup has no h-tag
    for it (SiSU's books set "4.1 What is a live system?" as <p class="bold">): its level is the
    number's depth. 0 for any other paragraph."""
    text = _SPACE.sub(" ", element.text_content()).strip()
    match = _NUMBERED_TITLE.match(text)
    if match is None or text.endswith("."):
        return 0
    bold_class = "bold" in (element.get("class") or "").lower().split()
    in_bold = sum(len(b.text_content().strip()) for b in element.iter("b", "strong")) >= len(text) - len(match[1]) - 1
    return min(6, match[1].count(".") + 1) if bold_class or in_bold else 0


def _inside_content(element) -> bool:
    return any(
        a.tag in {"article", "main", "section"} or a.attrib.get("role") == "main" for a in element.iterancestors()
    )


class _Collector:
    """Inline text gathered until a block boundary."""

    def __init__(self, page_chars: int) -> None:
        self.page_chars = page_chars  # how much text the whole main element holds
        self.blocks: list[Block] = []
        self._inline: list[str] = []
        self.level = 0

    def add(self, text: str | None) -> None:
        if text:
            self._inline.append(text)

    def flush(self, pre: bool = False) -> None:
        raw = "".join(self._inline)
        self._inline = []
        if pre:
            text = raw.strip("\n").rstrip()
        else:
            text = "\n".join(_SPACE.sub(" ", part).strip() for part in raw.split("\x00"))
            text = re.sub(r"\n+", "\n", text).strip()
        if text.strip():
            self.blocks.append(Block(text, self.level))


def _walk(element, out: _Collector, top: bool = False) -> None:
    tag = element.tag.lower() if isinstance(element.tag, str) else ""
    if not tag:  # a comment or processing instruction: only its tail is text
        out.add(element.tail)
        return
    if not top and _is_furniture(element, tag, out.page_chars):
        out.add(element.tail)
        return
    if tag == "br":
        out.add("\x00")  # a line break that survives whitespace collapsing
    elif tag == "pre":
        out.flush()
        out.add(element.text_content())
        out.flush(pre=True)
    elif level := _HEADING.get(tag) or (_numbered_title_level(element) if tag == "p" else 0):
        out.flush()
        out.level = 0 if _in_admonition(element) else level
        out.add(element.text)
        for child in element:
            _walk(child, out)
        out.flush()
        out.level = 0
    else:
        block = tag in _BLOCK and tag not in _CELL
        if block:
            out.flush()
        elif tag in _CELL:
            out.add(" \t ")
        out.add(element.text)
        for child in element:
            _walk(child, out)
        if block:
            out.flush()
    if not top:
        out.add(element.tail)
