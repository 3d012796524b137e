"""Late-interaction re-ranking (retriever/rerank.py): plumbing with word vectors, behaviour with the real model."""

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pytest
from cite.core.config import SearchSettings
from cite.core.types import Hit, Passage
from cite.retriever.rerank import TokenReranker, content_rows, token_match


class WordVectors:
    """Each word a fixed random unit vector: a word matches only itself."""

    name, fingerprint, dim = "words", "words-v1", 16

    def __init__(self) -> None:
        self.texts: list[str] = []

    def _vector(self, word: str) -> np.ndarray:
        vector = np.random.default_rng(sum(map(ord, word))).normal(size=self.dim)
        return vector / np.linalg.norm(vector)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return np.vstack([self._vector(text) for text in texts]).astype(np.float32)

    def token_vectors(self, texts: Sequence[str]):
        self.texts += texts
        out = []
        for text in texts:
            words = tuple(text.lower().replace("?", " ?").split())
            out.append((words, np.vstack([self._vector(w) for w in words]).astype(np.float32)))
        return out


def hit(pid: str, text: str, score: float) -> Hit:
    return Hit(Passage(pid, "d.txt", 0, len(text), text), score, {"dense": score})


HITS = [
    hit("a", "the shell reads its startup files", 0.9),
    hit("b", "history events are saved to a file", 0.8),
    hit("c", "prompts show the directory", 0.7),
    hit("d", "aliases expand words", 0.6),
]
QUESTION = "How do I stop history being saved?"


def test_the_top_hits_are_reordered_by_how_many_question_words_they_match():
    reranked = TokenReranker(WordVectors()).rerank(QUESTION, HITS, SearchSettings(token_weight=1.0, token_depth=3))
    assert [h.passage.id for h in reranked] == ["b", "a", "c", "d"]  # d is below the depth and stays last
    assert reranked[0].scores["tokens"] > reranked[1].scores["tokens"]
    assert reranked[0].scores["fused"] == 0.8  # what fusion gave it: abstention reads that order
    assert all(0.7 <= h.score <= 0.9 for h in reranked[:3]) and reranked[3] is HITS[3]  # inside the fused range
    assert [h.score for h in reranked] == sorted((h.score for h in reranked), reverse=True)


def test_a_weight_of_zero_a_long_query_or_a_plain_embedder_leaves_the_order():
    words = WordVectors()
    assert TokenReranker(words).rerank(QUESTION, HITS, SearchSettings(token_weight=0.0)) is HITS
    long_query = " ".join(["history saved"] * 30)
    assert TokenReranker(words).rerank(long_query, HITS, SearchSettings(token_weight=1.0)) is HITS
    assert words.texts == []

    class Plain:
        name, fingerprint, dim = "plain", "plain-v1", 16

        def encode(self, texts):
            return np.zeros((len(texts), 16), dtype=np.float32)

    assert TokenReranker(Plain()).rerank(QUESTION, HITS, SearchSettings(token_weight=1.0)) is HITS


def test_token_matches_are_kept_so_the_same_question_is_not_run_again():
    words = WordVectors()
    reranker = TokenReranker(words)
    settings = SearchSettings(token_weight=0.5, token_depth=4)
    first = reranker.rerank(QUESTION, HITS, settings)
    runs = len(words.texts)
    again = reranker.rerank(QUESTION, HITS, replace(settings, token_weight=0.7))
    assert len(words.texts) == runs  # no model run: every match was kept
    assert {h.passage.id for h in first} == {h.passage.id for h in again}


def test_only_the_questions_content_words_are_matched():
    pieces = ("how", "do", "the", "stop", "history", "of", "saved", "?")
    rows = np.eye(8, dtype=np.float32)
    kept = content_rows(pieces, rows)
    assert [pieces[int(np.argmax(r))] for r in kept] == ["stop", "history", "saved"]
    assert len(content_rows(("how", "?"), rows[:2])) == 2  # nothing left: keep them all
    assert token_match(kept, rows[[4, 6]]) == pytest.approx(2 / 3)


@pytest.mark.slow
def test_the_real_model_matches_a_paraphrase_word_by_word(real_embedder):
    """ "stop ... being saved" against "prevent ... from being added": the passage that says it in
    other words matches the question better than one that shares its topic word."""
    reranker = TokenReranker(real_embedder)
    answer = hit(
        "answer",
        "To prevent such commands from being added to the interactive history at all, define the zshaddhistory hook.",
        0.5,
    )
    topic = hit("topic", "The history list holds the events of this session, numbered from one.", 0.6)
    matches = reranker.matches("How do I keep certain commands out of my shell history?", [topic, answer])
    assert matches[1] > matches[0]


def test_the_token_weight_and_depth_are_checked():
    with pytest.raises(ValueError, match="token_weight"):
        SearchSettings(token_weight=1.5)
    with pytest.raises(ValueError, match="token_depth"):
        SearchSettings(token_depth=-1)
