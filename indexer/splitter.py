"""Documents -> passages: sentence-aware, size-bounded, with offsets into the original text."""

from __future__ import annotations

from collections.abc import Iterator

from cite.core.config import SplitSettings
from cite.core.layout import Section, page_at, sections
from cite.core.text import normalise, normalised_text, sentence_spans
from cite.core.types import Document, Passage, content_id


def split_document(document: Document, settings: SplitSettings) -> list[Passage]:
    """Packs whole sentences into passages of at most `settings.max_chars` characters.

    A passage does not cross a heading into a section too big to share it: a long section is
    split on its own, and consecutive short sections (a reference page's one-line entries, a
    manual's heading every few paragraphs) go into one passage together, up to the limit, so
    that none is a sentence or two that loses to a neighbour's longer passage. Each passage
    carries the section path and the page it starts on; each sentence of it keeps its own
    section (`core.layout.sections_at`), and heading lines are never quoted (`body_spans`).
    Consecutive passages of a section share `settings.overlap_sentences` sentences, so an
    answer that straddles a boundary is still whole in one passage. A sentence longer than
    the limit is cut at spaces. Every passage maps back: `document.text[p.start:p.end]` is
    its source.
    """
    passages: list[Passage] = []
    for run in _runs(document, settings.max_chars):
        if len(run) == 1:
            passages += _split_span(document, run[0].start, run[0].end, run[0].path, settings)
        else:
            passages.append(_merged(document, run))
    return passages


def _runs(document: Document, limit: int) -> Iterator[list[Section]]:
    """The document's sections, consecutive ones grouped while their bodies fit one passage."""
    run: list[Section] = []
    size = 0
    for section in sections(document):
        length = len(normalised_text(document.text[section.start : section.end]))
        if length == 0:
            continue
        if run and size + 1 + length > limit:
            yield run
            run, size = [], 0
        size += length + (1 if run else 0)
        run.append(section)
    if run:
        yield run


def _merged(document: Document, run: list[Section]) -> Passage:
    """One passage over several whole short sections (their heading lines between them included:
    they are words the passage is about, though never quoted)."""
    first, last = _trimmed(document, run[0]), _trimmed(document, run[-1])
    start, end = first[0], last[1]
    return _passage(document, start, end, normalised_text(document.text[start:end]).replace("\n\n", " "), run[0].path)


def _passage(document: Document, start: int, end: int, text: str, path: str) -> Passage:
    """The passage `document.text[start:end]`, whose normalised text is `text`."""
    return Passage(
        content_id(document.doc, str(start), text), document.doc, start, end, text, page_at(document, start), path
    )


def _trimmed(document: Document, section: Section) -> tuple[int, int]:
    """A section's body span without the whitespace at its ends."""
    body = document.text[section.start : section.end]
    lead = len(body) - len(body.lstrip())
    return section.start + lead, section.start + len(body.rstrip())


def _split_span(document: Document, first_char: int, last_char: int, path: str, settings: SplitSettings):
    norm = normalise(document.text[first_char:last_char])
    # A list is packed as one unit, as a paragraph is: cut between its items, a passage took a
    # list's tail with the next topic, and bash's manual lost 2 of 46 questions at rank 1.
    spans = sentence_spans(norm.text, bullets=False)
    units = [piece for span in spans for piece in _cut_long(norm.text, span, settings.max_chars)]
    passages: list[Passage] = []
    first = 0
    while first < len(units):
        last = first
        while last + 1 < len(units) and units[last + 1][1] - units[first][0] <= settings.max_chars:
            last += 1
        start, end = units[first][0], units[last][1]
        text = norm.text[start:end].replace("\n\n", " ")
        original_start, original_end = (first_char + offset for offset in norm.span(start, end))
        passages.append(_passage(document, original_start, original_end, text, path))
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
