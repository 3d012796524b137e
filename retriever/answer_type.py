"""What kind of answer a question asks for, and whether a sentence holds one: rules, no model.

"Who backed the plan?" wants a person or an organisation, "When ...?" a date, "How many
...?" a number. A sentence that shares the question's words but holds no such thing (the
plan "met resistance") is a worse answer than its neighbour that names who backed it.
"""

from __future__ import annotations

import re
from typing import Literal

AnswerType = Literal["agent", "date", "place", "number", "reason", "other"]
ANSWER_TYPES: tuple[AnswerType, ...] = ("agent", "date", "place", "number", "reason", "other")

_MONTHS = (
    "january february march april may june july august september october november december "
    "jan feb mar apr jun jul aug sep sept oct nov dec"
).split()
_WEEKDAYS = "monday tuesday wednesday thursday friday saturday sunday".split()
_NUMBER_WORDS = (
    "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred hundreds "
    "thousand thousands million millions billion billions trillion dozen dozens half quarter twice double "
    "single percent"
).split()

# Order matters: "how many years" asks for a number, "what year" for a date.
_AGENT_NOUNS = (
    r"person|people|man|woman|men|women|leaders?|presidents?|ministers?|officials?|countr(y|ies)|compan(y|ies)|"
    r"organi[sz]ations?|groups?|grouping|states?|nations?|part(y|ies)|bod(y|ies)|agenc(y|ies)|firms?|clubs?|blocs?|"
    r"alliances?|governments?|users?|roles?|programs?|commands?|process(es)?"
)
_NUMBER_NOUNS = (
    r"population|gdp|price|cost|size|budget|rate|percentage|share|proportion|number|amount|limit|maximum|minimum"
)
# Order matters: "how many years" asks for a number, "what year" for a date.
_QUESTION_RULES: tuple[tuple[AnswerType, re.Pattern[str]], ...] = (
    ("number", re.compile(rf"\bhow (many|much|long|far|big|large|old|often)\b|\b(what|which)( is| was| are| were)? the ({_NUMBER_NOUNS})\b|\bwhat ({_NUMBER_NOUNS})\b")),  # noqa: E501
    ("date", re.compile(r"^\s*when\b|\b(what|which|in what) (year|date|month|day|decade|century|time)\b|\bsince when\b|\bhow recently\b")),  # noqa: E501
    ("agent", re.compile(rf"^\s*(who|whose)\b|\bwhom\b|\b(which|what) (\w+ )?({_AGENT_NOUNS})\b")),
    ("place", re.compile(r"^\s*where\b|\b(which|what|in what) (\w+ )?(city|town|region|place|capital|location|republic|area|province|site|directory|folder|file)\b|\bfrom where\b|\bthe capital of\b")),  # noqa: E501
    ("reason", re.compile(r"^\s*why\b|\bfor what reason\b|\bwhat (caused|causes|led to|leads to|is the reason|was the reason|prompted)\b|\bhow come\b")),  # noqa: E501
)
_AUX_START = re.compile(
    r"^\s*(in|on|at|by|for|of|according to|and|but|so)\b[^?]*?\b(who|when|where|why)\b", re.IGNORECASE
)
# A question opening with a clause that sets the scene ("When I combine two result sets,
# do ...?", "If I drop a database, can I ...?") asks what its main clause asks, not "when":
# a "when" clause with a verb of its own (not "When did ...") before a comma.
_CLAUSE_START = re.compile(
    r"^\s*(when|whenever|while|once|if|after|before)\s+"
    r"(?!(did|does|do|was|were|is|are|will|would|can|could|has|have|had|should|must|might|may)\b)[^?,]+,\s*(?=\w)",
    re.IGNORECASE,
)

_YEAR = re.compile(r"\b(1[5-9]\d\d|20\d\d)s?\b")
_DATE_WORDS = re.compile(
    r"\b(" + "|".join(_MONTHS + _WEEKDAYS) + r")\b"
    r"|\b(yesterday|today|tomorrow|last (week|month|year)|next (week|month|year)"
    r"|(early|late|mid)[- ](\d|\w+)|century|decade|\d{1,2}/\d{1,2}/\d{2,4}|\d{4}-\d{2}-\d{2})\b",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"\d|\b(" + "|".join(_NUMBER_WORDS) + r")\b|%", re.IGNORECASE)
_REASON = re.compile(
    r"\b(because|since|due to|owing to|as a result|result(ed|s)? (in|from)|in order to|so that|so as to"
    r"|aim(ed|s)? (at|to)|reason|caused?|led to|leads to|thanks to|therefore|thus|hence|fear(s|ed)?|concern(s|ed)?|to (avoid|prevent|ensure|allow|make|keep|counter|protect|strengthen|reduce))\b",  # noqa: E501
    re.IGNORECASE,
)
_PLACE_CUE = re.compile(r"\b(in|at|near|from|to|into|across|outside|inside|throughout)\s+(the\s+)?[A-Z][\w-]+")
_PLACE_WORDS = re.compile(
    r"\b(city|capital|region|republic|resort|border|country|province|mountains?|sea|river|valley|directory|folder|file|"
    r"server|host|database|table)\b",
    re.IGNORECASE,
)
# A capitalised word that does not open the sentence: a name, roughly ("Putin", "Gazprom", "the CIS").
_PROPER = re.compile(r"(?<=[\w,;:)] )[A-Z][a-zA-Z'-]+|\b[A-Z]{2,}\b")
# No pronouns: "he", "they" name nobody ("all of them were cautious" does not say who backed the plan).
_AGENT_WORDS = re.compile(
    r"\b(president|minister|premier|leader|chairman|secretary|official|spokesman|government|parliament|ministry|"
    r"company|committee|council|administration|delegation|authorit(y|ies)|user|users|administrator|"
    r"superuser|owner|developers?|team|project|group)\b",
    re.IGNORECASE,
)


def expected_type(question: str) -> AnswerType:
    """The kind of answer the question asks for ("other" when the wording does not say)."""
    text = question.strip().lower()
    clause = _CLAUSE_START.match(text)
    if clause:
        text = text[clause.end() :]
    aux = _AUX_START.match(text)  # "In which year ..." / "And who ...": judge from the wh-word on
    if aux:
        text = text[aux.start(2) :]
    for answer_type, pattern in _QUESTION_RULES:
        if pattern.search(text):
            return answer_type
    return "other"


def holds_type(sentence: str, answer_type: AnswerType) -> bool:
    """Whether `sentence` contains something of `answer_type` (always True for "other")."""
    if answer_type == "date":
        return bool(_YEAR.search(sentence) or _DATE_WORDS.search(sentence))
    if answer_type == "number":
        return bool(_NUMBER.search(sentence))
    if answer_type == "reason":
        return bool(_REASON.search(sentence))
    if answer_type == "place":
        return bool(_PLACE_CUE.search(sentence) or _PLACE_WORDS.search(sentence))
    if answer_type == "agent":
        return bool(_PROPER.search(sentence) or _AGENT_WORDS.search(sentence))
    return True
