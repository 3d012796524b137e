import pytest
from cite.retriever.fusion import convex_fusion, min_max, reciprocal_rank_fusion


def test_rrf_matches_hand_computed_values():
    dense = {"a": 0.9, "b": 0.8, "c": 0.1}
    bm25 = {"b": 12.0, "d": 7.0}
    fused = reciprocal_rank_fusion([dense, bm25], k=60)
    assert fused["a"] == pytest.approx(1 / 61)
    assert fused["b"] == pytest.approx(1 / 62 + 1 / 61)
    assert fused["c"] == pytest.approx(1 / 63)
    assert fused["d"] == pytest.approx(1 / 62)
    assert max(fused, key=fused.get) == "b"


def test_rrf_with_k_zero_is_plain_reciprocal_rank():
    assert reciprocal_rank_fusion([{"x": 3.0, "y": 1.0}], k=0) == {"x": 1.0, "y": 0.5}


def test_rrf_rejects_negative_k():
    with pytest.raises(ValueError, match="k must be 0 or more"):
        reciprocal_rank_fusion([{}], k=-1)


def test_min_max_and_constant_scores():
    assert min_max({"a": 2.0, "b": 4.0, "c": 3.0}) == {"a": 0.0, "b": 1.0, "c": 0.5}
    assert min_max({"a": 5.0, "b": 5.0}) == {"a": 1.0, "b": 1.0}
    assert min_max({}) == {}


def test_convex_fusion_hand_computed():
    dense = {"a": 0.8, "b": 0.6, "c": 0.4}  # -> 1, .5, 0
    bm25 = {"b": 10.0, "c": 20.0}  # -> 0, 1
    fused = convex_fusion([dense, bm25], [0.7, 0.3])
    assert fused == pytest.approx({"a": 0.7, "b": 0.35, "c": 0.3})


def test_convex_fusion_needs_one_weight_per_ranking():
    with pytest.raises(ValueError, match="one weight each"):
        convex_fusion([{"a": 1.0}], [0.5, 0.5])
