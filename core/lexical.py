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
