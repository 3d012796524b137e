"""The one order of a ranking, shared by search, fusion and eval so they never disagree."""

from __future__ import annotations

from collections.abc import Mapping


def best_first(scores: Mapping[str, float]) -> list[tuple[str, float]]:
    """(id, score) pairs, highest score first; equal scores by id, so every run agrees."""
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))
