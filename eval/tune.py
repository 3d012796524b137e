"""Grid search of the fusion settings on tuning queries (never on test queries).

    python -m eval.tune --beir ../shared/bench/scifact --split train --index .cite/eval/beir-scifact
    python -m eval.tune --seeds --index .cite/eval/seeds

Reuses an existing index (build it with `cite eval` first): only queries are embedded, so a
whole grid costs seconds to minutes. Prints the settings ranked by the target metric.
"""

from __future__ import annotations

import argparse
import itertools
from dataclasses import replace
from pathlib import Path

from core.config import SearchSettings
from core.embedder import default_embedder
from core.store import read_index
from eval.datasets import SEED_QUESTIONS, evidence_qrels, load_beir, load_questions
from eval.metrics import evaluate
from eval.runner import run_queries
from retriever.search import DenseSearcher, HybridSearcher, LexicalSearcher


def grid() -> list[SearchSettings]:
    """RRF plus convex weights on a 0.1 grid (dense, BM25, best sentence)."""
    settings = [SearchSettings(fusion="rrf")]
    steps = [round(0.1 * i, 1) for i in range(11)]
    for dense, bm25 in itertools.product(steps, steps):
        sentence = round(1.0 - dense - bm25, 1)
        if sentence >= 0 and (dense, bm25, sentence) != (0, 0, 0):
            settings.append(SearchSettings(dense_weight=dense, bm25_weight=bm25, sentence_weight=sentence))
    return settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--beir", type=Path)
    parser.add_argument("--split", default="train")
    parser.add_argument("--seeds", action="store_true")
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--metric", default=None, help="default ndcg@10 (BEIR) or mrr@10 (seeds)")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args(argv)
    if args.split == "test":
        parser.error("tune on train (or the seeds), never on test queries")
    index = read_index(args.index)
    if args.beir:
        dataset = load_beir(args.beir, args.split)
        queries, qrels, by_document = dataset.queries, dataset.qrels, True
        drop_self = dataset.name.lower() == "arguana"
    else:
        questions = [q for q in load_questions(SEED_QUESTIONS) if q.answerable]
        queries, qrels = {q.id: q.question for q in questions}, evidence_qrels(questions, index.passages)
        by_document = drop_self = False
    metric = args.metric or ("ndcg@10" if args.beir else "mrr@10")
    embedder = default_embedder()
    matrix = embedder.encode(list(queries.values()))
    vectors = {qid: matrix[i : i + 1] for i, qid in enumerate(queries)}
    dense, lexical = DenseSearcher(index, embedder), LexicalSearcher(index)
    scored = []
    k = 100 if args.beir else 10
    for settings in grid():
        searcher = HybridSearcher(dense, lexical, replace(settings))
        run = run_queries(searcher.search_with_vector, queries, vectors, k, by_document, drop_self)
        scored.append((evaluate(run, qrels, (metric,))[metric], settings))
    scored.sort(key=lambda item: -item[0])
    for value, settings in scored[: args.top]:
        weights = f"{settings.dense_weight:.1f}/{settings.bm25_weight:.1f}/{settings.sentence_weight:.1f}"
        print(f"{metric}={value:.4f}  {settings.fusion:<6} dense/bm25/sentence={weights}")
    default = next(v for v, s in scored if s == SearchSettings())
    print(f"current default: {metric}={default:.4f}")


if __name__ == "__main__":
    main()
