"""The one order of a ranking, shared by search, fusion and eval so they never disagree."""

from __future__ import annotations

from collections.abc import Mapping


def best_first(scores: Mapping[str, float]) -> list[tuple[str, float]]:
    """(id, score) pairs, highest score first; equal scores by id, descending, as trec_eval
    orders them, so our metrics and a reference implementation rank a tie the same way."""
    return sorted(scores.items(), key=lambda item: (item[1], item[0]), reverse=True)
