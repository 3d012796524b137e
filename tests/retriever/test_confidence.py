"""Confidence and IDF-weighted coverage against hand computations."""

import math
from types import SimpleNamespace

import pytest

from core.lexical import LexicalIndex, tokenize
from retriever.confidence import Evidence, confidence, coverage

PASSAGES = ["Bees make honey.", "The Volga is a river.", "Rivers flow to the sea."]


@pytest.fixture
def index():
    """Only the lexical index: all coverage reads."""
    return SimpleNamespace(lexical=LexicalIndex.build([tokenize(text) for text in PASSAGES]))


def test_confidence_is_the_logistic_of_the_weighted_evidence():
    evidence = Evidence(sentence=0.5, passage=0.5, coverage=0.5, known=0.5)
    assert confidence(evidence, (1.0, 2.0, 3.0, 4.0, -5.0)) == pytest.approx(0.5)  # z = 0
    z = 1.34 * 0.8 + 0.5 * 0.6 + 2.66 * 1.0 + 2.06 * 1.0 - 3.86
    assert confidence(Evidence(0.8, 0.6, 1.0, 1.0), (1.34, 0.5, 2.66, 2.06, -3.86)) == pytest.approx(
        1 / (1 + math.exp(-z))
    )
    low, high = (confidence(Evidence(c, 0.5, c, 1.0), (1.0, 1.0, 1.0, 1.0, -2.0)) for c in (0.1, 0.9))
    assert 0 < low < high < 1


def test_coverage_weighs_each_question_word_by_its_idf(index):
    # "Where does the Volga flow?" asks about volga and flow, each in one passage of three.
    assert coverage(index, "Where does the Volga flow?", [PASSAGES[1]]) == pytest.approx(0.5)
    assert coverage(index, "Where does the Volga flow?", PASSAGES[1:]) == pytest.approx(1.0)
    assert coverage(index, "Where does the Volga flow?", [PASSAGES[0]]) == 0.0


def test_known_share_counts_words_no_passage_holds_at_the_maximum_idf(index):
    volga, unseen = math.log(1 + 2.5 / 1.5), math.log(1 + 3.5 / 0.5)  # df 1 and df 0 of N = 3
    expected = volga / (volga + 2 * unseen)  # volga is known; meet and owl are not
    assert coverage(index, "Where does the Volga meet the owl?", None) == pytest.approx(expected)


def test_a_question_of_only_question_words_covers_nothing(index):
    assert coverage(index, "Where is it?", PASSAGES) == 0.0
