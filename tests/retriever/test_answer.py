from dataclasses import replace

import numpy as np
import pytest
from cite.core.config import AnswerSettings, Settings, SplitSettings
from cite.core.types import Document
from cite.eval.datasets import Question
from cite.eval.suite import Outcome, tally
from cite.indexer.build import build_index
from cite.retriever.answer import (
    Scored,
    Sentence,
    _goes_on,
    _joined,
    _without_covered,
    completed_sentence,
    with_antecedent,
)
from cite.retriever.engine import Engine

from tests.helpers import FakeEmbedder

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


SELF_JOIN = "We can also join a table against itself. This is called a self join. It needs two aliases."


def test_a_sentence_pointing_back_is_quoted_with_the_one_before_it():
    start = SELF_JOIN.index("This")
    pointing = Sentence("d.txt", start, start + 27, "This is called a self join.", np.zeros(4), "", 1, (), (0, 40))
    assert with_antecedent(pointing, SELF_JOIN).text == SELF_JOIN[: start + 27]
    plain = Sentence("d.txt", 0, 40, SELF_JOIN[:40], np.zeros(4), "", 1, (), None)
    assert with_antecedent(plain, SELF_JOIN) is plain


def test_a_sentence_opening_with_so_takes_the_one_it_follows_from():
    text = "The empty filename tells gnuplot to re-use the previous input file. So to plot two columns:"
    start = text.index("So")
    so = Sentence("d.txt", start, len(text), text[start:], np.zeros(4), "", 1, (), (0, start - 1))
    assert with_antecedent(so, text).text == text
    sooner = Sentence("d.txt", 0, start - 1, text[: start - 1], np.zeros(4), "", 1, (), None)
    assert with_antecedent(sooner, text) is sooner
    called = replace(so, text="So-called defaults are read from gnuplotrc.")
    assert with_antecedent(called, text) is called


def test_a_sentence_giving_a_consequence_takes_its_cause():
    text = "APT installs the package with the higher version number. Because of this, increment the version."
    start = text.index("Because")
    then = Sentence("d.txt", start, len(text), text[start:], np.zeros(4), "", 1, (), (0, start - 1))
    assert with_antecedent(then, text).text == text
    assert with_antecedent(replace(then, text="As a result, the image is smaller."), text).text == text
    cause_inside = replace(then, text="Because APT prefers it, increment it.")
    assert with_antecedent(cause_inside, text) is cause_inside


def test_a_next_sentence_going_on_about_it_completes_the_quote():
    text = "Gnuplot keeps read-only variables. These variables begin with GPVAL. Plots are drawn."
    first = Sentence("d.txt", 0, 34, text[:34], np.zeros(4), "", 1, ((35, 68), (69, 85)))
    assert completed_sentence(first, text, "other").text == text[:68]
    second = Sentence("d.txt", 35, 68, text[35:68], np.zeros(4), "", 1, ((69, 85),))
    assert completed_sentence(second, text, "other") is second


BADSIG = (
    "Stale cached package lists cause strange errors, such as BADSIG when updating. "
    "You should remove all cached data and try again. Mirrors are checked daily."
)


def test_a_quote_goes_on_into_a_next_sentence_nearly_as_close_to_the_question():
    """debref-017: the question matches the sentence naming the error; the fix is the next one."""
    scene = Sentence("apt.txt", 0, 78, BADSIG[:78], np.zeros(4), "", 1, ((79, 127), (128, 154)))
    chosen = Scored(scene, 0.8, 0.6)
    settings = AnswerSettings()  # continue_ratio 0.7
    assert _goes_on(chosen, {("apt.txt", 79): 0.43}, settings)  # 0.43 >= 0.7 * 0.6
    assert not _goes_on(chosen, {("apt.txt", 79): 0.41}, settings)
    assert not _goes_on(chosen, {}, settings)  # too short to be a candidate: not known to be close
    assert not _goes_on(chosen, {("apt.txt", 79): 0.6}, replace(settings, continue_ratio=9.0))
    assert not _goes_on(Scored(replace(scene, following=()), 0.8, 0.6), {("apt.txt", 79): 0.6}, settings)
    assert completed_sentence(scene, BADSIG, "other", goes_on=True).text == BADSIG[:127]
    assert completed_sentence(scene, BADSIG, "other") is scene


