"""Documents -> passages: sentence-aware, size-bounded, with offsets into the original text."""

from __future__ import annotations

from cite.core.config import SplitSettings
from cite.core.layout import page_at, sections
from cite.core.text import normalise, sentence_spans
from cite.core.types import Document, Passage, content_id


def split_document(document: Document, settings: SplitSettings) -> list[Passage]:
    """Packs whole sentences into passages of at most `settings.max_chars` characters.

    Passages never cross a heading: each section's body is split on its own, and each
    passage carries its section path and the page it starts on. Consecutive passages of a
    section share `settings.overlap_sentences` sentences, so an answer that straddles a
    boundary is still whole in one passage. A sentence longer than the limit is cut at
    spaces. Every passage maps back: `document.text[p.start:p.end]` is its source.
    """
    return [
        passage
        for section in sections(document)
        for passage in _split_span(document, section.start, section.end, section.path, settings)
    ]


def _split_span(document: Document, first_char: int, last_char: int, path: str, settings: SplitSettings):
    norm = normalise(document.text[first_char:last_char])
    units = [piece for span in sentence_spans(norm.text) for piece in _cut_long(norm.text, span, settings.max_chars)]
    passages: list[Passage] = []
    first = 0
    while first < len(units):
        last = first
        while last + 1 < len(units) and units[last + 1][1] - units[first][0] <= settings.max_chars:
            last += 1
        start, end = units[first][0], units[last][1]
        text = norm.text[start:end].replace("\n\n", " ")
        original_start, original_end = (first_char + offset for offset in norm.span(start, end))
        passages.append(
            Passage(
                id=content_id(document.doc, str(original_start), text),
                doc=document.doc,
                start=original_start,
                end=original_end,
                text=text,
                page=page_at(document, original_start),
                section=path,
            )
        )
        if last + 1 >= len(units):
            break
        # Step forward, keeping an overlap but always making progress.
        first = max(first + 1, last + 1 - settings.overlap_sentences)
    return passages


def _cut_long(text: str, span: tuple[int, int], limit: int) -> list[tuple[int, int]]:
    """Cuts a span longer than `limit` at spaces (or hard, when it has none)."""
    start, end = span
    pieces = []
    while end - start > limit:
        cut = text.rfind(" ", start + 1, start + limit)
        cut = cut if cut > start else start + limit
        pieces.append((start, cut))
        start = cut + 1 if text[cut : cut + 1] == " " else cut
    pieces.append((start, end))
    return pieces
