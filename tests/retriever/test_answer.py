import numpy as np

from eval.datasets import Question
from eval.suite import Outcome, tally
from retriever.answer import Sentence, completed_sentence

TEXT = (
    "On the second day, the proposal ran into resistance from some of the attending presidents. "
    "Publicly, all of them made terse, cautious remarks. "
    "Only Putin and Belarusan President Alyaksandr Lukashenka supported it. "
    "The requirements of the campaign in\n\nAfghanistan called for continuous access."
)


def sentence(text: str, *following: str) -> Sentence:
    start = TEXT.index(text)
    after = tuple((TEXT.index(f), TEXT.index(f) + len(f)) for f in following)
    return Sentence("d.txt", start, start + len(text), text, np.zeros(4), "", 1, after)


FIRST = "On the second day, the proposal ran into resistance from some of the attending presidents."
MIDDLE = "Publicly, all of them made terse, cautious remarks."
NAMES = "Only Putin and Belarusan President Alyaksandr Lukashenka supported it."


def test_a_sentence_lacking_the_answer_is_completed_by_the_next_one_that_has_it():
    completed = completed_sentence(sentence(MIDDLE, NAMES), TEXT, "agent")
    assert TEXT[completed.start : completed.end] == MIDDLE + " " + NAMES
    assert completed.text == MIDDLE + " " + NAMES


def test_completion_looks_past_a_sentence_that_names_nobody():
    completed = completed_sentence(sentence(FIRST, MIDDLE, NAMES), TEXT, "agent")
    assert completed.text == f"{FIRST} {MIDDLE} {NAMES}"
    assert completed.following == ()


def test_completion_stops_at_lookahead():
    short = sentence(FIRST, MIDDLE)  # the names are two sentences on: out of reach
    assert completed_sentence(short, TEXT, "agent") is short


def test_a_sentence_that_holds_the_answer_stays_alone():
    alone = sentence(NAMES, "The requirements of the campaign in")
    assert completed_sentence(alone, TEXT, "agent") is alone
    assert completed_sentence(alone, TEXT, "other") is alone
    last = sentence(NAMES)
    assert completed_sentence(last, TEXT, "agent") is last


def test_a_cut_sentence_takes_the_rest():
    cut = sentence("The requirements of the campaign in", "Afghanistan called for continuous access.")
    completed = completed_sentence(cut, TEXT, "other")
    assert TEXT[completed.start : completed.end].endswith("continuous access.")
    assert completed.text == "The requirements of the campaign in Afghanistan called for continuous access."


def test_tally_counts_evidence_over_answered_and_answerable_and_pages():
    q = Question("a", "Who?", "d.pdf", "x", page=3)
    none = Question("n", "What?")
    outcomes = [
        Outcome(q, True, True, True),
        Outcome(q, True, False, False),
        Outcome(q, False, False, None),
        Outcome(none, False, False, None),
        Outcome(none, True, False, None),
    ]
    t = tally(outcomes)
    assert (t.answerable, t.answered, t.evidence_cited, t.unanswerable, t.abstained) == (3, 2, 1, 2, 1)
    assert (t.paged, t.page_right) == (2, 1)
    assert t.evidence_rate == 0.5 and abs(t.evidence_of_answerable - 1 / 3) < 1e-9
