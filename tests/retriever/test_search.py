"""The pure parts of search: the top rows of a score array, and each passage's best sentence."""

from types import SimpleNamespace

import numpy as np
import pytest
from cite.core.config import SearchSettings
from cite.core.types import Passage
from cite.retriever.search import Candidates, best_sentences, fuse, top_rows


def brute_force_top(scores: np.ndarray, k: int) -> list[int]:
    return sorted(range(len(scores)), key=lambda row: (-scores[row], row))[: max(k, 0)]


def test_top_rows_ranks_best_first_and_breaks_ties_by_row():
    scores = np.array([3.0, 1.0, 3.0, 2.0, 3.0], dtype=np.float32)
    assert top_rows(scores, 2).tolist() == [0, 2]
    assert top_rows(scores, 4).tolist() == [0, 2, 4, 3]


def test_top_rows_with_k_past_the_end_zero_or_negative():
    scores = np.array([0.5, 2.0, 1.0], dtype=np.float32)
    assert top_rows(scores, 10).tolist() == [1, 2, 0]
    for k in (0, -1):
        rows = top_rows(scores, k)
        assert rows.tolist() == [] and rows.dtype == np.int64
    assert top_rows(np.zeros(0, dtype=np.float32), 3).tolist() == []


@pytest.mark.parametrize("k", [1, 5, 17, 50, 200])
def test_top_rows_matches_a_full_sort_on_many_ties(k):
    scores = np.random.default_rng(k).integers(0, 6, size=120).astype(np.float32)
    assert top_rows(scores, k).tolist() == brute_force_top(scores, k)


def sentence_index(counts: list[int], seed: int = 0):
    """An index whose `sentences(rows)` answers as StoredIndex's does: per-passage counts,
    then the passages' sentence spans and vectors concatenated in the order of `rows`."""
    rng = np.random.default_rng(seed)
    total = sum(counts)
    vectors = rng.standard_normal((total, 8)).astype(np.float32)
    spans = np.stack([np.arange(total) * 10, np.arange(total) * 10 + 7], axis=1).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def sentences(rows, query):
        picks = [s for row in rows for s in range(offsets[row], offsets[row + 1])]
        return np.array([counts[row] for row in rows], dtype=np.int64), spans[picks], vectors[picks] @ query

    return SimpleNamespace(sentences=sentences), vectors, spans


def brute_force_best(counts, vectors, spans, rows, query):
    offsets = np.concatenate([[0], np.cumsum(counts)])
    best = []
    for row in rows:
        found = None
        for s in range(offsets[row], offsets[row + 1]):
            cosine = float(vectors[s] @ query)
            if found is None or cosine > found[0]:
                found = (cosine, (int(spans[s][0]), int(spans[s][1])))
        best.append(found or (0.0, None))
    return best


def test_best_sentences_matches_a_loop_over_every_sentence():
    counts = [3, 0, 1, 4, 2, 0, 5]
    index, vectors, spans = sentence_index(counts)
    query = np.random.default_rng(1).standard_normal(8).astype(np.float32)
    rows = [6, 0, 1, 3, 5, 2, 4, 3]  # any order, a passage twice, passages without sentences
    got = best_sentences(index, rows, query)
    expected = brute_force_best(counts, vectors, spans, rows, query)
    assert [span for _, span in got] == [span for _, span in expected]
    assert [cosine for cosine, _ in got] == pytest.approx([cosine for cosine, _ in expected], rel=1e-5)


def test_best_sentences_of_no_rows_is_empty():
    index, _, _ = sentence_index([2, 1])
    assert best_sentences(index, [], np.ones(8, dtype=np.float32)) == []


