"""Fusion weights tuned on a set of judged questions (never on test queries), with an
honest estimate of what the tuning is worth on questions it did not see.

`cite eval --tune` runs it on the seed set, your own questions, or a BEIR train split
(`cite eval --beir ../shared/bench/scifact --split train --tune`), and saves a winner into
the index folder's settings.toml. Only queries are embedded (once), so a whole grid costs
seconds to minutes.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from cite.core.config import SearchSettings, Settings, save_settings
from cite.core.embedder import Embedder
from cite.core.store import StoredIndex
from cite.core.types import Hit
from cite.eval.metrics import per_query
from cite.eval.runner import embed_queries, run_queries
from cite.retriever.search import Candidates, DenseSearcher, HybridSearcher, LexicalSearcher

FOLDS = 5


@dataclass(frozen=True)
class Tuning:
    metric: str
    questions: int
    current: SearchSettings
    current_value: float  # the current settings, all questions
    cross_validated: float  # weights picked on 4/5 of the questions, scored on the other 1/5
    ranked: list[tuple[float, SearchSettings]]  # every grid point on all questions, best first

    @property
    def best(self) -> SearchSettings:
        return self.ranked[0][1]

    @property
    def best_value(self) -> float:
        """In-sample: optimistic by construction."""
        return self.ranked[0][0]

    @property
    def worth_it(self) -> bool:
        """Tuning beats the current settings on questions it was not tuned on."""
        return self.cross_validated > self.current_value and self.best != self.current


def grid(base: SearchSettings) -> list[SearchSettings]:
    """The current settings, RRF, and convex weights on a 0.1 grid (dense, BM25, best sentence)."""
    settings = [base, replace(base, fusion="rrf")]
    steps = [round(0.1 * i, 1) for i in range(11)]
    for dense, bm25 in itertools.product(steps, steps):
        sentence = round(1.0 - dense - bm25, 1)
        if sentence >= 0 and (dense, bm25, sentence) != (0, 0, 0):
            candidate = replace(base, fusion="convex", dense_weight=dense, bm25_weight=bm25, sentence_weight=sentence)
            if candidate not in settings:
                settings.append(candidate)
    return settings


def tune_search(
    index: StoredIndex,
    embedder: Embedder,
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    current: SearchSettings,
    metric: str = "mrr@10",
    by_document: bool = False,
    drop_self: bool = False,
) -> Tuning:
    """Scores every grid point on every question, then cross-validates the choice."""
    name, _, cutoff = metric.partition("@")
    k = max(int(cutoff), 100) if by_document else int(cutoff)  # documents: MaxP over 100
    vectors = embed_queries(embedder, queries)
    searcher = HybridSearcher(DenseSearcher(index, embedder), LexicalSearcher(index), current)
    found: dict[tuple[str, int], Candidates] = {}  # channel scores do not depend on the weights

    def fused_search(settings: SearchSettings) -> Callable[[str, np.ndarray, int], list[Hit]]:
        def search(query: str, vector: np.ndarray, k: int) -> list[Hit]:
            if (query, k) not in found:
                found[query, k] = searcher.candidates(query, vector, k)
            return searcher.fuse(found[query, k], k, settings)

        return search

    points = grid(current)
    values = []  # one row per grid point, one column per judged question
    for settings in points:
        run = run_queries(fused_search(settings), queries, vectors, k, by_document, drop_self)
        scores = per_query(name, run, qrels, int(cutoff))
        values.append([scores[qid] for qid in sorted(scores)])
    table = np.asarray(values)
    means = table.mean(axis=1)
    order = sorted(range(len(points)), key=lambda i: (-means[i], i))  # ties: the current settings first
    return Tuning(
        metric,
        table.shape[1],
        current,
        float(means[0]),
        _cross_validated(table),
        [(float(means[i]), points[i]) for i in order],
    )


def _cross_validated(table: np.ndarray, folds: int = FOLDS) -> float:
    """Mean score of the grid point chosen without each question's fold (ties: lowest index,
    i.e. the current settings)."""
    fold = np.arange(table.shape[1]) % folds
    held_out = np.zeros(table.shape[1])
    for f in range(folds):
        train = fold != f
        if not train.any():
            continue
        chosen = int(np.argmax(table[:, train].mean(axis=1)))
        held_out[fold == f] = table[chosen, fold == f]
    return float(held_out.mean())


def describe(settings: SearchSettings) -> str:
    tokens = f", tokens {settings.token_weight:.1f}" if settings.token_weight else ", no token re-ranking"
    if settings.fusion == "rrf":
        return f"RRF (k={settings.rrf_k})" + tokens
    weights = f"{settings.dense_weight:.1f}/{settings.bm25_weight:.1f}/{settings.sentence_weight:.1f}"
    return f"dense/BM25/sentence {weights}" + tokens


def format_tuning(tuning: Tuning, top: int = 5) -> str:
    lines = [
        f"tuning fusion on {tuning.questions} questions ({tuning.metric}):",
        f"  current settings       {describe(tuning.current):<36} {tuning.current_value:.4f}",
        f"  best on all questions  {describe(tuning.best):<36} {tuning.best_value:.4f}",
        f"  tuning, held out       {tuning.cross_validated:.4f} (weights picked on {FOLDS - 1}/{FOLDS} of the "
        f"questions, scored on the rest; {FOLDS} rounds)",
    ]
    lines += [f"  runner-up              {describe(s):<36} {v:.4f}" for v, s in tuning.ranked[1:top]]
    return "\n".join(lines)


def save_if_better(tuning: Tuning, root: Path, settings: Settings) -> str:
    """Saves the tuned weights to the index's settings.toml when they beat the current ones
    on held-out questions; returns what happened, for a person."""
    lines = [format_tuning(tuning)]
    if not tuning.worth_it:
        lines.append("Kept the current settings: no weights beat them on questions they were not tuned on.")
        return "\n".join(lines)
    comment = (
        f"Written by `cite eval --tune` on {time.strftime('%Y-%m-%d %H:%M')}: {describe(tuning.best)}, "
        f"{tuning.metric} {tuning.best_value:.4f} on {tuning.questions} questions, "
        f"{tuning.cross_validated:.4f} held out (current {tuning.current_value:.4f}).\n"
        "cite search/ask/serve over this index read it; delete this file to go back to the defaults."
    )
    path = save_settings(root, replace(settings, search=tuning.best), comment)
    lines.append(f"Saved {describe(tuning.best)} to {path}: searches over this index use it from now on.")
    return "\n".join(lines)
