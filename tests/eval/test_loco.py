"""Leave-one-corpus-out bookkeeping (eval/loco.py) and the per-manual layout of the real-documents set."""

import numpy as np
import pytest
from cite.eval.datasets import Question
from cite.eval.loco import answer_figures, macro_choice, per_corpus
from cite.eval.realdocs.corpora import lay_out
from cite.eval.realdocs.sets import REALDOCS, SEALED


def test_a_setting_is_chosen_without_the_corpus_it_is_scored_on_each_corpus_weighing_the_same():
    corpora = ["a", "a", "a", "a", "b", "c"]
    table = np.array(
        [
            [1, 1, 1, 1, 0, 0],  # row 0, today's: wins on the big corpus a only
            [0, 0, 0, 0, 1, 1],  # wins on b and c
        ],
        dtype=float,
    )
    assert macro_choice(table, corpora, "a") == 1  # without a, row 1 is best on b and c
    assert macro_choice(table, corpora, "b") == 0  # a and c tie at a mean of .5: today's settings stay
    assert macro_choice(table, corpora, "c") == 0


def test_off_topic_questions_are_asked_of_every_manual():
    asked = [
        Question("q1", "What is gnuplot?", corpus="gnuplot"),
        Question("x", "Why is the sky blue?", corpus="offtopic"),
    ]
    got = per_corpus(asked, ["bash", "gnuplot"])
    assert [(q.id, q.corpus) for q in got] == [("q1", "gnuplot"), ("x@bash", "bash"), ("x@gnuplot", "gnuplot")]


def test_each_manual_gets_a_folder_whose_index_names_documents_as_the_questions_do(tmp_path):
    dest = tmp_path / "realdocs"
    for doc in ("pdf/gnuplot.pdf", "handbook/apt.html", "handbook/sect.apt-get.html"):
        (dest / doc).parent.mkdir(parents=True, exist_ok=True)
        (dest / doc).write_text(doc)
    counts = lay_out(dest, tmp_path / "out", ["pdf/gnuplot.pdf", "handbook/apt.html", "handbook/sect.apt-get.html"])
    assert counts == {"gnuplot": 1, "handbook": 2}
    assert (tmp_path / "out" / "handbook" / "handbook" / "apt.html").read_text() == "handbook/apt.html"
    with pytest.raises(KeyError):
        REALDOCS.corpus_of("pdf/unknown.pdf")


def test_the_sealed_set_shares_no_corpus_file_with_the_development_set():
    assert SEALED.corpus_of("pytutorial/classes.html") == "pytutorial"
    assert not set(SEALED.corpora) & set(REALDOCS.corpora)
    for files in SEALED.corpora.values():
        for doc in files:
            with pytest.raises(KeyError):
                REALDOCS.corpus_of(doc)


def test_near_misses_are_counted_apart_from_off_topic_questions():
    answerable = np.array([True, True, False, False, False])
    near = np.array([False, False, True, True, False])  # the last: off-topic
    answered = np.array([True, False, True, False, False])
    holds = np.array([True, False, False, False, False])
    chars = np.array([300.0, 500.0, 0.0, 0.0, 0.0])
    got = answer_figures(answered, holds, answerable, chars, near)
    assert got["quoted"] == 0.5 and got["answered"] == 0.5 and got["sentences"] == 0.5
    assert got["refused"] == pytest.approx(2 / 3) and got["near-refused"] == 0.5
    assert got["chars"] == 400.0
