"""Headings of plain-text formats: Markdown (`#` and setext) and reStructuredText (underlined
titles). The text itself is kept exactly as in the file."""

from __future__ import annotations

import re

from cite.core.types import Heading

_ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_RST_RULE = re.compile(r"^([=\-~^\"'`*+#:._])\1{2,}[ \t]*$")
_LINES = re.compile(r"[^\n]*\n?")


def _lines(text: str) -> list[tuple[int, str]]:
    """(offset, line without its line break) for each line."""
    return [(m.start(), m.group().rstrip("\r\n")) for m in _LINES.finditer(text) if m.group()]


def _span(offset: int, line: str, inner: str) -> tuple[int, int]:
    start = offset + line.index(inner) if inner else offset
    return start, start + len(inner)


def markdown_headings(text: str) -> tuple[Heading, ...]:
    """ATX (`## Title`) and setext (a line underlined with `===` or `---`) headings outside code
    fences. A heading's span is its title, without the `#` marks."""
    headings: list[Heading] = []
    lines = _lines(text)
    fenced = False
    for i, (offset, line) in enumerate(lines):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if fenced:
            continue
        atx = _ATX.match(line)
        if atx and atx.group(2):
            headings.append(Heading(*_span(offset, line, atx.group(2)), len(atx.group(1))))
            continue
        follows_blank = i == 0 or not lines[i - 1][1].strip()
        if i + 1 < len(lines) and line.strip() and follows_blank and not _ATX.match(line):
            underline = _SETEXT.match(lines[i + 1][1])
            if underline and not line.lstrip().startswith(("- ", "* ", "+ ", ">")):
                headings.append(Heading(*_span(offset, line, line.strip()), 1 if underline.group(1)[0] == "=" else 2))
    return tuple(headings)


def rst_headings(text: str) -> tuple[Heading, ...]:
    """Section titles underlined (optionally overlined) with a punctuation rule at least as long;
    levels follow the order in which each rule style first appears, as reStructuredText defines."""
    headings: list[Heading] = []
    styles: list[tuple[str, bool]] = []
    lines = _lines(text)
    for i in range(len(lines) - 1):
        offset, line = lines[i]
        title = line.strip()
        rule = _RST_RULE.match(lines[i + 1][1])
        if not title or not rule or _RST_RULE.match(line) or len(lines[i + 1][1].rstrip()) < len(title):
            continue
        over = i > 0 and lines[i - 1][1].rstrip() == lines[i + 1][1].rstrip()
        if not over and i > 0 and lines[i - 1][1].strip():
            continue  # a rule under a paragraph's last line is a transition, not a title
        style = (rule.group(1), over)
        if style not in styles:
            styles.append(style)
        headings.append(Heading(*_span(offset, line, title), styles.index(style) + 1))
    return tuple(headings)
