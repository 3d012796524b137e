"""Hits -> an extractive answer: exact source sentences, each cited, or an honest abstention."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from itertools import combinations

import numpy as np
from cite.core.config import AnswerSettings
from cite.core.layout import citation, sections_at
from cite.core.store import StoredIndex, passage_text
from cite.core.types import Answer, Document, Hit
from cite.retriever.answer_type import AnswerType, holds_type
from cite.retriever.claims import check_claims, term_share
from cite.retriever.confidence import Evidence, confidence, coverage, missing_name
from cite.retriever.question import ParsedQuestion

SENTENCE_ENDS = (".", "!", "?", ":", ";")
CLOSING_QUOTES = " \t\n\"'”’)]"
MIN_SENTENCE_CHARS = 25
# How many following sentences of its passage may complete an answer sentence: the one that
# names who backed a plan is not always right after the one saying that it met resistance.
LOOKAHEAD = 2
# A sentence opening with one of these words points back at the one before it, which it needs
# to make sense as a quote ("It flows into the Caspian Sea.", "So to plot two columns from the
# same file:" after the sentence saying how); a next sentence opening with a demonstrative
# goes on about this one ("These variables begin with GPVAL_.").
ANAPHOR = re.compile(
    r"^(This|These|That|Those|Such|It|Its|They|Their|Them|He|She|His|Her"
    r"|Instead|Otherwise|Thus|Therefore|Hence|So|Then|For example|In this case|In that case|In such cases"
    r"|Because of (?:this|that)|For (?:this|that) reason|As a result|Consequently|Accordingly"
    r")(?![\w-])"  # not "So-called"
)
DEMONSTRATIVE = re.compile(r"^(This|These|That|Those|Such)\b")


@dataclass(frozen=True)
class Sentence:
    """A candidate answer sentence: normalised text plus its exact span in the original."""

    doc: str
    start: int
    end: int
    text: str
    vector: np.ndarray
    section: str = ""  # the section path of the body it is in
    rank: int = 1  # of the best-ranked hit whose passage holds it
    following: tuple[tuple[int, int], ...] = ()  # spans of the next sentences of its passage, up to LOOKAHEAD
    preceding: tuple[int, int] | None = None  # the sentence before it in its passage


def hit_sentences(hit: Hit, index: StoredIndex, rank: int = 1) -> list[Sentence]:
    """The sentences of a hit's passage (ranked `rank`), with the vectors the indexer stored for them."""
    spans, vectors = index.sentences_of(index.row_of[hit.passage.id])
    document = index.documents[hit.passage.doc]
    original = document.text
    pairs = [(int(start), int(end)) for start, end in spans]
    following = [tuple(pairs[i + 1 : i + 1 + LOOKAHEAD]) for i in range(len(pairs))]
    preceding = [None, *pairs[:-1]]
    own_sections = sections_at(document, [start for start, _ in pairs])  # a passage may hold several
    return [
        Sentence(
            hit.passage.doc,
            int(start),
            int(end),
            passage_text(original, start, end),
            vector,
            section,
            rank,
            after,
            before,
        )
        for (start, end), vector, after, before, section in zip(
            spans, vectors, following, preceding, own_sections, strict=True
        )
    ]


@dataclass(frozen=True)
class Scored:
    sentence: Sentence
    score: float  # what ranks sentences: cosine and query-word overlap
    cosine: float


def rank_sentences(
    question: ParsedQuestion,
    question_vector: np.ndarray,
    hits: list[Hit],
    index: StoredIndex,
    settings: AnswerSettings,
    asked: tuple[ParsedQuestion, np.ndarray] | None = None,
) -> list[Scored]:
    """Candidate answer sentences from the top hits, best first.

    `asked` is what the user typed (and its vector) when `question` was completed from an
    earlier turn: the follow-up's own meaning and words ("who supported it") count as much as
    the carried subject, or every answer would repeat the previous one."""
    candidates = _unique_sentences(
        s for rank, hit in enumerate(hits[: settings.passages], 1) for s in hit_sentences(hit, index, rank)
    )
    if not candidates:
        return []
    vectors = np.vstack([s.vector for s in candidates])
    cosines = vectors @ question_vector[0]
    if asked is not None:
        cosines = 0.5 * cosines + 0.5 * (vectors @ asked[1][0])
    own = asked[0] if asked else question  # what the user asked for, in their words
    weights = np.asarray(settings.sentence_weights)
    scored = [
        Scored(s, float(weights @ sentence_features(s, float(c), own.terms, own.wanted)), float(c))
        for s, c in zip(candidates, cosines, strict=True)
    ]
    return sorted(scored, key=lambda x: -x.score)


