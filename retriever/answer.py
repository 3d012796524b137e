"""Hits -> an extractive answer: exact source sentences, each cited, or an honest abstention."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.config import AnswerSettings
from core.lexical import question_terms
from core.store import StoredIndex
from core.text import normalise
from core.types import Answer, Citation, Document, Hit
from retriever.claims import check_claims, term_share
from retriever.confidence import Evidence, confidence, coverage

# Sentence score = this share of question-sentence cosine + the rest of query-term overlap.
ANSWER_COSINE_SHARE = 0.75
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
        Sentence(
            hit.passage.doc, int(start), int(end), normalise(original[start:end]).text.replace("\n\n", " "), vector
        )
        for (start, end), vector in zip(spans, vectors, strict=True)
    ]


@dataclass(frozen=True)
class Scored:
    sentence: Sentence
    score: float  # what ranks sentences: cosine and query-word overlap
    cosine: float


def rank_sentences(
    question: str,
    question_vector: np.ndarray,
    hits: list[Hit],
    index: StoredIndex,
    settings: AnswerSettings,
    asked: tuple[str, np.ndarray] | None = None,
) -> list[Scored]:
    """Candidate answer sentences from the top hits, best first.

    `asked` is what the user typed (and its vector) when `question` was completed from an
    earlier turn: the follow-up's own meaning and words ("who supported it") count as much as
    the carried subject, or every answer would repeat the previous one."""
    candidates = _unique_sentences(s for hit in hits[: settings.passages] for s in hit_sentences(hit, index))
    if not candidates:
        return []
    vectors = np.vstack([s.vector for s in candidates])
    cosines = vectors @ question_vector[0]
    if asked is not None:
        cosines = 0.5 * cosines + 0.5 * (vectors @ asked[1][0])
    wanted = set(question_terms(asked[0] if asked else question))  # once, not per sentence
    scored = [
        Scored(s, ANSWER_COSINE_SHARE * float(c) + (1 - ANSWER_COSINE_SHARE) * term_share(wanted, s.text), float(c))
        for s, c in zip(candidates, cosines, strict=True)
    ]
    return sorted(scored, key=lambda x: -x.score)


def evidence_for(
    question: str, ranked: list[Scored], hits: list[Hit], index: StoredIndex, settings: AnswerSettings
) -> Evidence:
    return Evidence(
        sentence=ranked[0].cosine if ranked else 0.0,
        passage=hits[0].scores.get("dense", 0.0) if hits else 0.0,
        coverage=coverage(index, question, [hit.passage.text for hit in hits[: settings.coverage_passages]]),
        known=coverage(index, question, None),
    )


def extractive_answer(
    question: str,
    question_vector: np.ndarray,
    hits: list[Hit],
    index: StoredIndex,
    settings: AnswerSettings,
    asked: tuple[str, np.ndarray] | None = None,
) -> Answer:
    """Picks the sentences of the top hits that best answer the question, cites each one,
    and abstains when the calibrated confidence is below `settings.min_confidence`."""
    ranked = rank_sentences(question, question_vector, hits, index, settings, asked)
    score = confidence(evidence_for(question, ranked, hits, index, settings), settings.confidence_weights)
    if not ranked or score < settings.min_confidence:
        return _abstain(question, hits, score)
    chosen = [ranked[0]]
    for candidate in ranked[1:]:
        if len(chosen) >= settings.max_sentences or candidate.score < KEEP_RATIO * ranked[0].score:
            break
        similarity = max(float(candidate.sentence.vector @ c.sentence.vector) for c in chosen)
        if similarity < 0.9:  # near-duplicates say nothing new
            chosen.append(candidate)
    return _cite(question, [c.sentence for c in chosen], index.documents, hits, score)


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
    citations = [
        Citation(n, s.doc, s.start, s.end, documents[s.doc].text[s.start : s.end]) for n, s in enumerate(sentences, 1)
    ]
    # The claim is the quoted source text itself: the check finds it verbatim (support 1.0).
    claims = check_claims([(s.text, (n,)) for n, s in enumerate(sentences, 1)], citations, embedder=None)
    text = " ".join(f"{s.text} [{n}]" for n, s in enumerate(sentences, 1))
    return Answer(text, tuple(citations), tuple(claims), tuple(hits), confidence, False, question)


def _abstain(question: str, hits: list[Hit], confidence: float) -> Answer:
    return Answer(None, (), (), tuple(hits), confidence, True, question)
