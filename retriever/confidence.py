"""How sure are we that the documents answer the question? Seven signals, one calibrated score.

- sentence: cosine of the best-ranked answer sentence to the question,
- passage: cosine of the top passage,
- coverage: the IDF-weighted share of the question's words found in the top passages, so a
  question about something the passages never mention scores low even when its other
  words match well,
- known: the same share over the whole index (a word no document uses weighs heavily),
- best_sentence: the highest cosine of any sentence of the top passages to the question,
- top_sentence: the top hit's sentence-channel score (its best sentence's cosine),
- missing_name: 1 when a name the question uses ("Excel", "pg_dump", "GPU") is in none of
  the top passages and none of their documents, else 0.

Overlap signals (coverage, known) fall when a question is paraphrased; the cosines and the
names do not: a paraphrase changes the ordinary words, not the names, and a near-miss
question ("How do I export a plot to Excel?") usually names the one thing the documents lack.
The weights are fitted by logistic regression on eval sets with answerable and unanswerable
questions (`cite eval --calibrate`), not set by hand.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import astuple, dataclass

import numpy as np
from cite.core.lexical import LexicalIndex, tokenize
from cite.core.store import StoredIndex
from cite.retriever.question import ParsedQuestion


@dataclass(frozen=True)
class Evidence:
    """The signals, in `AnswerSettings.confidence_weights` order (then the bias)."""

    sentence: float
    passage: float
    coverage: float
    known: float  # IDF-weighted share of the question's words that occur anywhere in the index
    best_sentence: float  # the best cosine of any sentence of the top passages
    top_sentence: float  # the top hit's sentence-channel score
    missing_name: float  # 1.0: a name the question uses is in none of the top passages or their documents

    def vector(self) -> np.ndarray:
        return np.array(astuple(self), dtype=np.float64)


def coverage(index: StoredIndex, question: ParsedQuestion, texts: Sequence[str] | None) -> float:
    """IDF-weighted share of the question's (stemmed, non-stopword) words present in `texts`
    (None: anywhere in the index)."""
    wanted = question.terms
    if not wanted:
        return 0.0
    lexical = index.lexical
    present = set(tokenize(" ".join(texts))) if texts is not None else {t for t in wanted if lexical.has(t)}
    weights = term_weights(lexical, wanted)
    total = sum(weights.values())
    return sum(w for token, w in weights.items() if token in present) / total if total else 0.0


# Passages below which an index's IDF says little about how telling a word is (see term_weights).
SMALL_INDEX = 20


def term_weights(lexical: LexicalIndex, terms: frozenset[str]) -> dict[str, float]:
    """Each question word's weight in `coverage`: its IDF (a word no passage holds weighs most),
    blended toward equal weights as the index gets small. In an index of a few passages every
    word it holds looks common: a one-page scan gave its own words IDF .29 and an absent "much"
    1.39, and refused "How much did the dredging cost?", which its one passage answers."""
    idf = {token: lexical.idf(token) for token in terms}
    top = max(idf.values(), default=0.0)
    if top <= 0:
        return dict.fromkeys(terms, 1.0)
    trust = lexical.num_docs / (lexical.num_docs + SMALL_INDEX)
    return {token: trust * value / top + (1 - trust) for token, value in idf.items()}


def missing_name(
    question: ParsedQuestion, texts: Sequence[str], mentioned: Callable[[set[str]], set[str]] | None = None
) -> float:
    """1.0 when some name of the question occurs in none of `texts`, nor among the names that
    `mentioned` says the texts' documents hold, else 0.0.

    A passage need not repeat what its document is about: "Will PostgreSQL ask before a
    DELETE removes all rows?" is answered by a passage of PostgreSQL's DELETE page that never
    says "PostgreSQL", and "What gives Moscow leverage?" by one that says "Russia". A near-miss
    names what the documents never mention ("Excel", "pg_cron")."""
    missing = set(question.names) - set(tokenize(" ".join(texts))) if question.names else set()
    if missing and mentioned is not None:
        missing = missing - mentioned(missing)
    return float(bool(missing))


def confidence(evidence: Evidence, weights: Sequence[float]) -> float:
    """Logistic score in (0, 1): one weight per `Evidence` field, in order, then the bias."""
    features = evidence.vector()
    if len(weights) != len(features) + 1:
        raise ValueError(
            f"confidence_weights takes {len(features) + 1} numbers (one per Evidence signal, then the bias). "
            f"Currently, it has {len(weights)}."
        )
    *w, bias = weights
    z = float(np.dot(features, np.asarray(w))) + bias
    return 1.0 / (1.0 + math.exp(-z))
