"""Checks each answer sentence against the source text it cites.

A sentence that is the cited text itself (extractive answers) is supported exactly. Any
other sentence (a generated one) scores by how much of it the cited text backs: its
meaning (cosine) and its content words (share found in the quote); below SUPPORTED it is
marked unsupported, whatever the model claimed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from cite.core.embedder import Embedder
from cite.core.lexical import question_terms, tokenize
from cite.core.text import normalised_text
from cite.core.types import Citation, Claim

SUPPORTED = 0.6
SUPPORT_COSINE_SHARE = 0.5  # a claim's support: this share of meaning, the rest content words
_MARKER = re.compile(r"\s*\[(\d+)\]")


def _plain(text: str) -> str:
    return " ".join(normalised_text(text).lower().split())


def term_share(wanted: set[str], text: str) -> float:
    """Share of the `wanted` terms (from `question_terms`) that the text contains."""
    return len(wanted & _terms(text)) / len(wanted) if wanted else 0.0


@lru_cache(maxsize=4096)
def _terms(text: str) -> frozenset[str]:
    """A sentence's terms, kept for the sentences of recently quoted passages: the same ones
    come back question after question (about 40 us each to stem again)."""
    return frozenset(tokenize(text))


def word_support(claim: str, quote: str) -> float:
    """Share of the claim's (or question's) content words, stemmed, that the quote contains."""
    return term_share(set(question_terms(claim)), quote)


def support_score(claim: str, quotes: Sequence[str], embedder: Embedder | None) -> float:
    """1.0 when the claim is verbatim cited text; else the best blend of meaning and words
    (words alone without an embedder)."""
    if not quotes:
        return 0.0
    plain = _plain(claim)
    if any(plain and plain in _plain(quote) for quote in quotes):
        return 1.0
    if embedder is None:
        return max(word_support(claim, quote) for quote in quotes)
    vectors = embedder.encode([claim, *quotes])
    cosines = vectors[1:] @ vectors[0]
    blended = [
        SUPPORT_COSINE_SHARE * float(c) + (1 - SUPPORT_COSINE_SHARE) * word_support(claim, q)
        for c, q in zip(cosines, quotes, strict=True)
    ]
    return max(blended)


def split_claims(answer: str) -> list[tuple[str, tuple[int, ...]]]:
    """Splits an answer into sentences, each with the [n] markers that follow it.

    Markers directly after a sentence belong to it: "A rose. [1][2] B fell. [3]"."""
    claims: list[tuple[str, tuple[int, ...]]] = []
    for piece in re.split(r"(?<=[.!?])\s+(?=[^\s\[])|(?<=\])\s+(?=[^\s\[])", answer.strip()):
        numbers = tuple(int(n) for n in _MARKER.findall(piece))
        text = _MARKER.sub("", piece).strip()
        if text:
            claims.append((text, numbers))
        elif numbers and claims:  # markers alone: they belong to the sentence before
            previous, earlier = claims[-1]
            claims[-1] = (previous, earlier + numbers)
    return claims


def check_claims(
    sentences: Sequence[tuple[str, tuple[int, ...]]], citations: Sequence[Citation], embedder: Embedder | None
) -> list[Claim]:
    """A Claim per sentence: supported when its citations back it (score >= SUPPORTED)."""
    quotes = {c.n: c.quote for c in citations}
    claims = []
    for text, numbers in sentences:
        cited = [quotes[n] for n in numbers if n in quotes]
        score = support_score(text, cited, embedder)
        claims.append(Claim(text, tuple(n for n in numbers if n in quotes), score >= SUPPORTED, score))
    return claims
