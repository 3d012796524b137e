"""LexicalIndex against BM25 computed by hand, and its files against bm25s' own."""

import math

import numpy as np
import pytest

from core.lexical import LexicalIndex

TOKENS = [["bee", "honey", "bee"], ["river", "volga"], ["bee", "river"]]


def lucene_idf(df: int, n: int) -> float:
    return math.log(1 + (n - df + 0.5) / (df + 0.5))


def brute_force_bm25(query: list[str], documents: list[list[str]], k1: float = 1.2, b: float = 0.75) -> list[float]:
    """Lucene BM25 straight from its definition, one document at a time."""
    n, mean = len(documents), sum(map(len, documents)) / len(documents)
    scores = []
    for words in documents:
        score = 0.0
        for token in query:
            tf = words.count(token)
            if tf:
                df = sum(token in other for other in documents)
                score += lucene_idf(df, n) * tf / (tf + k1 * (1 - b + b * len(words) / mean))
        scores.append(score)
    return scores


def test_idf_and_df_match_a_hand_computation():
    index = LexicalIndex.build(TOKENS)
    assert index.num_docs == 3
    assert (index.df("bee"), index.df("volga"), index.df("owl")) == (2, 1, 0)
    assert index.idf("bee") == pytest.approx(math.log(1.6))  # 1 + (3 - 2 + .5) / (2 + .5)
    assert index.idf("volga") == pytest.approx(math.log(8 / 3))
    assert index.idf("owl") == pytest.approx(math.log(8))  # never seen: the largest IDF there is
    assert index.idf("owl") > index.idf("volga") > index.idf("bee")


def test_vocab_and_has():
    index = LexicalIndex.build(TOKENS)
    assert set(index.vocab) == {"bee", "honey", "river", "volga"}
    assert index.has("honey") and not index.has("owl")


@pytest.mark.parametrize("query", [["bee"], ["river", "volga"], ["bee", "river", "owl"], ["honey", "volga"]])
def test_scores_match_bm25_from_its_definition(query):
    scores = LexicalIndex.build(TOKENS).scores(query)
    assert scores.dtype == np.float32 and scores.shape == (3,)
    assert scores == pytest.approx(brute_force_bm25(query, TOKENS), rel=1e-5)


def test_a_query_of_unknown_words_scores_zero_everywhere():
    assert LexicalIndex.build(TOKENS).scores(["owl", "night"]).tolist() == [0.0, 0.0, 0.0]
    assert LexicalIndex.build(TOKENS).scores([]).tolist() == [0.0, 0.0, 0.0]


def test_saved_files_are_bm25s_own_and_load_back_memory_mapped(tmp_path):
    import bm25s

    LexicalIndex.build(TOKENS).save(tmp_path / "ours")
    reference = bm25s.BM25(k1=1.2, b=0.75)
    reference.index(TOKENS, show_progress=False)
    reference.save(str(tmp_path / "bm25s"))
    ours = sorted(p.name for p in (tmp_path / "ours").iterdir())
    assert ours == sorted(p.name for p in (tmp_path / "bm25s").iterdir())
    for name in ours:
        assert (tmp_path / "ours" / name).read_bytes() == (tmp_path / "bm25s" / name).read_bytes(), name

    loaded = LexicalIndex.load(tmp_path / "ours")
    assert loaded.num_docs == 3 and loaded.idf("bee") == pytest.approx(math.log(1.6))
    assert loaded.scores(["bee", "river"]) == pytest.approx(brute_force_bm25(["bee", "river"], TOKENS), rel=1e-5)


def test_loading_a_missing_folder_fails(tmp_path):
    with pytest.raises((OSError, ValueError)):
        LexicalIndex.load(tmp_path / "none")
