"""The pure parts of search: the top rows of a score array, and each passage's best sentence."""

from types import SimpleNamespace

import numpy as np
import pytest

from retriever.search import best_sentences, top_rows


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