def sentence_features(sentence: Sentence, cosine: float, wanted: frozenset[str], wanted_type: AnswerType) -> np.ndarray:
    """What ranks a candidate answer sentence, in `AnswerSettings.sentence_weights` order: its
    cosine to the question, the share of the question's words it has, whether it holds the kind
    of answer asked for (a date for "when"), whether its passage ranked first, 1 / that rank."""
    return np.array(
        [
            cosine,
            term_share(wanted, sentence.text),
            float(holds_type(sentence.text, wanted_type)),
            float(sentence.rank == 1),
            1.0 / sentence.rank,
        ]
    )


def evidence_for(
    question: ParsedQuestion, ranked: list[Scored], hits: list[Hit], index: StoredIndex, settings: AnswerSettings
) -> Evidence:
    # The passages in the order fusion gave them: token re-ranking changes what is quoted, and
    # the abstention weights were fitted on the fused order's evidence.
    fused = sorted(hits, key=lambda hit: -hit.scores.get("fused", hit.score))
    top = fused[: settings.coverage_passages]
    top_texts = [hit.passage.text for hit in top]
    documents = {hit.passage.doc for hit in top}
    return Evidence(
        sentence=ranked[0].cosine if ranked else 0.0,
        passage=fused[0].scores.get("dense", 0.0) if fused else 0.0,
        coverage=coverage(index, question, top_texts),
        known=coverage(index, question, None),
        best_sentence=max((s.cosine for s in ranked), default=0.0),
        top_sentence=fused[0].scores.get("sentence", 0.0) if fused else 0.0,
        missing_name=missing_name(question, top_texts, lambda names: index.mentioned(names, documents)),
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
    parsed = ParsedQuestion.of(question)
    own = (ParsedQuestion.of(asked[0]), asked[1]) if asked else None
    ranked = rank_sentences(parsed, question_vector, hits, index, settings, own)
    score = confidence(evidence_for(parsed, ranked, hits, index, settings), settings.confidence_weights)
    if not ranked or score < settings.min_confidence:
        return _abstain(question, hits, score)
    chosen = [ranked[0]]
    for candidate in ranked[1:]:
        if len(chosen) >= settings.max_sentences or candidate.score < settings.keep_ratio * ranked[0].score:
            break
        similarity = max(float(candidate.sentence.vector @ c.sentence.vector) for c in chosen)
        if similarity < 0.9:  # near-duplicates say nothing new
            chosen.append(candidate)
    wanted_type = (own[0] if own else parsed).wanted
    cosines = {(s.sentence.doc, s.sentence.start): s.cosine for s in ranked}
    completed = [
        in_context(c.sentence, index.documents[c.sentence.doc].text, wanted_type, _goes_on(c, cosines, settings))
        for c in chosen
    ]
    quotes = _joined(_without_covered(completed), {s.doc: index.documents[s.doc].text for s in completed})
    return _cite(question, quotes, index.documents, hits, score)


def _goes_on(chosen: Scored, cosines: dict[tuple[str, int], float], settings: AnswerSettings) -> bool:
    """Whether the sentence after a chosen one is about the question nearly as much: its cosine
    is at least `settings.continue_ratio` of the chosen one's. A question often matches the
    sentence that sets the scene ("Caching errors of the package data cause ... BADSIG"),
    and the answer is the next one ("You should remove all cached data ... and try again.")."""
    sentence = chosen.sentence
    if not sentence.following:
        return False
    following = cosines.get((sentence.doc, sentence.following[0][0]))
    return following is not None and following >= settings.continue_ratio * chosen.cosine


def in_context(sentence: Sentence, original: str, wanted_type: AnswerType, goes_on: bool = False) -> Sentence:
    """The sentence with the neighbours it needs to make sense as a quote: the sentence before
    it when it points back, the next ones when they complete it or go on about the question."""
    return with_antecedent(completed_sentence(sentence, original, wanted_type, goes_on), original)


def completed_sentence(sentence: Sentence, original: str, wanted_type: AnswerType, goes_on: bool = False) -> Sentence:
    """The sentence, extended by the next ones of its passage when they complete the answer:
    the sentence was cut off (no closing punctuation: the next one ends it), it lacks the kind
    of answer asked for and one of the next `LOOKAHEAD` has it ("The proposal met resistance."
    + "Publicly, all were cautious." + "Only Putin supported it."), the next one goes on
    about it ("... read-only variables." + "These variables begin with GPVAL_."), or the next
    one is about the question nearly as much (`goes_on`)."""
    if not sentence.following:
        return sentence
    texts = [passage_text(original, *span) for span in sentence.following]
    if not sentence.text.rstrip(CLOSING_QUOTES).endswith(SENTENCE_ENDS):
        return _extended(sentence, original, 1)
    if wanted_type != "other" and not holds_type(sentence.text, wanted_type):
        holding = next((n for n, text in enumerate(texts, 1) if holds_type(text, wanted_type)), None)
        if holding is not None:
            return _extended(sentence, original, holding)
    return _extended(sentence, original, 1) if goes_on or DEMONSTRATIVE.match(texts[0]) else sentence


def with_antecedent(sentence: Sentence, original: str) -> Sentence:
    """The sentence, preceded by the one before it when it opens with a word pointing back
    ("This is called a self join." says nothing without "We can also join a table against itself.")."""
    if sentence.preceding is None or not ANAPHOR.match(sentence.text):
        return sentence
    start = sentence.preceding[0]
    return replace(sentence, start=start, text=passage_text(original, start, sentence.end), preceding=None)


def _extended(sentence: Sentence, original: str, count: int) -> Sentence:
    """The sentence with the next `count` sentences of its passage appended."""
    end = sentence.following[count - 1][1]
    return replace(sentence, end=end, text=passage_text(original, sentence.start, end), following=())


def _without_covered(sentences: list[Sentence]) -> list[Sentence]:
    """Drops a sentence that another, extended one already quotes (before or after it: a
    runner-up quoted with its neighbours may hold the best sentence), and repeats."""

    def covers(k: Sentence, s: Sentence) -> bool:
        return k.doc == s.doc and k.start <= s.start and s.end <= k.end

    return [
        s
        for i, s in enumerate(sentences)
        if not any(
            covers(k, s) and (j < i or k.end - k.start > s.end - s.start) for j, k in enumerate(sentences) if j != i
        )
    ]


def _joined(sentences: list[Sentence], originals: dict[str, str]) -> list[Sentence]:
    """Quotes of one document that overlap or follow each other directly become one quote, in
    reading order, where the first of them stood: an answer never repeats a sentence, and a
    passage read out in two pieces ("Don't fit a*exp(x+b)" + "Instead, fit a*exp(x).") is one."""
    quotes = list(sentences)
    for i, j in combinations(range(len(quotes)), 2):
        a, b = quotes[i], quotes[j]
        if a.doc == b.doc and _touch(a, b, originals[a.doc]):
            start, end = min(a.start, b.start), max(a.end, b.end)
            text = passage_text(originals[a.doc], start, end)
            quotes[i] = replace(a, start=start, end=end, text=text, following=(), preceding=None)
            del quotes[j]
            return _joined(quotes, originals)  # the longer quote may now touch another
    return quotes


def _touch(a: Sentence, b: Sentence, original: str) -> bool:
    """Whether two spans of `original` overlap or only white space lies between them."""
    first, second = (a, b) if a.start <= b.start else (b, a)
    return second.start <= first.end or not original[first.end : second.start].strip()


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
    citations = [citation(n, documents[s.doc], s.start, s.end, s.section) for n, s in enumerate(sentences, 1)]
    # The claim is the quoted source text itself: the check finds it verbatim (support 1.0).
    claims = check_claims([(s.text, (n,)) for n, s in enumerate(sentences, 1)], citations, embedder=None)
    text = " ".join(f"{s.text} [{n}]" for n, s in enumerate(sentences, 1))
    return Answer(text, tuple(citations), tuple(claims), tuple(hits), confidence, False, question)


def _abstain(question: str, hits: list[Hit], confidence: float) -> Answer:
    return Answer(None, (), (), tuple(hits), confidence, True, question)
