"""Pure functions that combine rankings. Each takes `{key: score}` dicts, best = highest."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cite.core.ranking import best_first


def reciprocal_rank_fusion(rankings: Sequence[Mapping[str, float]], k: int = 60) -> dict[str, float]:
    """RRF (Cormack et al. 2009): sum over rankings of 1 / (k + rank), rank counted from 1.

    Ties within one ranking are ordered by `best_first`, so the result is deterministic.
    """
    if k < 0:
        raise ValueError(f"k must be 0 or more. Currently, it is {k}.")
    fused: dict[str, float] = {}
    for ranking in rankings:
        for rank, (key, _) in enumerate(best_first(ranking), start=1):
            fused[key] = fused.get(key, 0.0) + 1.0 / (k + rank)
    return fused


def min_max(scores: Mapping[str, float]) -> dict[str, float]:
    """Rescales scores to [0, 1]; all-equal scores become 1.0 (they are all the best)."""
    if not scores:
        return {}
    low, high = min(scores.values()), max(scores.values())
    if high == low:
        return {key: 1.0 for key in scores}
    return {key: (value - low) / (high - low) for key, value in scores.items()}


def convex_fusion(rankings: Sequence[Mapping[str, float]], weights: Sequence[float]) -> dict[str, float]:
    """Weighted sum of min-max normalised scores (as txtai's hybrid does).

    A key missing from a ranking scores 0 there: it was below that ranking's cut-off.
    """
    if len(rankings) != len(weights):
        raise ValueError(f"Got {len(rankings)} rankings but {len(weights)} weights; give one weight each.")
    fused: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for key, value in min_max(ranking).items():
            fused[key] = fused.get(key, 0.0) + weight * value
    return fused
