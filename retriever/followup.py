"""Follow-up questions made standalone before retrieval, without a language model.

"And who opposed it?" means nothing to a retriever on its own; carrying the content words of
the previous question ("proposed creation CSO joint command") gives it the missing subject.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from cite.core.lexical import QUESTION_WORDS, tokenize

# Openers and pronouns that lean on an earlier turn.
_LEANS_BACK = re.compile(
    r"^\s*(and|but|so|also|what about|how about)\b"
    r"|\b(it|its|they|them|their|theirs|he|him|his|she|her|this|that|these|those|there|then|the same)\b",
    re.IGNORECASE,
)
_MAX_WORDS = 12  # a follow-up is short; a long question stands on its own


def standalone_question(question: str, history: Sequence[str]) -> str:
    """The question plus the earlier turn's content words, when it reads as a follow-up."""
    if not history or len(question.split()) > _MAX_WORDS or not _LEANS_BACK.search(question):
        return question
    have = set(tokenize(question))
    carried: list[str] = []
    for word in re.findall(r"[\w’'-]+", history[-1]):
        stems = tokenize(word)
        if not stems or word.lower() in QUESTION_WORDS or set(stems) <= have:
            continue
        have.update(stems)
        carried.append(word)
    return f"{question} ({' '.join(carried)})" if carried else question
