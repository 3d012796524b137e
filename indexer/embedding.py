"""New passages -> rows: the text the embedder and BM25 see for each passage, its vector
and tokens, and its sentences' vectors, embedded in batches with progress reported."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from cite.core.acronyms import defined_acronyms, spell_out
from cite.core.config import SplitSettings
from cite.core.embedder import Embedder
from cite.core.layout import SECTION_SEPARATOR, body_spans
from cite.core.lexical import tokenize
from cite.core.text import sentences_in_span
from cite.core.types import Document, Passage
from cite.indexer.rows import Row

# Called with (texts embedded so far, texts to embed in all): passages, titles, sentences.
Progress = Callable[[int, int], None]
EMBED_BATCH = 128


def indexing_text(title: str, text: str, section: str = "") -> str:
    """What the embedder and BM25 see for a passage: its document title and section path
    lead, when there are any ("Manual > 2 Objects > 2.1.8 Lazy arguments. Arguments are ...")."""
    context = SECTION_SEPARATOR.join(part for part in (title, section) if part)
    return f"{context}. {text}" if context else text


def embed_documents(
    fresh: list[tuple[Document, list[Passage]]],
    embedder: Embedder,
    progress: Progress | None,
    split: SplitSettings,
) -> tuple[dict[str, list[Row]], int]:
    """Embeds and tokenizes new passages, and embeds their sentences; a sentence shared by
    overlapping passages is embedded once. With "sentence-mean" passage vectors, a passage's
    vector is the mean of its sentences' and its title's vectors instead of a model run of
    its own. Returns the rows by document and how many texts the model embedded."""
    sentence_mean = split.passage_vectors == "sentence-mean"
    passage_texts: list[str] = []
    passage_tokens: list[list[str]] = []
    sentence_texts: dict[tuple[str, int, int], str] = {}
    layout = []
    for document, passages in fresh:
        acronyms = defined_acronyms(document.title + "\n" + document.text) if split.spell_out_acronyms else {}
        for passage in passages:
            section = passage.section if split.section_context else ""
            passage_texts.append(indexing_text(document.title, passage.text, section))
            passage_tokens.append(tokenize(spell_out(passage_texts[-1], acronyms)))
            # Heading lines inside a passage of several short sections are never quoted.
            spans = [
                sentence
                for first, last in body_spans(document, passage.start, passage.end)
                for sentence in sentences_in_span(document.text, first, last)
            ]
            for start, end, text in spans:
                sentence_texts.setdefault((document.doc, start, end), text)
            layout.append((document, passage, [(start, end) for start, end, _ in spans]))
    keys = list(sentence_texts)
    titles = sorted({d.title for d, _ in fresh if d.title}) if sentence_mean else []
    # Passages and short texts are embedded in separate runs: int8 activations are quantised
    # per batch, so a text's vector shifts slightly with its batch mates, and keeping
    # passages with passages keeps an index reproducible whatever else it holds.
    first = [] if sentence_mean else passage_texts
    second = titles + [sentence_texts[k] for k in keys]
    total = len(first) + len(second)
    passage_vectors = _embed(first, embedder, progress, 0, total)
    short_vectors = _embed(second, embedder, progress, len(first), total)
    title_vectors = dict(zip(titles, short_vectors, strict=False))
    sentence_vectors = short_vectors[len(titles) :]
    sentence_row = {key: i for i, key in enumerate(keys)}
    embedded: dict[str, list[Row]] = {document.doc: [] for document, _ in fresh}
    for i, (document, passage, spans) in enumerate(layout):
        own = sentence_vectors[[sentence_row[(document.doc, start, end)] for start, end in spans]].reshape(
            -1, embedder.dim
        )
        if sentence_mean:
            parts = np.vstack([own, [title_vectors[document.title]]]) if document.title else own
            vector = _unit_mean(parts, embedder.dim)
        else:
            vector = passage_vectors[i]
        embedded[document.doc].append(
            Row(passage, vector, passage_tokens[i], np.array(spans, dtype=np.int64).reshape(-1, 2), own)
        )
    return embedded, total


def _unit_mean(vectors: np.ndarray, dim: int) -> np.ndarray:
    if not len(vectors):
        return np.zeros(dim, dtype=np.float32)
    mean = vectors.mean(axis=0)
    return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)


def _embed(texts: list[str], embedder: Embedder, progress: Progress | None, done: int, total: int) -> np.ndarray:
    chunks = []
    for first in range(0, len(texts), EMBED_BATCH):
        chunks.append(embedder.encode(texts[first : first + EMBED_BATCH]))
        if progress:
            progress(done + min(first + EMBED_BATCH, len(texts)), total)
    return np.vstack(chunks) if chunks else np.zeros((0, embedder.dim), dtype=np.float32)
