"""Text normalisation with a map back to original offsets, and sentence splitting.

Both the indexer (splitting passages) and the retriever (picking answer sentences)
need the same sentences and the same offsets, so this lives in core.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Every match starts at a hyphen or a whitespace character, which the pattern consumes first:
# a leading character class lets the regex engine skip to candidates in C (3-4x faster than
# a lookbehind tried at every character). So each alternative below is written from after
# that first character, its lookbehind checking what the character was.
# A word broken across a line end ("secu-\nrity"): the hyphen and line break go.
# Only before a lowercase letter, so "U.S.-\nRussian" keeps its hyphen (and loses the break).
_HYPHEN_BREAK = r"(?<=[^\W\d_]-)\s*\n\s*(?=[a-z])"
_HYPHEN_KEPT = r"(?<=[\w.]-\s)(?:(?<=\n)\s*|\s*\n\s*)(?=\w)"
# A blank line inside a sentence (a PDF page or column break) is not a paragraph.
_LINE_END = r"(?:(?<=[ \t\r\f\v])[ \t\r\f\v]*\n|(?<=\n))"  # spaces, then the first line break
_FALSE_PARAGRAPH = r"(?<=[\w,;]\s)" + _LINE_END + r"(?:[ \t\r\f\v]*\n)+\s*(?=[a-z])"
_PARAGRAPH_BREAK = _LINE_END + r"(?:[ \t\r\f\v]*\n)+\s*"
# Any whitespace but a lone space (which stays as it is: matching every one costs a
# Python-level step per word).
_SPACE = r"(?<= )\s+|(?<=[^\S ])\s*"
_NORMALISE = re.compile(
    f"[\\s-](?:(?P<hyphen>{_HYPHEN_BREAK})|(?P<kept>{_HYPHEN_KEPT})|(?P<space>{_FALSE_PARAGRAPH})"
    f"|(?P<para>{_PARAGRAPH_BREAK})|(?P<space2>{_SPACE}))"
)
_REPLACEMENT = {"hyphen": "", "kept": "", "para": "\n\n", "space": " ", "space2": " "}


@dataclass(frozen=True)
class Normalised:
    """Normalised text plus `offsets[i]`: the original index of normalised character i.

    `offsets` has one extra entry, the original length, so spans map with `span()`.
    """

    text: str
    offsets: tuple[int, ...]

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Maps a normalised span [start, end) to the original span it came from."""
        if end <= start:
            return self.offsets[start], self.offsets[start]
        return self.offsets[start], self.offsets[end - 1] + 1


_UNUSUAL_SPACE = re.compile(r"[^\S ]| \s")


def normalised_text(original: str) -> str:
    """`normalise(original).text`, without the offset map: what a passage's stored span reads as."""
    if original == original.strip() and not _UNUSUAL_SPACE.search(original):
        return original  # only single spaces: nothing to normalise
    return _NORMALISE.sub(lambda match: _REPLACEMENT[match.lastgroup or "space"], original).strip()


def normalise(original: str) -> Normalised:
    """Joins hyphenated line breaks, unwraps hard-wrapped lines, collapses whitespace.

    Paragraph breaks (blank lines) survive as "\\n\\n"; leading and trailing whitespace goes.
    """
    chars: list[str] = []
    offsets: list[int] = []
    pos = 0
    for match in _NORMALISE.finditer(original):
        chars.append(original[pos : match.start()])
        offsets.extend(range(pos, match.start()))
        replacement = _REPLACEMENT[match.lastgroup or "space"]
        chars.append(replacement)
        offsets.extend([match.start()] * len(replacement))
        pos = match.end()
    chars.append(original[pos:])
    offsets.extend(range(pos, len(original)))
    text = "".join(chars)
    # Strip the ends while keeping the offsets aligned.
    lead = len(text) - len(text.lstrip())
    trail = len(text.rstrip())
    return Normalised(text[lead:trail], tuple(offsets[lead:trail]) + (len(original),))


# Sentence ends: . ! ? (optionally closed by quotes/brackets) then space and a capital,
# digit, or opening quote. Paragraph breaks always end a sentence, and so does the space
# before a list bullet: a PDF's list arrives as lines joined by spaces, and its items, most
# without a full stop, read as one ~900-character "sentence" that answered unrelated questions.
_BULLETS = "•●◦▪‣⁃∙■□►➢✓"
_FULL_STOP = r"[.!?…][\"'”’)\]]*(?=\s+[\"'“‘(\[]?[A-Z0-9])"
_SENTENCE_END = re.compile(_FULL_STOP + r"|(?P<break>\n\n|\s(?=[" + _BULLETS + r"]\s))")
_SENTENCE_END_BUT_BULLETS = re.compile(_FULL_STOP + r"|(?P<break>\n\n)")
_ABBREVIATIONS = {
    "mr",
    "mrs",
    "ms",
    "dr",
    "prof",
    "st",
    "jr",
    "sr",
    "gen",
    "col",
    "lt",
    "sgt",
    "capt",
    "gov",
    "sen",
    "rep",
    "pres",
    "vs",
    "etc",
    "e.g",
    "i.e",
    "no",
    "vol",
    "fig",
    "jan",
    "feb",
    "mar",
    "apr",
    "jun",
    "jul",
    "aug",
    "sep",
    "sept",
    "oct",
    "nov",
    "dec",
    "inc",
    "ltd",
    "co",
    "corp",
    "u.s",
    "u.k",
    "u.n",
    "a.m",
    "p.m",
    "approx",
    "cf",
    "al",
}


_LAST_WORD = re.compile(r"([\w.]+)$")
_LONGEST_ABBREVIATION = 40


def _ends_with_abbreviation(text: str, dot: int) -> bool:
    """True when the '.' at `dot` closes an abbreviation or an initial, not a sentence."""
    if text[dot] != ".":
        return False
    # Only the last few characters: searching all of text[:dot] made splitting quadratic.
    word = _LAST_WORD.search(text, max(0, dot - _LONGEST_ABBREVIATION), dot)
    if not word or word.start() == dot - _LONGEST_ABBREVIATION > 0:
        return False  # no word, or one too long to be an abbreviation or initials
    token = word.group(1).lower()
    return token in _ABBREVIATIONS or (len(token) == 1 and token.isalpha()) or bool(re.fullmatch(r"(\w\.)+\w", token))


def sentence_spans(text: str, bullets: bool = True) -> list[tuple[int, int]]:
    """Splits text into sentence spans [start, end), whitespace excluded at both ends; with
    `bullets` False a list's items stay one unit (as passages are packed: see the splitter)."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in (_SENTENCE_END if bullets else _SENTENCE_END_BUT_BULLETS).finditer(text):
        ends_here = match.group("break") is not None  # a paragraph break or a bullet: not a full stop
        if not ends_here and _ends_with_abbreviation(text, match.start()):
            continue
        end = match.start() if ends_here else match.end()
        spans.append((start, end))
        start = match.end()
    spans.append((start, len(text)))
    return [trimmed for span in spans if (trimmed := _trim(text, *span))]


def _trim(text: str, start: int, end: int) -> tuple[int, int] | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if start < end else None


def sentences_in_span(original: str, start: int, end: int) -> list[tuple[int, int, str]]:
    """Sentences of `original[start:end]` as (original start, original end, normalised text).

    The indexer embeds these and the answerer quotes them, so both see the same sentences.
    """
    norm = normalise(original[start:end])
    sentences = []
    for a, b in sentence_spans(norm.text):
        first, last = norm.span(a, b)
        sentences.append((start + first, start + last, norm.text[a:b].replace("\n\n", " ")))
    return sentences
