"""How sure are we that the documents answer the question? Three signals, one calibrated score.

- sentence: cosine of the best answer sentence to the question,
- passage: cosine of the top passage,
- coverage: the IDF-weighted share of the question's words found in the top passages, so a
  question about something the documents never mention ("the population of Kazakhstan")
  scores low even when its other words match well.

The weights are fitted by logistic regression on an eval set with answerable and
unanswerable questions (`python -m eval.calibrate`), not set by hand.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.lexical import tokenize
from core.store import StoredIndex


@dataclass(frozen=True)
class Evidence:
    sentence: float
    passage: float
    coverage: float

    def vector(self) -> np.ndarray:
        return np.array([self.sentence, self.passage, self.coverage], dtype=np.float64)


def idf(index: StoredIndex, token: str) -> float:
    """BM25's IDF from the lexical index; a word the index has never seen gets the maximum."""
    n = len(index.passages)
    row = index.bm25.vocab_dict.get(token)
    indptr = index.bm25.scores["indptr"]
    df = 0 if row is None else int(indptr[row + 1] - indptr[row])
    return math.log(1 + (n - df + 0.5) / (df + 0.5))


def coverage(index: StoredIndex, question: str, texts: Sequence[str]) -> float:
    """IDF-weighted share of the question's (stemmed, non-stopword) words present in `texts`."""
    wanted = set(tokenize(question))
    if not wanted:
        return 0.0
    present = set(tokenize(" ".join(texts)))
    weights = {token: idf(index, token) for token in wanted}
    total = sum(weights.values())
    return sum(w for token, w in weights.items() if token in present) / total if total else 0.0


def confidence(evidence: Evidence, weights: Sequence[float]) -> float:
    """Logistic score in (0, 1): weights are (sentence, passage, coverage, bias)."""
    *w, bias = weights
    z = float(np.dot(evidence.vector(), np.asarray(w))) + bias
    return 1.0 / (1.0 + math.exp(-z))
