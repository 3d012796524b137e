"""How sure are we that the documents answer the question? Four signals, one calibrated score.

- sentence: cosine of the best answer sentence to the question,
- passage: cosine of the top passage,
- coverage: the IDF-weighted share of the question's words found in the top passages, so a
  question about something the passages never mention scores low even when its other
  words match well,
- known: the same share over the whole index (a word no document uses weighs heavily).

The weights are fitted by logistic regression on an eval set with answerable and
unanswerable questions (`cite eval --calibrate`), not set by hand.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.lexical import question_terms, tokenize
from core.store import StoredIndex


@dataclass(frozen=True)
class Evidence:
    sentence: float
    passage: float
    coverage: float
    known: float  # IDF-weighted share of the question's words that occur anywhere in the index

    def vector(self) -> np.ndarray:
        return np.array([self.sentence, self.passage, self.coverage, self.known], dtype=np.float64)


def coverage(index: StoredIndex, question: str, texts: Sequence[str] | None) -> float:
    """IDF-weighted share of the question's (stemmed, non-stopword) words present in `texts`
    (None: anywhere in the index)."""
    wanted = set(question_terms(question))
    if not wanted:
        return 0.0
    lexical = index.lexical
    present = set(tokenize(" ".join(texts))) if texts is not None else {t for t in wanted if lexical.has(t)}
    weights = {token: lexical.idf(token) for token in wanted}  # a word no passage holds weighs most
    total = sum(weights.values())
    return sum(w for token, w in weights.items() if token in present) / total if total else 0.0


def confidence(evidence: Evidence, weights: Sequence[float]) -> float:
    """Logistic score in (0, 1): weights are (sentence, passage, coverage, known, bias)."""
    *w, bias = weights
    z = float(np.dot(evidence.vector(), np.asarray(w))) + bias
    return 1.0 / (1.0 + math.exp(-z))
