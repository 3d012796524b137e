"""The one tokenizer for BM25: the index and the queries must agree on it exactly."""

from __future__ import annotations

import re
from functools import lru_cache

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
