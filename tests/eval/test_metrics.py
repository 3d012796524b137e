"""Metrics against hand-computed values and against trec_eval (the reference implementation)."""

import math
import random

import pytest
from cite.eval.metrics import evaluate, hit, ndcg, recall, reciprocal_rank

SCORES = {"a": 0.9, "b": 0.8, "c": 0.7, "d": 0.6}
RELEVANT = {"b": 1, "d": 1, "z": 1}


def test_hand_computed_values():
    assert recall(SCORES, RELEVANT, 2) == pytest.approx(1 / 3)
    assert recall(SCORES, RELEVANT, 4) == pytest.approx(2 / 3)
    assert hit(SCORES, RELEVANT, 1) == 0.0 and hit(SCORES, RELEVANT, 2) == 1.0
    assert reciprocal_rank(SCORES, RELEVANT, 10) == 0.5
    assert reciprocal_rank(SCORES, RELEVANT, 1) == 0.0
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg(SCORES, RELEVANT, 10) == pytest.approx(dcg / idcg)


def test_unjudged_queries_are_skipped_and_missing_runs_score_zero():
    qrels = {"q1": {"a": 1}, "q2": {"x": 1}, "q3": {"y": 0}}
    run = {"q1": {"a": 1.0}}
    assert evaluate(run, qrels, ("mrr@10",)) == {"mrr@10": 0.5}


def test_agrees_with_trec_eval_on_random_runs():
    pytrec_eval = pytest.importorskip("pytrec_eval")
    rng = random.Random(7)
    run, qrels = {}, {}
    for q in range(40):
        docs = [f"d{i}" for i in range(30)]
        run[f"q{q}"] = {d: rng.random() for d in rng.sample(docs, 20)}
        qrels[f"q{q}"] = {d: rng.choice([1, 2]) for d in rng.sample(docs, rng.randint(1, 5))}
    ours = evaluate(run, qrels, ("ndcg@10", "recall@5", "recall@100", "mrr@1000", "hit@5"))
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.5,100", "recip_rank", "success.5"})
    per_query = evaluator.evaluate(run)

    def theirs(measure):
        return sum(q[measure] for q in per_query.values()) / len(per_query)

    assert ours["ndcg@10"] == pytest.approx(theirs("ndcg_cut_10"), abs=1e-9)
    assert ours["recall@5"] == pytest.approx(theirs("recall_5"), abs=1e-9)
    assert ours["recall@100"] == pytest.approx(theirs("recall_100"), abs=1e-9)
    assert ours["mrr@1000"] == pytest.approx(theirs("recip_rank"), abs=1e-9)
    assert ours["hit@5"] == pytest.approx(theirs("success_5"), abs=1e-9)
