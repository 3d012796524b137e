"""The one tokenizer for BM25 (the index and the queries must agree on it exactly), and the
one lexical index type over its tokens."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import numpy as np

TOKENIZER_NAME = "words-lower-stopwords-en-snowball-english-v1"
_WORD = re.compile(r"\w+", re.UNICODE)


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer  # PyStemmer: C snowball, fast enough to stem whole corpora

    return Stemmer.Stemmer("english")


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


def tokenize(text: str) -> list[str]:
    """Lowercased words, English stopwords dropped, Snowball-stemmed."""
    stop = _stopwords()
    words = [w for w in _WORD.findall(text.lower()) if w not in stop]
    return _stemmer().stemWords(words)


# Words that shape a question but say nothing about its subject ("Where does ... flow?").
QUESTION_WORDS = frozenset(
    "what who whom whose when where why how which whether does do did doe is are was were be been "
    "can could would should will shall may might must have has had tell me please".split()
)


def question_terms(text: str) -> list[str]:
    """`tokenize`, without the words that only make it a question."""
    dropped = set(_stemmer().stemWords(list(QUESTION_WORDS)))
    return [token for token in tokenize(text) if token not in dropped]


class LexicalIndex:
    """BM25 over the passages' tokens (bm25s, Lucene variant): the one place that knows bm25s.

    Build it from tokens (`build`) or open a saved one memory-mapped (`load`); rows are
    passages, in the order their tokens were given."""

    K1 = 1.2
    B = 0.75

    def __init__(self, bm25: Any) -> None:
        """Wraps a bm25s.BM25 that has been indexed; use `build` or `load` instead."""
        self._bm25 = bm25

    @classmethod
    def build(cls, tokens: Sequence[list[str]]) -> LexicalIndex:
        """BM25 over `tokens`, one list per passage. Its statistics (IDF, mean length) cover all of
        them, so scores do not depend on how passages happen to be split into segments."""
        import bm25s

        bm25 = bm25s.BM25(k1=cls.K1, b=cls.B)
        bm25.index(list(tokens), show_progress=False)
        return cls(bm25)

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex:
        """Opens an index `save` wrote, its arrays memory-mapped.

        Raises:
            OSError, ValueError, KeyError: when the folder is missing or damaged.
        """
        import bm25s

        return cls(bm25s.BM25.load(str(folder), mmap=True))

    def save(self, folder: Path) -> None:
        """Writes the index as bm25s does (its arrays and a params and vocabulary file)."""
        self._bm25.save(str(folder))

    @property
    def num_docs(self) -> int:
        """How many passages (rows) the index scores."""
        return int(self._bm25.scores["num_docs"])

    @cached_property
    def vocab(self) -> frozenset[str]:
        """Every token some passage holds."""
        return frozenset(token for token in self._bm25.vocab_dict if token)

    def has(self, token: str) -> bool:
        """Whether some passage holds `token`. (bm25s keeps "" as a placeholder; it is no token.)"""
        return bool(token) and token in self._bm25.vocab_dict

    def df(self, token: str) -> int:
        """How many passages hold `token` (0 for a token the index has never seen)."""
        column = self._bm25.vocab_dict.get(token)
        if column is None:
            return 0
        indptr = self._bm25.scores["indptr"]  # one column of passage scores per token: its length is the df
        return int(indptr[column + 1] - indptr[column])

    def idf(self, token: str) -> float:
        """The IDF BM25 weighs `token` with; a token the index has never seen gets the maximum."""
        from bm25s.scoring import _select_idf_scorer  # bm25s' own formula for its IDF variant

        return float(_select_idf_scorer(self._bm25.idf_method)(self.df(token), N=self.num_docs))

    def scores(self, tokens: Sequence[str]) -> np.ndarray:
        """BM25 score of every passage for a query of `tokens` (tokens the index has never seen
        count for nothing; zeros when none is known)."""
        known = [token for token in tokens if self.has(token)]
        if not known:
            return np.zeros(self.num_docs, dtype=np.float32)
        return np.asarray(self._bm25.get_scores(known), dtype=np.float32)