def test_the_hybrid_scores_bm25_with_the_settings_k1_and_plain_bm25_with_lucenes(tmp_path, fake_embedder):
    from dataclasses import replace

    from cite.core.config import SearchSettings, SplitSettings
    from cite.core.lexical import K1, tokenize
    from cite.core.types import Document
    from cite.indexer.build import build_index
    from cite.retriever.search import DenseSearcher, HybridSearcher, LexicalSearcher, load_index

    documents = [
        Document("bees.txt", "Bees bees bees. The bee is an insect. Bees make honey."),
        Document("honey.txt", "Honey keeps for years. A bee brings nectar to the hive."),
        Document("rivers.txt", "The Volga flows into the Caspian Sea."),
    ]
    build_index(documents, tmp_path, fake_embedder, SplitSettings())
    index = load_index(tmp_path, fake_embedder)
    dense, lexical = DenseSearcher(index, fake_embedder), LexicalSearcher(index)
    query = "bee honey"
    vector = fake_embedder.encode([query])
    lucene = index.lexical.scores(tokenize(query), K1)
    assert lexical.scores(query).tolist() == lucene.tolist()
    for k1 in (0.0, 0.45, 3.0):
        found = HybridSearcher(dense, lexical, replace(SearchSettings(), bm25_k1=k1)).candidates(query, vector, 5)
        expected = index.lexical.scores(tokenize(query), k1)
        held = {pid: float(expected[row]) for pid, row in found.rows.items() if expected[row] > 0}
        assert len(held) == 2 and found.scores["bm25"] == pytest.approx(held)
    flat = index.lexical.scores(tokenize(query), 0.0)
    assert not np.allclose(flat / flat.max(), lucene / lucene.max())  # k1 changes more than the scale


def test_a_negative_bm25_k1_setting_is_refused():
    from cite.core.config import SearchSettings

    with pytest.raises(ValueError, match="bm25_k1 and long_query_bm25_k1 must be 0 or more"):
        SearchSettings(bm25_k1=-0.5)
    with pytest.raises(ValueError, match="long_query_bm25_k1"):
        SearchSettings(long_query_bm25_k1=-1)


def test_a_query_longer_than_a_sentence_scores_bm25_with_the_long_query_k1(tmp_path, fake_embedder):
    """Question-length queries use bm25_k1; a paragraph (over sentence_query_words) uses
    long_query_bm25_k1, in the hybrid's candidates as in the settings' rule."""
    from cite.core.config import SearchSettings, SplitSettings
    from cite.core.lexical import tokenize
    from cite.core.types import Document
    from cite.indexer.build import build_index
    from cite.retriever.search import DenseSearcher, HybridSearcher, LexicalSearcher, load_index

    settings = SearchSettings(sentence_query_words=5, bm25_k1=0.3, long_query_bm25_k1=2.0)
    short, long = "bee honey", "bee bee honey and the rest of a long argument"
    assert (settings.bm25_k1_for(short), settings.bm25_k1_for(long)) == (0.3, 2.0)
    documents = [
        Document("bees.txt", "Bees bees bees. The bee is an insect. Bees make honey."),
        Document("honey.txt", "Honey keeps for years. A bee brings nectar to the hive."),
    ]
    build_index(documents, tmp_path, fake_embedder, SplitSettings())
    index = load_index(tmp_path, fake_embedder)
    searcher = HybridSearcher(DenseSearcher(index, fake_embedder), LexicalSearcher(index), settings)
    for query, k1 in ((short, 0.3), (long, 2.0)):
        found = searcher.candidates(query, fake_embedder.encode([query]), 5)
        expected = index.lexical.scores(tokenize(query), k1)
        assert found.scores["bm25"] == pytest.approx({pid: float(expected[r]) for pid, r in found.rows.items()})


def test_fusion_keeps_one_copy_of_identical_passages():
    """The same paragraph on every page of a site, or a file indexed twice, filled a top 10."""
    texts = ["Rows may repeat.", "Rows may repeat.", "A join combines rows.", "Rows may repeat."]
    passages = [Passage(f"p{i}", f"d{i}.html", 0, len(t), t) for i, t in enumerate(texts)]
    index = SimpleNamespace(passages=passages, row_of={p.id: i for i, p in enumerate(passages)})
    scores = {p.id: 1.0 - i / 10 for i, p in enumerate(passages)}
    found = Candidates(
        {"dense": scores, "bm25": scores, "sentence": scores},
        dict.fromkeys(scores),
        3,
        {p.id: i for i, p in enumerate(passages)},
    )
    hits = fuse(found, index, 3, SearchSettings())
    assert [hit.passage.id for hit in hits] == ["p0", "p2"]  # the first copy stands for all
