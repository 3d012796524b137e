"""HTML for the web UI: answers, sources, search results and whole documents.

Everything from a document is escaped here, so a document's HTML or script is shown as
text and never runs, and its Markdown (an image, a link) is shown as text and never
makes the browser fetch anything.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from html import escape

from cite.core.layout import SECTION_SEPARATOR
from cite.core.text import normalise
from cite.core.types import Answer, Citation, Document, Hit

_SCORE_NAMES = (("dense", "dense"), ("bm25", "BM25"), ("sentence", "sentence"), ("fused", "fused"))
# Every ASCII punctuation character: CommonMark shows a backslash-escaped one as itself, so
# nothing in the text can open an image, a link, an autolink (`http\://`), HTML or emphasis.
_MARKDOWN_PUNCTUATION = re.compile(r"""([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])""")


def markdown_text(text: str) -> str:
    """`text` as Markdown that renders as exactly that text (for a chat message)."""
    return _MARKDOWN_PUNCTUATION.sub(r"\\\1", text)


def scores_line(scores: dict[str, float], support: float | None = None) -> str:
    parts = [f"{label} <b>{scores[key]:.3f}</b>" for key, label in _SCORE_NAMES if key in scores]
    if support is not None:
        parts.append(f"support <b>{support:.2f}</b>")
    return f'<div class="scores">{" · ".join(parts)}</div>'


def page_label(page: int | None, last_page: int | None = None) -> str:
    """`p. 10`, or `pp. 10–11` for a span running over a page break; "" without pages."""
    if not page:
        return ""
    return f"pp. {page}–{last_page}" if last_page and last_page != page else f"p. {page}"


def place(
    doc: str, start: int, end: int, page: int | None = None, section: str = "", last_page: int | None = None
) -> str:
    """Where a span is, as a reader cites it: `manual.pdf p. 10, §2.1.8 Lazy arguments`, then
    the exact characters; a document without pages or headings gives its name and characters."""
    pages = page_label(page, last_page)
    parts = [doc] + ([pages] if pages else []) + ([f"§{section_title(section)}"] if section else [])
    return f"{parts[0]} {', '.join(parts[1:])} [{start}-{end}]" if len(parts) > 1 else f"{doc}:{start}-{end}"


def section_title(section: str, limit: int = 60) -> str:
    """The innermost heading of a section path, clipped."""
    title = section.rsplit(SECTION_SEPARATOR, 1)[-1]
    return title if len(title) <= limit else title[: limit - 1].rstrip() + "…"


def location(
    doc: str, start: int, end: int, page: int | None = None, section: str = "", last_page: int | None = None
) -> str:
    pages = page_label(page, last_page)
    where = "".join([f" · {pages}" if pages else "", f" · §{escape(section_title(section))}" if section else ""])
    return f"{escape(doc)}{where} · chars {start:,}–{end:,}"


def citation_location(citation: Citation) -> str:
    return location(citation.doc, citation.start, citation.end, citation.page, citation.section, citation.end_page)


def chat_message(answer: Answer) -> str:
    """The assistant's chat bubble (Markdown): the answer, or a plain abstention."""
    if answer.abstained:
        return (
            "**The documents don't say this.** I found no passage that answers it "
            f"(confidence {answer.confidence:.2f}). The closest passages are under *Sources*."
        )
    unsupported = [c for c in answer.claims if not c.supported]
    notes = "".join(
        f"\n\n⚠ *Not supported by its citation (support {c.support:.2f}):* {markdown_text(c.text)}"
        for c in unsupported
    )
    return f"{markdown_text(answer.text or '')}\n\n<sub>confidence {answer.confidence:.2f}</sub>{notes}"


