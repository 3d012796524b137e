"""Acronyms a document defines ("Commonwealth of Independent States (CIS)"), and its text
with each later use spelled out, so that a question using either form finds the passage.

Only a document's own definitions are used: an acronym means what its document says, and a
passage's BM25 tokens then depend on nothing outside its document (so adding a document
never changes another's).
"""

from __future__ import annotations

import re

# "(CIS)", "(CSTO)", "(NATO's)" is not a definition; "(IL-6)", "(TNFs)" are.
_DEFINITION = re.compile(r"\(([A-Z][A-Za-z0-9-]{1,9})\)")
_WORD = re.compile(r"[\w'-]+")
_MAX_EXTRA_WORDS = 5  # Schwartz & Hearst: a long form has at most min(|A| + 5, 2|A|) words


def defined_acronyms(text: str) -> dict[str, str]:
    """Acronym -> long form for each "Long Form (ACR)" in the text; the first definition wins."""
    found: dict[str, str] = {}
    for match in _DEFINITION.finditer(text):
        short = match.group(1)
        if short in found or sum(ch.isupper() for ch in short) < 2:
            continue
        before = text[max(0, match.start() - 200) : match.start()]
        before = re.split(r"[.;:!?()\[\]\n]", before)[-1]
        words = _WORD.findall(before)
        limit = min(len(short) + _MAX_EXTRA_WORDS, 2 * len(short))
        long_form = _long_form(short, words[-limit:])
        if long_form:
            found[short] = long_form
    return found


def _long_form(short: str, words: list[str]) -> str | None:
    """The shortest tail of `words` whose letters spell `short` in order, its first letter
    starting the first word (the Schwartz & Hearst match, 2003)."""
    letters = [ch.lower() for ch in short if ch.isalnum()]
    for first in range(len(words) - 1, -1, -1):
        candidate = " ".join(words[first:])
        if candidate[0].lower() == letters[0] and _spells(letters, candidate.lower()):
            if len(words) - first == 1 and len(candidate) <= len(short):
                return None  # "(CIS)" after "CIS" defines nothing
            return candidate
    return None


def _spells(letters: list[str], candidate: str) -> bool:
    """Every letter of the acronym appears in the candidate, in order, the first at its start."""
    position = 0
    for i, letter in enumerate(letters):
        found = candidate.find(letter, position)
        if found < 0 or (i == 0 and found != 0):
            return False
        position = found + 1
    return True


def spell_out(text: str, acronyms: dict[str, str]) -> str:
    """The text with each use of a defined acronym followed by its long form in parentheses,
    except the definitions themselves."""
    if not acronyms:
        return text
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, sorted(acronyms, key=len, reverse=True))) + r")\b(?!\))")
    return pattern.sub(lambda m: f"{m.group(1)} ({acronyms[m.group(1)]})", text)
