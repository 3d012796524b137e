"""Hits -> an extractive answer: exact source sentences, each cited, or an honest abstention."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.config import AnswerSettings
from core.lexical import tokenize
from core.store import StoredIndex
from core.text import normalise
from core.types import Answer, Citation, Claim, Document, Hit

# Sentence score = this share of question-sentence cosine + the rest of query-term overlap.
COSINE_SHARE = 0.75
# A second or third sentence must score at least this share of the best one.
KEEP_RATIO = 0.8
MIN_SENTENCE_CHARS = 25


@dataclass(frozen=True)
class Sentence:
    """A candidate answer sentence: normalised text plus its exact span in the original."""

    doc: str
    start: int
    end: int
    text: str
    vector: np.ndarray


def hit_sentences(hit: Hit, index: StoredIndex) -> list[Sentence]:
    """The sentences of a hit's passage, with the vectors the indexer stored for them."""
    spans, vectors = index.sentences_of(index.row_of[hit.passage.id])
    original = index.documents[hit.passage.doc].text
    return [
        Sentence(hit.passage.doc, int(start), int(end), normalise(original[start:end]).text.replace("\n\n", " "), vector)
        for (start, end), vector in zip(spans, vectors, strict=True)
    ]


def query_overlap(question: str, sentence: str) -> float:
    """Share of the question's content words (stemmed) that the sentence contains."""
    wanted = set(tokenize(question))
    if not wanted:
        return 0.0
    return len(wanted & set(tokenize(sentence))) / len(wanted)


def confidence_of(best_sentence: float, top_hit_dense: float) -> float:
    """How sure we are the documents answer the question, in [0, 1]-ish units of cosine."""
    return float(0.5 * best_sentence + 0.5 * top_hit_dense)


def extractive_answer(
    question: str, question_vector: np.ndarray, hits: list[Hit], index: StoredIndex, settings: AnswerSettings
) -> Answer:
    """Picks the sentences of the top hits that best answer the question, cites each one,
    and abstains when the best evidence is below `settings.min_confidence`."""
    candidates = _unique_sentences(s for hit in hits[: settings.passages] for s in hit_sentences(hit, index))
    if not candidates:
        return _abstain(question, hits, 0.0)
    vectors = np.vstack([s.vector for s in candidates])
    cosines = vectors @ question_vector[0]
    scores = np.array(
        [COSINE_SHARE * c + (1 - COSINE_SHARE) * query_overlap(question, s.text) for s, c in zip(candidates, cosines)]
    )
    order = np.argsort(-scores, kind="stable")
    confidence = confidence_of(float(cosines[order[0]]), hits[0].scores.get("dense", 0.0))
    if confidence < settings.min_confidence:
        return _abstain(question, hits, confidence)
    chosen = [int(order[0])]
    for i in order[1:]:
        if len(chosen) >= settings.max_sentences or scores[i] < KEEP_RATIO * scores[order[0]]:
            break
        if max(float(vectors[i] @ vectors[j]) for j in chosen) < 0.9:  # near-duplicates say nothing new
            chosen.append(int(i))
    return _cite(question, [candidates[i] for i in chosen], index.documents, hits, confidence)


def _unique_sentences(sentences) -> list[Sentence]:
    """Overlapping passages repeat sentences; keep each span once, and only real sentences."""
    seen: set[tuple[str, int]] = set()
    unique = []
    for sentence in sentences:
        key = (sentence.doc, sentence.start)
        if key not in seen and len(sentence.text) >= MIN_SENTENCE_CHARS:
            seen.add(key)
            unique.append(sentence)
    return unique


def _cite(
    question: str, sentences: list[Sentence], documents: dict[str, Document], hits: list[Hit], confidence: float
) -> Answer:
    citations = []
    claims = []
    parts = []
    for n, sentence in enumerate(sentences, start=1):
        quote = documents[sentence.doc].text[sentence.start : sentence.end]
        citations.append(Citation(n, sentence.doc, sentence.start, sentence.end, quote))
        # Extractive: the claim is the quoted source text itself, so support is exact.
        claims.append(Claim(sentence.text, (n,), supported=True, support=1.0))
        parts.append(f"{sentence.text} [{n}]")
    return Answer(" ".join(parts), tuple(citations), tuple(claims), tuple(hits), confidence, False, question)


def _abstain(question: str, hits: list[Hit], confidence: float) -> Answer:
    return Answer(None, (), (), tuple(hits), confidence, True, question)
