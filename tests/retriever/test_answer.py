import numpy as np

from eval.datasets import Question
from eval.suite import Outcome, tally
from retriever.answer import Sentence, completed_sentence

TEXT = (
    "On the second day, the proposal ran into resistance from some of the attending presidents. "
    "Only Putin and Belarusan President Alyaksandr Lukashenka supported it. "
    "The requirements of the campaign in\n\nAfghanistan called for continuous access."
)


def sentence(text: str, following: str | None) -> Sentence:
    start = TEXT.index(text)
    after = None if following is None else (TEXT.index(following), TEXT.index(following) + len(following))
    return Sentence("d.txt", start, start + len(text), text, np.zeros(4), "", 1, after)


def test_a_sentence_lacking_the_answer_is_completed_by_the_next_one_that_has_it():
    first = "On the second day, the proposal ran into resistance from some of the attending presidents."
    second = "Only Putin and Belarusan President Alyaksandr Lukashenka supported it."
    completed = completed_sentence(sentence(first, second), TEXT, "agent")
    assert TEXT[completed.start : completed.end] == first + " " + second
    assert completed.text == first + " " + second


def test_a_sentence_that_holds_the_answer_stays_alone():
    second = "Only Putin and Belarusan President Alyaksandr Lukashenka supported it."
    alone = sentence(second, "The requirements of the campaign in")
    assert completed_sentence(alone, TEXT, "agent") == alone
    assert completed_sentence(alone, TEXT, "other") == alone


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