def test_continue_ratio_is_checked():
    with pytest.raises(ValueError, match="continue_ratio"):
        AnswerSettings(continue_ratio=-0.1)


def test_an_answer_to_who_quotes_the_sentence_naming_them(tmp_path):
    """q041: the sentence sharing the question's words says the proposal met resistance; the
    one naming who supported it comes two sentences later, after one that names nobody."""
    text = (
        "On the first day, Ivanov suggested uniting the forces of the treaty states. "
        f"{FIRST} {MIDDLE} {NAMES} "
        "The summit postponed a solution to that matter, on which the whole project depends."
    )
    root = tmp_path / "index"
    build_index([Document("summit.txt", text)], root, FakeEmbedder(), SplitSettings())
    always_answer = Settings(answer=replace(AnswerSettings(), min_confidence=0.0))
    answer = Engine(root, FakeEmbedder(), always_answer).ask("Which presidents supported the joint command proposal?")
    assert any(NAMES in citation.quote for citation in answer.citations)
    assert all(citation.quote == text[citation.start : citation.end] for citation in answer.citations)


def test_a_quote_held_by_a_later_extended_one_is_dropped():
    best = sentence(NAMES)
    runner_up = completed_sentence(sentence(FIRST, MIDDLE, NAMES), TEXT, "agent")  # ends with NAMES
    assert _without_covered([best, runner_up]) == [runner_up]
    assert _without_covered([runner_up, best]) == [runner_up]
    assert _without_covered([best, best]) == [best]


def test_quotes_that_overlap_or_follow_each_other_become_one_in_reading_order():
    text = "Tips follow. Don't fit a*exp(x+b). It equals a*exp(b)*exp(x). Instead, fit a*exp(x). Other."
    spans = {
        name: (text.index(a), text.index(b) + len(b))
        for name, a, b in [
            ("dont", "Don't", "exp(x+b)."),
            ("equals", "It", "exp(x)."),
            ("dont+equals", "Don't", "*exp(x)."),
            ("instead", "Instead", "a*exp(x)."),
            ("tips", "Tips", "follow."),
            ("other", "Other", "Other."),
        ]
    }

    def quote(name: str) -> Sentence:
        start, end = spans[name]
        return Sentence("tips.txt", start, end, text[start:end], np.zeros(4))

    joined = _joined([quote("instead"), quote("dont+equals"), quote("other")], {"tips.txt": text})
    assert [q.text for q in joined] == [text[spans["dont"][0] :]]  # one quote, in reading order
    apart = _joined([quote("equals"), quote("tips")], {"tips.txt": text})  # "Don't fit ..." lies between
    assert [q.text for q in apart] == ["It equals a*exp(b)*exp(x).", "Tips follow."]
    overlapping = _joined([quote("dont"), quote("dont+equals")], {"tips.txt": text})
    assert [q.text for q in overlapping] == ["Don't fit a*exp(x+b). It equals a*exp(b)*exp(x)."]
    other_document = replace(quote("equals"), doc="other.txt")
    assert len(_joined([quote("dont"), other_document], {"tips.txt": text, "other.txt": text})) == 2


def test_a_quote_running_over_a_page_break_cites_both_pages():
    from cite.retriever.answer import _cite

    text = "Pumps move water. Before the valve opens, the lever\nmust be pulled. Filters need care."
    turn = text.index("must")
    document = Document("guide.pdf", text, pages=(0, turn, text.index("Filters")))
    start, end = text.index("Before"), text.index(" Filters")
    crossing = Sentence("guide.pdf", start, end, text[start:end], np.zeros(4), "Valves")
    on_one = Sentence("guide.pdf", 0, start - 1, text[: start - 1], np.zeros(4), "Pumps")
    answer = _cite("q", [crossing, on_one], {"guide.pdf": document}, [], 0.9)
    assert [(c.page, c.last_page, c.end_page, c.section) for c in answer.citations] == [
        (1, 2, 2, "Valves"),
        (1, None, 1, "Pumps"),
    ]
