"""Retrieval metrics as pure functions over TREC-shaped dicts.

    run[qid][pid] = score      (higher is better; ties broken by pid, as trec_eval does)
    qrels[qid] = {pid: rel}    (rel > 0 is relevant)

Queries without any relevant item are left out of the mean (as trec_eval and BEIR do);
a query with relevant items but no run entry scores 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from cite.core.ranking import best_first

Run = Mapping[str, Mapping[str, float]]
Qrels = Mapping[str, Mapping[str, int]]


def ranked(scores: Mapping[str, float], k: int | None = None) -> list[str]:
    """Ids best first, in `best_first`'s order (trec_eval's)."""
    order = [pid for pid, _ in best_first(scores)]
    return order if k is None else order[:k]


def recall(scores: Mapping[str, float], relevant: Mapping[str, int], k: int) -> float:
    wanted = {pid for pid, rel in relevant.items() if rel > 0}
    return len(wanted.intersection(ranked(scores, k))) / len(wanted)


def hit(scores: Mapping[str, float], relevant: Mapping[str, int], k: int) -> float:
    """1.0 when any relevant item is in the top k (success@k)."""
    return float(any(relevant.get(pid, 0) > 0 for pid in ranked(scores, k)))


def first_relevant_rank(scores: Mapping[str, float], relevant: Mapping[str, int]) -> int | None:
    """Rank (from 1) of the best-scored relevant item; None when none was retrieved."""
    return next((rank for rank, pid in enumerate(ranked(scores), start=1) if relevant.get(pid, 0) > 0), None)


def reciprocal_rank(scores: Mapping[str, float], relevant: Mapping[str, int], k: int) -> float:
    rank = first_relevant_rank(scores, relevant)
    return 1.0 / rank if rank is not None and rank <= k else 0.0


def ndcg(scores: Mapping[str, float], relevant: Mapping[str, int], k: int) -> float:
    """nDCG with linear gain (rel / log2(rank + 1)), as trec_eval's ndcg_cut."""
    dcg = sum(relevant.get(pid, 0) / math.log2(rank + 1) for rank, pid in enumerate(ranked(scores, k), start=1))
    ideal_gains = sorted((rel for rel in relevant.values() if rel > 0), reverse=True)[:k]
    idcg = sum(rel / math.log2(rank + 1) for rank, rel in enumerate(ideal_gains, start=1))
    return dcg / idcg if idcg else 0.0


_PER_QUERY = {"recall": recall, "hit": hit, "mrr": reciprocal_rank, "ndcg": ndcg}


def per_query(name: str, run: Run, qrels: Qrels, k: int) -> dict[str, float]:
    """One metric (recall, hit, mrr, ndcg) at k for each judged query."""
    measure = _PER_QUERY[name]
    judged = [qid for qid, rels in qrels.items() if any(rel > 0 for rel in rels.values())]
    if not judged:
        raise ValueError("No query has a relevant item; nothing to measure.")
    return {qid: measure(run.get(qid, {}), qrels[qid], k) for qid in judged}


def mean_metric(name: str, run: Run, qrels: Qrels, k: int) -> float:
    """Mean of one metric (recall, hit, mrr, ndcg) at k over the judged queries."""
    values = per_query(name, run, qrels, k)
    return sum(values.values()) / len(values)


def evaluate(run: Run, qrels: Qrels, measures: tuple[str, ...]) -> dict[str, float]:
    """Measures named like 'ndcg@10', 'recall@100', 'mrr@10', 'hit@1'."""
    results = {}
    for measure in measures:
        name, _, k = measure.partition("@")
        results[measure] = mean_metric(name, run, qrels, int(k))
    return results
