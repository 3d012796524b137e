"""LexicalIndex against BM25 computed by hand and against bm25s; per-segment postings score as one index."""

import math

import numpy as np
import pytest
from cite.core import lexical
from cite.core.lexical import LexicalIndex, Postings
from hypothesis import example, given, settings
from hypothesis import strategies as st

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


def test_scores_match_bm25s_on_a_real_vocabulary():
    import bm25s
    from cite.core.lexical import tokenize

    texts = [
        "The Volga is the longest river in Europe.",
        "Bees make honey; honey bees dance.",
        "Rivers and lakes of Europe: the Danube, the Rhine and the Volga.",
        "A bee is an insect.",
        "Honey is sweet.",
    ]
    tokens = [tokenize(t) for t in texts]
    reference = bm25s.BM25(k1=1.2, b=0.75)
    reference.index(tokens, show_progress=False)
    for query in (["volga", "europ"], ["honey", "bee", "bee"], ["river"]):
        assert LexicalIndex.build(tokens).scores(query) == pytest.approx(reference.get_scores(query), rel=1e-5)


def test_segments_score_as_one_index():
    from cite.core.lexical import Postings

    tokens = TOKENS + [["honey", "river", "river"], ["owl"]]
    whole = LexicalIndex.build(tokens)
    parts = LexicalIndex([Postings.build(tokens[:2]), Postings.build([]), Postings.build(tokens[2:])])
    assert parts.num_docs == 5 and parts.df("river") == whole.df("river") == 3
    assert parts.idf("bee") == whole.idf("bee") and parts.vocab == whole.vocab
    for query in (["bee"], ["river", "owl"], ["honey", "volga", "owl"]):
        assert parts.scores(query) == pytest.approx(whole.scores(query), rel=1e-6)
        assert parts.scores(query) == pytest.approx(brute_force_bm25(query, tokens), rel=1e-5)


def test_postings_save_and_load_back_memory_mapped(tmp_path):
    from cite.core.lexical import Postings

    Postings.build(TOKENS).save(tmp_path)
    loaded = Postings.load(tmp_path)
    assert isinstance(loaded.rows.base, np.memmap)  # a view of the mapped file, not a copy
    index = LexicalIndex([loaded])
    assert index.num_docs == 3 and index.idf("bee") == pytest.approx(math.log(1.6))
    assert index.scores(["bee", "river"]) == pytest.approx(brute_force_bm25(["bee", "river"], TOKENS), rel=1e-5)


def test_bags_give_back_each_passages_tokens():
    from cite.core.lexical import Postings

    postings = Postings.build(TOKENS)
    assert [sorted(bag) for bag in postings.bags([2, 0])] == [sorted(TOKENS[2]), sorted(TOKENS[0])]
    assert postings.bags([]) == []


def test_loading_a_missing_folder_fails(tmp_path):
    from cite.core.lexical import Postings

    with pytest.raises((OSError, ValueError)):
        Postings.load(tmp_path / "none")


@pytest.mark.parametrize("k1", [0.0, 0.45, 2.0])
def test_scores_with_another_k1_match_bm25_from_its_definition(k1):
    for query in (["bee"], ["bee", "river"], ["honey", "volga", "owl"]):
        expected = brute_force_bm25(query, TOKENS, k1=k1)
        assert LexicalIndex.build(TOKENS).scores(query, k1) == pytest.approx(expected, rel=1e-5)


def test_a_small_k1_counts_distinct_words_over_repeats():
    """With Lucene's k1 a passage saying "bee" six times outscores one saying "bee" and "honey"
    once each; with k1 near 0 each word counts about once, and the passage with both wins."""
    tokens = [["bee"] * 6, ["bee", "honey", "hive", "wax", "comb", "nest"], ["bee", "river"]] + [["honey", "river"]] * 4
    index = LexicalIndex.build(tokens)
    lucene, flat = index.scores(["bee", "honey"]), index.scores(["bee", "honey"], 0.05)
    assert lucene[0] > lucene[1] and flat[1] > flat[0]


def test_a_negative_k1_is_refused():
    with pytest.raises(ValueError, match="k1 must be 0 or more"):
        LexicalIndex.build(TOKENS).scores(["bee"], -0.1)


def _ranked(scores: np.ndarray, n: int) -> tuple[list[int], list[float]]:
    """Exhaustive top n above 0, best first, ties by row: what `top_scored` must return."""
    from cite.retriever.search import top_rows

    rows = [int(r) for r in top_rows(scores, n) if scores[r] > 0]
    return rows, [float(scores[r]) for r in rows]


@settings(max_examples=300, deadline=None)
@given(
    corpus=st.lists(st.lists(st.sampled_from("abcdefghijkl"), max_size=12), min_size=1, max_size=60),
    query=st.lists(st.sampled_from("abcdefghijklm"), min_size=1, max_size=8),
    cut=st.integers(0, 60),
    n=st.integers(1, 20),
    k1=st.sampled_from([0.0, 0.45, 1.2]),
)
# Two words of the same weight, and a tie: the float64 rest of the weights fell a rounding
# below the float32 score, so MaxScore stopped and lost row 0 to row 1.
@example(corpus=[["b"], ["a"]], query=["a", "b"], cut=0, n=1, k1=0.0)
def test_top_scored_ranks_and_scores_as_scoring_every_passage(corpus, query, cut, n, k1):
    """MaxScore's early stop and the exact re-scoring give the exhaustive ranking, float for
    float, over one segment or two; skewed letters make some words common, some rare. Both
    ways: MaxScore (forced on these small indexes) and scoring every passage."""
    parts = [corpus[:cut], corpus[cut:]] if 0 < cut < len(corpus) else [corpus]
    index = LexicalIndex([Postings.build(part) for part in parts])
    weights = index.query_weights(query)
    everything = index.weighted_scores(weights, index.mean_length, k1)
    some = np.arange(0, index.num_docs, 3)
    for exhaustive_up_to in (0, lexical.EXHAUSTIVE_UP_TO):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(lexical, "EXHAUSTIVE_UP_TO", exhaustive_up_to)
            rows, scores = index.top_scored(weights, index.mean_length, k1, n)
            assert (rows.tolist(), scores.tolist()) == _ranked(everything, n)
            assert index.scores_of(weights, index.mean_length, k1, some).tolist() == everything[some].tolist()


def test_top_scored_skips_common_words_yet_finds_the_best(monkeypatch):
    """A thousand passages share 'the'; three hold the rare 'owl' too. Once 'owl' is scattered,
    'the' cannot lift a passage into the top 2, so its postings are never scattered; the top
    2 still carry their full scores, 'the' included."""
    monkeypatch.setattr(lexical, "EXHAUSTIVE_UP_TO", 0)
    corpus = [["the", "cat"]] * 1000 + [["the", "owl", "owl"], ["owl", "the", "the", "tree"], ["owl"]]
    index = LexicalIndex.build(corpus)
    weights = index.query_weights(["owl", "the"])
    scattered = []
    term_scores = LexicalIndex._term_scores
    monkeypatch.setattr(
        LexicalIndex,
        "_term_scores",
        lambda self, token, *rest: scattered.append(token) or term_scores(self, token, *rest),
    )
    rows, scores = index.top_scored(weights, index.mean_length, 1.2, 2)
    assert scattered == ["owl"]
    assert (rows.tolist(), scores.tolist()) == _ranked(index.scores(["owl", "the"]), 2)
    assert rows.tolist() == [1002, 1000]  # 'owl' alone, the shortest; then 'owl' twice