def sources_panel(answer: Answer | None) -> str:
    """Each citation with its passage, the quoted sentence highlighted, and its scores."""
    if answer is None:
        return '<div class="empty">Ask a question: the passages an answer cites appear here.</div>'
    if answer.abstained:
        cards = [_hit_card(hit, rank) for rank, hit in enumerate(answer.hits[:3], start=1)]
        return '<div class="abstain-note">Closest passages (not enough to answer):</div>' + "".join(cards)
    hits_by_doc: dict[str, list[Hit]] = {}
    for hit in answer.hits:
        hits_by_doc.setdefault(hit.passage.doc, []).append(hit)
    support = {n: claim.support for claim in answer.claims for n in claim.citations}
    sentence = {n: claim.text for claim in answer.claims for n in claim.citations}
    cards = []
    for citation in answer.citations:
        hit = _hit_containing(hits_by_doc.get(citation.doc, []), citation)
        said = sentence.get(citation.n, " ".join(citation.quote.split()))
        context = _passage_with_mark(hit.passage.text, said) if hit else f"<mark>{escape(said)}</mark>"
        scores = scores_line(hit.scores if hit else {}, support.get(citation.n))
        cards.append(
            f'<div class="card" id="source-{citation.n}">'
            f'<div class="card-head"><span class="marker">[{citation.n}]</span> '
            f"{citation_location(citation)}</div>"
            f'<div class="passage">{context}</div>{scores}</div>'
        )
    return "".join(cards)


def hits_list(hits: Sequence[Hit], texts: Mapping[str, str] | None = None) -> str:
    """Search results: ranked passages with their places and scores, and (given the
    documents' texts) the sentence closest to the question highlighted."""
    if not hits:
        return '<div class="empty">No passage matches.</div>'
    return "".join(_hit_card(hit, rank, texts) for rank, hit in enumerate(hits, start=1))


def document_texts(documents: Mapping[str, Document], hits: Sequence[Hit]) -> dict[str, str]:
    """The original text of each document the hits come from: what their sentence spans index into."""
    return {hit.passage.doc: documents[hit.passage.doc].text for hit in hits}


def sentence_text(original: str, span: tuple[int, int]) -> str:
    """A sentence's source span as the normalised text passages are shown in."""
    return normalise(original[span[0] : span[1]]).text.replace("\n\n", " ")


def document_view(doc: str, text: str, spans: Sequence[tuple[int, int]], current: tuple[int, int] | None) -> str:
    """The whole original document, every span in `spans` marked and `current` highlighted
    (it may lie inside a marked span, like a sentence inside its passage)."""
    bounds = sorted({0, len(text), *(p for span in spans for p in span), *(current or ())})
    pieces = []
    for start, end in zip(bounds, bounds[1:], strict=False):
        piece = escape(text[start:end])
        if current and current[0] <= start and end <= current[1]:
            pieces.append(f'<mark class="current">{piece}</mark>')
        elif any(a <= start and end <= b for a, b in spans):
            pieces.append(f'<mark class="cited">{piece}</mark>')
        else:
            pieces.append(piece)
    return f'<div class="doc-title">{escape(doc)}</div><div class="doc-text" id="doc-text">{"".join(pieces)}</div>'


def page_view(png: bytes, doc: str, page: int) -> str:
    """The cited page of a PDF as the reader sees it, the quoted span highlighted."""
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<div class="page-view"><div class="doc-title">{escape(doc)} · page {page}</div>'
        f'<img alt="page {page} of {escape(doc)}, the quote highlighted" src="data:image/png;base64,{data}"></div>'
    )


def _hit_card(hit: Hit, rank: int, texts: Mapping[str, str] | None = None) -> str:
    passage = hit.passage
    if texts and hit.sentence and passage.doc in texts:
        body = _passage_with_mark(passage.text, sentence_text(texts[passage.doc], hit.sentence))
    else:
        body = escape(passage.text)
    return (
        f'<div class="card"><div class="card-head"><span class="marker">#{rank}</span> '
        f"{location(passage.doc, passage.start, passage.end, passage.page, passage.section)}</div>"
        f'<div class="passage">{body}</div>{scores_line(hit.scores)}</div>'
    )


def _hit_containing(hits: list[Hit], citation: Citation) -> Hit | None:
    for hit in hits:
        if hit.passage.start <= citation.start and citation.end <= hit.passage.end:
            return hit
    return None


def _passage_with_mark(passage_text: str, sentence: str) -> str:
    """The passage's (normalised) text with the cited (normalised) sentence marked."""
    at = passage_text.find(sentence)
    if at < 0:
        return f"<mark>{escape(sentence)}</mark>"
    end = at + len(sentence)
    return f"{escape(passage_text[:at])}<mark>{escape(sentence)}</mark>{escape(passage_text[end:])}"
