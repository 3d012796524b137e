"""A question, read once: the words it asks about, the names it uses, the kind of answer it
wants. Sentence ranking and the abstention signals both read this one value."""

from __future__ import annotations

import re
from dataclasses import dataclass

from cite.core.lexical import question_terms, tokenize
from cite.retriever.answer_type import AnswerType, expected_type

# A name, roughly: a capitalised word that does not open the question, a word with two
# capitals (GPU, SQLite, MathML), a word with a digit or an underscore (pg_cron, 2018), a
# function call (rand()).
_NAME = re.compile(r"(?<=\S )[A-Z][\w'-]*|\b\w*[A-Z]\w*[A-Z]\w*\b|\b\w*[\d_]\w*\b|\b\w+\(\)")


@dataclass(frozen=True)
class ParsedQuestion:
    text: str
    terms: frozenset[str]  # its stemmed, non-stopword index tokens
    names: frozenset[str]  # the names it uses (see `name_terms`), as index tokens
    wanted: AnswerType  # the kind of answer it asks for

    @classmethod
    def of(cls, text: str) -> ParsedQuestion:
        return cls(text, frozenset(question_terms(text)), frozenset(name_terms(text)), expected_type(text))


def name_terms(question: str) -> set[str]:
    """The question's names (see `_NAME`), as index tokens; one-letter tokens ("I") dropped.
    In a question typed in capitals or Title Case, capitals say nothing: only identifiers count."""
    if all(word[:1].isupper() for word in question.split() if word[:1].isalpha()):
        question = question.lower()
    return {token for match in _NAME.finditer(question) for token in tokenize(match.group(0)) if len(token) > 1}
