"""Confidence and IDF-weighted coverage against hand computations."""

import math
from types import SimpleNamespace

import pytest
from cite.core.config import AnswerSettings
from cite.core.lexical import LexicalIndex, tokenize
from cite.retriever.confidence import SMALL_INDEX, Evidence, confidence, coverage, missing_name, term_weights
from cite.retriever.question import ParsedQuestion, name_terms

PASSAGES = ["Bees make honey.", "The Volga is a river.", "Rivers flow to the sea."]


@pytest.fixture
def index():
    """Only the lexical index: all coverage reads."""
    return SimpleNamespace(lexical=LexicalIndex.build([tokenize(text) for text in PASSAGES]))


def test_confidence_is_the_logistic_of_the_weighted_evidence():
    evidence = Evidence(0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 1.0)
    assert confidence(evidence, (1.0, 2.0, 3.0, 4.0, 1.0, 1.0, -1.0, -5.0)) == pytest.approx(0.5)  # z = 0
    weights = (0.8, 0.17, 1.24, 1.4, 0.83, 1.07, -1.5, -3.46)
    z = 0.8 * 0.7 + 0.17 * 0.6 + 1.24 * 1.0 + 1.4 * 1.0 + 0.83 * 0.75 + 1.07 * 0.65 - 1.5 * 1.0 - 3.46
    assert confidence(Evidence(0.7, 0.6, 1.0, 1.0, 0.75, 0.65, 1.0), weights) == pytest.approx(1 / (1 + math.exp(-z)))
    low, high = (confidence(Evidence(c, 0.5, c, 1.0, c, c, 0.0), (1,) * 7 + (-2.0,)) for c in (0.1, 0.9))
    assert 0 < low < high < 1


def test_the_vector_holds_the_signals_in_the_order_of_the_weights():
    evidence = Evidence(
        sentence=0.1, passage=0.2, coverage=0.3, known=0.4, best_sentence=0.5, top_sentence=0.6, missing_name=1.0
    )
    assert evidence.vector().tolist() == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 1.0]
    assert len(AnswerSettings().confidence_weights) == len(evidence.vector()) + 1


def test_weights_of_another_length_are_refused_with_what_they_should_be():
    with pytest.raises(ValueError, match="takes 8 numbers"):
        confidence(Evidence(0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.0), (1.34, 0.5, 2.66, 2.06, -3.86))
    with pytest.raises(ValueError, match="confidence_weights takes 8 numbers"):
        AnswerSettings(confidence_weights=(1.34, 0.5, 2.66, 2.06, -3.86))  # an older settings.toml's


def test_names_are_capitalised_words_inside_the_question_acronyms_and_identifiers():
    assert name_terms("How do I export a gnuplot plot to Excel?") == {"excel"}  # "How" opens it; "I" is one letter
    assert name_terms("Does gnuplot use the GPU for 3D surfaces?") == {"gpu", "3d"}
    assert name_terms("How do I schedule VACUUM with pg_cron or rand()?") == {"vacuum", "pg_cron", "rand"}
    assert name_terms("Which command lists all tables?") == set()
    assert name_terms("HOW DO I EXPORT A PLOT TO EXCEL?") == set()  # shouting names nothing
    assert name_terms("How Do I Plot Data From Pg_dump Files?") == {"pg_dump"}  # Title Case: identifiers only


def test_a_name_in_none_of_the_top_passages_is_missing():
    assert (
        missing_name(ParsedQuestion.of("Where does the Volga meet the Don?"), PASSAGES) == 1.0
    )  # Don is in no passage
    assert missing_name(ParsedQuestion.of("Where does the Volga flow?"), PASSAGES) == 0.0
    assert missing_name(ParsedQuestion.of("Where does the Volga flow?"), PASSAGES[:1]) == 1.0
    assert missing_name(ParsedQuestion.of("where do rivers flow?"), []) == 0.0  # no name: nothing can be missing


def test_a_name_that_the_passages_documents_hold_is_not_missing():
    asked = []

    def mentioned(names):  # what the top passages' documents hold, of the names asked about
        asked.append(names)
        return names & {"volga"}

    assert missing_name(ParsedQuestion.of("Where does the Volga flow?"), PASSAGES[:1], mentioned) == 0.0
    assert missing_name(ParsedQuestion.of("Where does the Volga meet the Don?"), PASSAGES[:1], mentioned) == 1.0
    assert asked == [{"volga"}, {"volga", "don"}]  # only the names the passages lack are looked up
    missing_name(ParsedQuestion.of("Where does the Volga flow?"), PASSAGES, mentioned)
    assert len(asked) == 2  # none lacking: no lookup


@pytest.mark.slow
def test_a_paraphrase_naming_the_capital_for_the_country_is_answered(seed_engine):
    # The evidence passage says "It controls the critical transportation routes ..." of Russia:
    # no passage near the top says "Moscow", but the article does, many times.
    answer = seed_engine.ask("What gives Moscow leverage over landlocked Central Asia?")
    assert not answer.abstained
    assert any("critical transportation routes" in " ".join(c.quote.split()) for c in answer.citations)


def test_coverage_weighs_each_question_word_by_its_idf(index):
    # "Where does the Volga flow?" asks about volga and flow, each in one passage of three.
    assert coverage(index, ParsedQuestion.of("Where does the Volga flow?"), [PASSAGES[1]]) == pytest.approx(0.5)
    assert coverage(index, ParsedQuestion.of("Where does the Volga flow?"), PASSAGES[1:]) == pytest.approx(1.0)
    assert coverage(index, ParsedQuestion.of("Where does the Volga flow?"), [PASSAGES[0]]) == 0.0


def test_known_share_weighs_words_by_idf_blended_toward_equal_in_a_small_index(index):
    volga, unseen = math.log(1 + 2.5 / 1.5), math.log(1 + 3.5 / 0.5)  # df 1 and df 0 of N = 3
    trust = 3 / (3 + SMALL_INDEX)  # three passages: IDF says little yet
    weight = {"volga": trust * volga / unseen + 1 - trust, "unseen": 1.0}
    expected = weight["volga"] / (weight["volga"] + 2 * weight["unseen"])  # volga is known; meet and owl are not
    assert coverage(index, ParsedQuestion.of("Where does the Volga meet the owl?"), None) == pytest.approx(expected)


def test_a_large_index_weighs_question_words_by_their_idf():
    texts = [f"filler passage number {i}" for i in range(2000)] + ["The Volga is a river."]
    big = SimpleNamespace(lexical=LexicalIndex.build([tokenize(text) for text in texts]))
    weights = term_weights(big.lexical, ParsedQuestion.of("Which passage names the Volga?").terms)
    assert weights["volga"] > 5 * weights["passag"]  # a word of every passage tells little


def test_a_question_of_only_question_words_covers_nothing(index):
    assert coverage(index, ParsedQuestion.of("Where is it?"), PASSAGES) == 0.0
