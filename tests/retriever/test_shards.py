"""Shard assignment (pure): contiguous runs of segments, about equal passages, every segment once."""

from __future__ import annotations

import pytest
from cite.core.store import SegmentRecord
from cite.retriever.shard_actors import assign_shards


def segments(*sizes: int) -> list[SegmentRecord]:
    return [SegmentRecord(f"s{i}", size, "flat-sq8", {}) for i, size in enumerate(sizes)]


@pytest.mark.parametrize(
    ("sizes", "shards", "expected"),
    [
        ((10, 10, 10, 10), 2, [(0, 2), (2, 4)]),
        ((10, 10, 10, 10), 4, [(0, 1), (1, 2), (2, 3), (3, 4)]),
        ((100, 1, 1, 1), 2, [(0, 1), (1, 4)]),
        ((1, 1, 1, 100), 2, [(0, 3), (3, 4)]),
        ((5, 5), 3, [(0, 1), (1, 2)]),  # never more shards than segments
        ((7,), 1, [(0, 1)]),
        ((), 2, [(0, 0)]),
    ],
)
def test_shards_are_contiguous_runs_of_about_equal_passages(sizes, shards, expected):
    assert assign_shards(segments(*sizes), shards) == expected


@pytest.mark.parametrize("count", range(1, 9))
def test_every_segment_lands_in_exactly_one_shard(count):
    records = segments(3, 50, 7, 7, 20, 1, 90, 4)
    runs = assign_shards(records, count)
    assert len(runs) == count
    assert runs[0][0] == 0 and runs[-1][1] == len(records)
    assert all(first < end for first, end in runs)
    assert all(a[1] == b[0] for a, b in zip(runs, runs[1:], strict=False))


def test_zero_shards_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        assign_shards(segments(1), 0)


def test_a_shards_bm25_with_the_global_weights_equals_the_whole_index_on_its_rows():
    """A shard holds some segments' postings; scored with the driver's query weights and mean
    length (summed over all segments), its rows score exactly as in the one-box index."""
    import numpy as np
    from cite.core.lexical import LexicalIndex, Postings, QueryWeights, tokenize

    texts = [
        ["Bees make honey.", "The hive has one queen bee."],
        ["Rivers flow to the sea.", "The Volga is a long river.", "Bees drink from rivers."],
        ["Honey keeps for years.", "Stars shine at night."],
    ]
    parts = [Postings.build([tokenize(t) for t in segment]) for segment in texts]
    whole = LexicalIndex(parts)
    for query in ("bees honey", "river sea volga", "queen", "unknown words only"):
        weights = QueryWeights.of(whole, query)
        expected = whole.scores(tokenize(query))
        shard = LexicalIndex(parts[1:])  # the last two segments: rows 2..6 of the whole
        got = shard.weighted_scores(weights.weights, weights.mean_length)
        np.testing.assert_array_equal(got, expected[2:])
        assert not np.array_equal(shard.scores(tokenize(query)), expected[2:]) or not expected[2:].any()


def test_query_weights_carry_the_k1_a_shard_scores_with():
    """The hybrid's k1 travels with the query weights, so a shard's BM25 equals the one box's."""
    import numpy as np
    from cite.core.lexical import K1, LexicalIndex, Postings, QueryWeights, tokenize

    texts = [["Bees bees bees make honey.", "The hive has one queen bee."], ["Honey bees drink from rivers."]]
    parts = [Postings.build([tokenize(t) for t in segment]) for segment in texts]
    whole, shard = LexicalIndex(parts), LexicalIndex(parts[1:])
    assert QueryWeights.of(whole, "bees honey").k1 == K1
    for k1 in (0.0, 0.45, 2.0):
        weights = QueryWeights.of(whole, "bees honey", k1)
        got = shard.weighted_scores(weights.weights, weights.mean_length, weights.k1)
        np.testing.assert_array_equal(got, whole.scores(tokenize("bees honey"), k1)[2:])
